"""The promotion gate: a worse challenger never passes (property test), slices, latency,
data checks, evidence, and a real evaluation of two scikit-learn models."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratchet.ct.gate import (
    LOWER_IS_BETTER,
    GatePolicy,
    HoldoutRows,
    ModelEvaluation,
    decide,
    evaluate_model,
    improvement,
    weighted_metric,
)
from ratchet.errors import InvalidInput
from ratchet.monitoring.performance import classification_metrics, regression_metrics

METRICS = ["accuracy", "f1", "roc_auc", "r2", "log_loss", "mae", "rmse"]
scores = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=500, deadline=None)
@given(metric=st.sampled_from(METRICS), champion=scores, challenger=scores,
       margin=st.floats(min_value=0, max_value=10))
def test_a_worse_or_equal_challenger_never_passes(metric: str, champion: float,
                                                  challenger: float, margin: float) -> None:
    policy = GatePolicy(metric=metric, margin=margin)
    decision = decide(policy, ModelEvaluation(champion, 1_000),
                      ModelEvaluation(challenger, 1_000))
    worse_or_equal = challenger <= champion if metric not in LOWER_IS_BETTER \
        else challenger >= champion
    if worse_or_equal:
        assert not decision.passed
    if decision.passed:  # and a pass always means better by more than the margin
        assert improvement(policy, champion, challenger) > margin


@settings(max_examples=300, deadline=None)
@given(sequence=st.lists(st.floats(min_value=0, max_value=1), min_size=2, max_size=30),
       margin=st.floats(min_value=0, max_value=0.1))
def test_over_a_sequence_of_challengers_the_champion_only_improves(
        sequence: list[float], margin: float) -> None:
    """Promote whenever the gate passes: the champion's score never goes down."""
    policy = GatePolicy(metric="accuracy", margin=margin)
    champion = sequence[0]
    history = [champion]
    for score in sequence[1:]:
        if decide(policy, ModelEvaluation(champion, 500), ModelEvaluation(score, 500)).passed:
            champion = score
        history.append(champion)
    assert history == sorted(history)


def test_slices_latency_data_checks_and_holdout_size_each_fail_the_gate() -> None:
    policy = GatePolicy(metric="accuracy", margin=0.01, slice_tolerance=0.02,
                        slices=("plan",), latency_budget_ms=5, min_holdout=100)
    champion = ModelEvaluation(0.80, 1_000, {"plan=pro": 0.85, "plan=basic": 0.78})
    good = ModelEvaluation(0.85, 1_000, {"plan=pro": 0.84, "plan=basic": 0.86},
                           latency_p99_ms=2.0)
    assert decide(policy, champion, good).passed
    worse_slice = ModelEvaluation(0.85, 1_000, {"plan=pro": 0.80, "plan=basic": 0.90},
                                  latency_p99_ms=2.0)
    decision = decide(policy, champion, worse_slice)
    assert not decision.passed and "slice plan=pro" in decision.reasons[0]
    slow = ModelEvaluation(0.85, 1_000, latency_p99_ms=9.5)
    assert "over the budget" in decide(policy, champion, slow).reasons[0]
    assert "failed its checks" in decide(policy, champion, good,
                                         data_checks_passed=False).reasons[0]
    tiny = ModelEvaluation(0.99, 50, latency_p99_ms=1.0)
    assert "holdout too small" in decide(policy, champion, tiny).reasons[0]
    nan = ModelEvaluation(math.nan, 1_000, latency_p99_ms=1.0)
    assert not decide(policy, champion, nan).passed
    # No champion yet: the first model only has to meet the absolute checks.
    assert decide(policy, None, good).passed


def test_top_features_changing_completely_is_flagged_not_failed() -> None:
    policy = GatePolicy()
    champion = ModelEvaluation(0.7, 500, top_features=("age", "income"))
    challenger = ModelEvaluation(0.8, 500, top_features=("zip", "id"))
    decision = decide(policy, champion, challenger)
    assert decision.passed and "top features changed completely" in decision.flags[0]
    assert decision.evidence["improvement"] == pytest.approx(0.1)
    assert decision.evidence["champion"]["top_features"] == ("age", "income")


