"""The promotion gate: a worse challenger never passes (property test), slices, latency,
data checks, evidence, and a real evaluation of two scikit-learn models."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratchet.ct.gate import (
    LOWER_IS_BETTER,
    GatePolicy,
    ModelEvaluation,
    decide,
    evaluate_model,
    improvement,
)
from ratchet.errors import InvalidInput

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