def test_bad_policies_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="margin"):
        GatePolicy(margin=-0.1)
    with pytest.raises(InvalidInput, match="latency_budget_ms"):
        GatePolicy(latency_budget_ms=0)
    with pytest.raises(InvalidInput, match="min_holdout"):
        GatePolicy(min_holdout=0)


def test_evaluate_two_real_models_on_one_holdout() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n = 3_000
    X = pd.DataFrame({"x": rng.normal(size=n), "noise": rng.normal(size=n),
                      "plan": rng.choice(["a", "b"], n)})
    y = (X.x + 0.3 * rng.normal(size=n) > 0).astype(int)
    train, test = X.iloc[:2_000], X.iloc[2_000:]
    y_train, y_test = y.iloc[:2_000], y.iloc[2_000:]
    weak = LogisticRegression().fit(train[["noise"]], y_train)
    strong = LogisticRegression().fit(train[["x", "noise"]], y_train)
    policy = GatePolicy(metric="accuracy", margin=0.02, slices=("plan",), top_features=1)
    champion = evaluate_model(weak, test[["noise", "plan"]], y_test, policy=policy,
                              latency_rows=20)
    challenger = evaluate_model(strong, test[["x", "noise", "plan"]], y_test, policy=policy,
                                latency_rows=20)
    assert challenger.score > champion.score + 0.2
    assert set(challenger.slices) == {"plan=a", "plan=b"}
    assert sum(challenger.slice_sizes.values()) == 1_000
    assert challenger.top_features == ("x",) and challenger.latency_p99_ms is not None
    assert decide(policy, champion, challenger).passed
    assert not decide(policy, challenger, champion).passed
    with pytest.raises(InvalidInput, match="unknown gate metric"):
        evaluate_model(strong, test[["x", "noise"]], y_test,
                       policy=GatePolicy(metric="bogus"), latency_rows=0)


# ---------------------------------------------------------------------------- paired tests
def _evaluation(metric: str, truth: Any, predictions: Any, proba: Any = None,
                classes: Sequence[Any] | None = (0, 1)) -> ModelEvaluation:
    """A model's evaluation from its answers, scored as ``evaluate_model`` scores them."""
    if classes is None:
        value = regression_metrics(np.asarray(truth, float), np.asarray(predictions, float))
    else:
        value = classification_metrics(truth, predictions, proba, list(classes))
    rows = HoldoutRows(np.asarray(truth), np.asarray(predictions),
                       None if proba is None else np.asarray(proba),
                       None if classes is None else tuple(classes))
    return ModelEvaluation(float(value[metric]), len(truth), rows=rows)


def _answers(rng: np.random.Generator, truth: np.ndarray, accuracy: float,
             like: np.ndarray | None = None, agree: float = 0.0) -> np.ndarray:
    """Binary answers right with probability ``accuracy``; with ``like``, a share ``agree``
    of rows copies that model's right/wrong (models that agree on most rows, as real ones
    do, with the same true accuracy)."""
    right = rng.random(len(truth)) < accuracy
    if like is not None:
        copy = rng.random(len(truth)) < agree
        right = np.where(copy, like == truth, right)
    return np.where(right, truth, 1 - truth)


@pytest.mark.parametrize("case", ["binary", "multiclass", "text labels", "regression"])
def test_weighted_metrics_are_the_monitoring_metrics_on_resampled_rows(case: str) -> None:
    """All weights 1 gives exactly the metric the monitor computes; integer weights give
    the metric of the rows repeated that many times (what a bootstrap resample is)."""
    rng = np.random.default_rng(1)
    n = 300
    if case == "regression":
        truth = rng.normal(5, 2, n)
        truth[:3] = 0.0                                     # mape skips zero labels
        rows = HoldoutRows(truth, truth + rng.normal(0, 1, n))
        metrics = ["mae", "rmse", "mape", "r2"]
    else:
        classes: list[Any] = [0, 1] if case == "binary" else [0, 1, 2]
        if case == "text labels":
            classes = ["no", "yes"]
        k = len(classes)
        proba = rng.dirichlet(np.ones(k), n)
        codes = np.array([rng.choice(k, p=p) for p in proba])
        predicted = np.where(rng.random(n) < 0.7, codes, rng.integers(0, k, n))
        truth_values = np.asarray(classes, dtype=object)[codes]
        if case == "binary":
            truth_values[:2] = [1.0, "1"]                   # lenient labels, as the monitor
            truth_values[2] = 7                             # a label no class names
        rows = HoldoutRows(truth_values, np.asarray(classes, dtype=object)[predicted],
                           proba, tuple(classes))
        metrics = ["accuracy", "precision", "recall", "f1", "log_loss", "roc_auc"]
    weights = np.vstack([np.ones(n), rng.multinomial(n, np.ones(n) / n, size=3)])
    for metric in metrics:
        values = weighted_metric(metric, rows, weights.astype(float))
        for weight, value in zip(weights.astype(int), values, strict=True):
            at = np.repeat(np.arange(n), weight)
            if rows.classes is None:
                expected = regression_metrics(rows.truth[at], rows.predictions[at])[metric]
            else:
                expected = classification_metrics(
                    pd.Series(rows.truth[at], dtype=object), rows.predictions[at],
                    rows.probabilities[at], list(rows.classes))[metric]
            assert value == pytest.approx(expected, abs=1e-9), (metric, weight[:5])


def test_mcnemar_evidence_on_known_counts() -> None:
    """400 rows; the challenger alone is right on 30, the champion alone on 12: the exact
    one-sided p-value is P(X >= 30) for X ~ Binomial(42, 1/2)."""
    from scipy.stats import binom

    truth = np.tile([0, 1], 200)
    champion = truth.copy()
    challenger = truth.copy()
    challenger[:12] = 1 - truth[:12]        # the champion alone is right
    champion[12:42] = 1 - truth[12:42]      # the challenger alone is right
    champion[42:100] = challenger[42:100] = 1 - truth[42:100]   # both wrong: not counted
    policy = GatePolicy(metric="accuracy", margin=0.02)
    decision = decide(policy, _evaluation("accuracy", truth, champion),
                      _evaluation("accuracy", truth, challenger))
    test = decision.evidence["test"]
    assert test["name"] == "mcnemar-exact" and test["holdout"] == 400
    assert (test["challenger_only_right"], test["champion_only_right"]) == (30, 12)
    assert test["p_value"] == pytest.approx(binom.sf(29, 42, 0.5))
    assert test["improvement"] == pytest.approx(18 / 400)
    low, high = test["interval"]
    assert 0 < low < 18 / 400 < high and test["better"] and decision.passed
    assert test["confidence"] == 0.95 and test["smallest_detectable"] == 5 / 400
    json.dumps(decision.to_dict(), allow_nan=False)   # the event stays JSON-safe
    # Better by 0.045, but the margin asks for more: fails on the margin.
    strict = decide(GatePolicy(margin=0.05), _evaluation("accuracy", truth, champion),
                    _evaluation("accuracy", truth, challenger))
    assert not strict.passed and "better by more than 0.05" in strict.reasons[0]
    # At 99.9 % the same counts are not enough.
    sure = decide(GatePolicy(confidence=0.999), _evaluation("accuracy", truth, champion),
                  _evaluation("accuracy", truth, challenger))
    assert not sure.passed and "not better with 99.9% confidence" in sure.reasons[0]
    assert "mcnemar-exact" in sure.reasons[0] and "p = 0.003958" in sure.reasons[0]


def test_one_row_better_on_a_small_holdout_is_noise() -> None:
    """The issue's case: 90 rows, the challenger one row ahead (0.011 better) passed the
    old margin rule; it is not better with any confidence."""
    truth = np.tile([0, 1], 45)
    champion = truth.copy()
    champion[:10] = 1 - truth[:10]
    challenger = truth.copy()
    challenger[10:19] = 1 - truth[10:19]
    policy = GatePolicy(metric="accuracy", margin=0.0, min_holdout=50)
    decision = decide(policy, _evaluation("accuracy", truth, champion),
                      _evaluation("accuracy", truth, challenger))
    assert decision.evidence["improvement"] == pytest.approx(1 / 90)
    assert not decision.passed and "not better with 95% confidence" in decision.reasons[0]
    hand_built = decide(policy, ModelEvaluation(0.8889, 90), ModelEvaluation(0.9, 90))
    assert hand_built.passed and hand_built.evidence["test"]["name"] == "margin-only"
    assert "no per-row holdout evidence" in hand_built.evidence["test"]["note"]


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_equally_good_models_pass_at_most_one_minus_confidence_of_the_time(
        confidence: float) -> None:
    """2,000 pairs of models with the same true accuracy on fresh holdouts (seeded): the
    exact McNemar gate passes at most 1 - confidence of them, up to three binomial
    standard errors of the count (the RNG is seeded, so this cannot flake)."""
    rng = np.random.default_rng(7)
    policy = GatePolicy(metric="accuracy", confidence=confidence, min_holdout=50)
    trials, passed = 2_000, 0
    for i in range(trials):
        n = int(rng.choice([60, 150, 400]))
        accuracy = float(rng.uniform(0.55, 0.95))
        truth = rng.integers(0, 2, n)
        champion = _answers(rng, truth, accuracy)
        challenger = _answers(rng, truth, accuracy, like=champion, agree=i % 3 * 0.4)
        passed += decide(policy, _evaluation("accuracy", truth, champion),
                         _evaluation("accuracy", truth, challenger)).passed
    alpha = 1 - confidence
    assert passed / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)
    assert passed > 0   # the test is not simply never passing


@pytest.mark.parametrize("metric", ["f1", "mae"])
def test_equally_good_models_rarely_pass_the_bootstrap_gate(metric: str) -> None:
    rng = np.random.default_rng(11)
    policy = GatePolicy(metric=metric, min_holdout=50)
    trials, passed = 300, 0
    for _ in range(trials):
        n = int(rng.choice([100, 300]))
        truth: np.ndarray
        if metric == "mae":
            truth = rng.normal(size=n)
            champion = _evaluation(metric, truth, truth + rng.normal(size=n), classes=None)
            challenger = _evaluation(metric, truth, truth + rng.normal(size=n), classes=None)
        else:
            truth = rng.integers(0, 2, n)
            champion = _evaluation(metric, truth, _answers(rng, truth, 0.75))
            challenger = _evaluation(metric, truth, _answers(rng, truth, 0.75))
        passed += decide(policy, champion, challenger).passed
    assert passed / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "roc_auc", "log_loss", "mae", "rmse"])
def test_a_clearly_better_challenger_passes_and_never_the_other_way(metric: str) -> None:
    rng = np.random.default_rng(3)
    n = 500
    truth: np.ndarray
    if metric in ("mae", "rmse"):
        truth = rng.normal(size=n)
        weak = _evaluation(metric, truth, truth + rng.normal(0, 1.0, n), classes=None)
        strong = _evaluation(metric, truth, truth + rng.normal(0, 0.6, n), classes=None)
    else:
        truth = rng.integers(0, 2, n)
        signal = np.where(truth == 1, 1.0, -1.0)

        def model(noise: float) -> ModelEvaluation:
            p = 1 / (1 + np.exp(-(signal + rng.normal(0, noise, n))))
            return _evaluation(metric, truth, (p > 0.5).astype(int),
                               np.column_stack([1 - p, p]))

        weak, strong = model(2.0), model(0.7)
    policy = GatePolicy(metric=metric)
    decision = decide(policy, weak, strong)
    assert decision.passed, decision.reasons
    test = decision.evidence["test"]
    assert test["name"] == ("mcnemar-exact" if metric == "accuracy" else "paired-bootstrap")
    assert test["interval"][0] > 0 and test["p_value"] < 0.05
    assert not decide(policy, strong, weak).passed


per_row = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 1)),
                   min_size=5, max_size=120)


@settings(max_examples=150, deadline=None)
@given(rows=per_row, metric=st.sampled_from(["accuracy", "f1", "precision"]),
       margin=st.sampled_from([0.0, 0.01, 0.05]),
       confidence=st.sampled_from([0.5, 0.9, 0.95]))
def test_with_per_row_evidence_a_challenger_no_better_never_passes(
        rows: list[tuple[int, int, int]], metric: str, margin: float,
        confidence: float) -> None:
    truth, champion, challenger = (np.array(column) for column in zip(*rows, strict=True))
    policy = GatePolicy(metric=metric, margin=margin, confidence=confidence, min_holdout=1)
    ours = _evaluation(metric, truth, challenger)
    theirs = _evaluation(metric, truth, champion)
    decision = decide(policy, theirs, ours)
    if ours.score <= theirs.score:
        assert not decision.passed
    if decision.passed:
        test = decision.evidence["test"]
        assert test["better"] and test["interval"][0] > 0
        assert ours.score - theirs.score > margin


def test_holdout_too_small_to_show_the_margin_is_a_named_policy_error() -> None:
    policy = GatePolicy(metric="accuracy", margin=0.01)
    assert policy.rows_to_show_better == 5 and policy.min_holdout_for_margin() == 500
    policy.check_holdout(500)
    with pytest.raises(InvalidInput, match=r"data.holdout \(365 rows\).*gate.margin 0.01.*"
                                           r"gate.confidence 0.95.*data.holdout >= 500"):
        policy.check_holdout(365)
    assert GatePolicy(metric="accuracy", margin=0.01, confidence=0.9) \
        .min_holdout_for_margin() == 400                    # 0.5**4 < 0.1
    GatePolicy(margin=0.0).check_holdout(5)                 # any improvement: 5 rows do
    with pytest.raises(InvalidInput, match="needs at least 10 rows"):
        GatePolicy(metric="f1", margin=0.3, confidence=0.999).check_holdout(9, "here")
    with pytest.raises(InvalidInput, match="confidence"):
        GatePolicy(confidence=0.4)
    with pytest.raises(InvalidInput, match="confidence"):
        GatePolicy(confidence=1.0)


def test_a_policy_whose_holdout_cannot_show_its_margin_fails_to_load() -> None:
    from ratchet.ct.policy import policy_from_dict

    base = {"model": "m", "pipeline": "flows:training"}
    with pytest.raises(InvalidInput, match=r"data.holdout \(90 rows\) is too small"):
        policy_from_dict({**base, "gate": {"margin": 0.01},
                          "data": {"holdout": 90, "rows": 400}})
    ok = policy_from_dict({**base, "gate": {"margin": 0.01, "confidence": 0.9},
                           "data": {"holdout": 400, "rows": 2_000}})
    assert ok.gate.confidence == 0.9 and policy_from_dict(ok.to_dict()) == ok


def test_per_row_evidence_stays_out_of_the_record() -> None:
    truth = np.array([0, 1] * 60)
    evaluation = _evaluation("accuracy", truth, truth)
    assert "rows" not in evaluation.to_dict() and "rows" not in repr(evaluation)
    assert evaluation == ModelEvaluation(evaluation.score, evaluation.n)
    assert list(evaluation.predictions) == list(truth)
    other = _evaluation("accuracy", 1 - truth, truth)
    with pytest.raises(InvalidInput, match="different holdout rows"):
        decide(GatePolicy(), evaluation, other)
