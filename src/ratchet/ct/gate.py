"""The promotion gate: may a challenger replace the champion?

Both models are scored on the same fresh holdout (recent labeled production data the
challenger did not train on). The challenger passes only if, on the policy's metric, it is
better than the champion with the policy's ``confidence`` (a paired test on the holdout's
rows) *and* its measured improvement is more than the margin; it is not worse than the
champion by more than the tolerance on any declared slice; its training data passed its
checks; and its p99 latency fits the budget. Every number that decided is kept as
evidence. The decision itself (``decide``) is pure; ``evaluate_model`` is the part that
runs models.

A challenger whose most important features share nothing with the champion's is passed
or failed on its scores like any other, but flagged: it may have learned a shortcut.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np

# Metrics where smaller is better; every other metric is "higher is better".
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "mape"})
MCNEMAR, BOOTSTRAP, MARGIN_ONLY = "mcnemar-exact", "paired-bootstrap", "margin-only"
RESAMPLES = 2_000          # paired bootstrap resamples
BOOTSTRAP_SEED = 0         # the same holdout always gets the same interval
_CELLS = 2_000_000         # resampled rows held in memory at once (resamples x rows)
_UNKNOWN, _MISSING = -1, -2  # class codes: a label no class names; no label/prediction


@dataclass(frozen=True)
class GatePolicy:
    metric: str = "accuracy"
    margin: float = 0.0             # the measured improvement must be more than this
    slice_tolerance: float = 0.02   # may be worse on a slice by at most this
    slices: tuple[str, ...] = ()    # columns whose values define slices
    latency_budget_ms: float | None = None
    min_holdout: int = 100
    top_features: int = 3
    confidence: float = 0.95        # how sure the paired test must be that it is better

    def __post_init__(self) -> None:
        for name in ("margin", "slice_tolerance"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidInput(f"gate policy {name} must be a number >= 0, got {value!r}")
        if self.latency_budget_ms is not None and not self.latency_budget_ms > 0:
            raise InvalidInput(f"gate policy latency_budget_ms must be > 0, got "
                               f"{self.latency_budget_ms!r}")
        if not isinstance(self.min_holdout, int) or self.min_holdout < 1:
            raise InvalidInput(f"gate policy min_holdout must be an int >= 1, got "
                               f"{self.min_holdout!r}")
        if not isinstance(self.confidence, int | float) or isinstance(self.confidence, bool) \
                or not 0.5 <= self.confidence <= 0.999:
            raise InvalidInput(f"gate policy confidence must be a number in [0.5, 0.999] "
                               f"(0.95: 95 %), got {self.confidence!r}")

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    @property
    def rows_to_show_better(self) -> int:
        """The most favourable case: the fewest rows on which only the challenger is right
        (and none the other way) that the exact one-sided paired sign test (McNemar) needs
        at this confidence: the smallest k with 0.5**k < 1 - confidence (5 at 0.95)."""
        alpha, k = 1 - self.confidence, 1
        while 0.5 ** k >= alpha:
            k += 1
        return k

    def min_holdout_for_margin(self) -> int:
        """The fewest holdout rows on which an improvement of ``margin`` could ever be shown
        with ``confidence``: for accuracy each row is worth 1/rows, so even when every row
        the models disagree on favours the challenger, an improvement of ``margin`` is
        ``margin * rows`` rows, and the paired test needs ``rows_to_show_better`` of them.
        With margin 0 (any improvement the test can show), or another metric (its margin is
        in its own units, and one row can move F1, ROC AUC or MAE by more than 1/rows), no
        row count follows from the margin: only the ``rows_to_show_better`` any paired test
        needs."""
        k = self.rows_to_show_better
        if self.metric != "accuracy" or self.margin == 0:
            return k
        return max(k, math.ceil(k / self.margin - 1e-9))

    def check_holdout(self, rows: int, where: str = "data.holdout") -> None:
        """Refuse a holdout too small to ever show the margin with the policy's confidence
        (``min_holdout_for_margin``), naming the fields and the rows it needs."""
        needed = self.min_holdout_for_margin()
        if rows >= needed:
            return
        k = self.rows_to_show_better
        if self.metric == "accuracy" and self.margin > 0:
            raise InvalidInput(
                f"{where} ({rows} rows) is too small for gate.margin {self.margin:g} at "
                f"gate.confidence {self.confidence:g}: an improvement of {self.margin:g} is "
                f"{self.margin * rows:.1f} rows, and even with every row the models disagree "
                f"on in the challenger's favour the paired test needs {k} to show it; give "
                f"{where} >= {needed}, or gate.margin >= {k / rows:.4f} (or 0: any "
                f"improvement the test can show), or a lower gate.confidence")
        raise InvalidInput(f"{where} ({rows} rows) is too small to show any improvement at "
                           f"gate.confidence {self.confidence:g}: the paired test needs at "
                           f"least {k} rows; give {where} >= {needed}")


@dataclass(frozen=True)
class HoldoutRows:
    """One model's answers on the holdout, row by row: what the paired tests compare.
    Arrays, kept in memory only (never in ``to_dict``, events or equality)."""

    truth: Any                               # labels as given (1-D array)
    predictions: Any                         # the model's answers (1-D array)
    probabilities: Any = None                # (rows, classes) in the order of ``classes``
    classes: tuple[Any, ...] | None = None   # None: a regression


@dataclass(frozen=True)
class ModelEvaluation:
    """One model on the holdout."""

    score: float                              # the policy's metric, overall
    n: int                                    # holdout rows scored
    slices: Mapping[str, float] = field(default_factory=dict)  # "plan=pro" -> metric
    slice_sizes: Mapping[str, int] = field(default_factory=dict)
    latency_p99_ms: float | None = None
    top_features: tuple[str, ...] = ()
    # Per-row evidence for the paired test; None for an evaluation built by hand.
    rows: HoldoutRows | None = field(default=None, compare=False, repr=False)

    @property
    def predictions(self) -> Any:
        """The model's answers on the holdout (None without per-row evidence)."""
        return None if self.rows is None else self.rows.predictions

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rows"}
        return {**out, "slices": dict(self.slices), "slice_sizes": dict(self.slice_sizes)}


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: tuple[str, ...]        # why it failed (empty when it passed)
    flags: tuple[str, ...]          # worth a look, not failing
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def improvement(policy: GatePolicy, champion: float, challenger: float) -> float:
    """How much better the challenger is, in the metric's good direction."""
    return challenger - champion if policy.higher_is_better else champion - challenger


def decide(policy: GatePolicy, champion: ModelEvaluation | None,
           challenger: ModelEvaluation, *, data_checks_passed: bool = True) -> GateDecision:
    """Pass or fail, with the reasons and the evidence.

    The metric rule, with per-row evidence on both sides (``evaluate_model`` keeps it): a
    one-sided paired test on the same holdout rows (exact McNemar for accuracy, a seeded
    paired bootstrap for any other metric) gives the improvement's lower confidence bound
    at ``confidence``; the challenger passes it when that bound is above 0 *and* the
    measured improvement is more than ``margin``. The confidence guards against promoting a
    challenger that is not better at all (one that is no better passes at most
    ``1 - confidence`` of the time); the margin is the size of improvement worth a rollout,
    judged on the best estimate. (Asking the bound itself to clear the margin would reject a
    challenger truly better by exactly the margin 95 % of the time, so the effective margin
    would be the margin plus about two standard errors.) Without per-row evidence (an
    evaluation built by hand or by an older caller) only the margin rule applies, and the
    evidence says so.
    """
    reasons: list[str] = []
    flags: list[str] = []
    metric = policy.metric
    if not math.isfinite(challenger.score):
        reasons.append(f"the challenger's {metric} is not a number ({challenger.score})")
    if challenger.n < policy.min_holdout:
        reasons.append(f"holdout too small: {challenger.n} rows, the policy needs "
                       f"{policy.min_holdout}")
    if not data_checks_passed:
        reasons.append("the challenger's training data failed its checks")
    if policy.latency_budget_ms is not None:
        if challenger.latency_p99_ms is None:
            reasons.append("no latency measured, but the policy has a latency budget")
        elif challenger.latency_p99_ms > policy.latency_budget_ms:
            reasons.append(f"p99 latency {challenger.latency_p99_ms:.2f} ms is over the "
                           f"budget of {policy.latency_budget_ms:g} ms")
    gain = test = None
    if champion is not None:
        gain = improvement(policy, champion.score, challenger.score)
        test = paired_test(policy, champion, challenger)
        versus = (f"{metric} {challenger.score:.4f} vs the champion's {champion.score:.4f}"
                  f" on {challenger.n} holdout rows")
        if not (math.isfinite(gain) and gain > policy.margin):
            reasons.append(f"{versus}: needs to be better by more than {policy.margin:g}")
        elif test.get("better") is False:
            low, high = test["interval"]
            reasons.append(f"{versus}: {gain:+.4f}, not better with "
                           f"{policy.confidence * 100:g}% confidence ({test['name']}: the "
                           f"improvement is in [{_fmt(low)}, {_fmt(high)}], p = "
                           f"{_fmt(test['p_value'])}; the smallest improvement this holdout "
                           f"can show is {_fmt(test['smallest_detectable'])})")
        for name, value in sorted(challenger.slices.items()):
            if name not in champion.slices:
                continue
            delta = improvement(policy, champion.slices[name], value)
            if not (math.isfinite(delta) and delta >= -policy.slice_tolerance):
                reasons.append(f"slice {name}: {metric} {value:.4f} vs the champion's "
                               f"{champion.slices[name]:.4f}, worse by more than "
                               f"{policy.slice_tolerance:g}")
        ours, theirs = set(challenger.top_features), set(champion.top_features)
        if ours and theirs and not ours & theirs:
            flags.append(f"top features changed completely: {sorted(theirs)} -> "
                         f"{sorted(ours)}")
    evidence = {"policy": asdict(policy), "metric": metric,
                "champion": champion.to_dict() if champion is not None else None,
                "challenger": challenger.to_dict(), "improvement": gain, "test": test,
                "data_checks_passed": data_checks_passed}
    return GateDecision(not reasons, tuple(reasons), tuple(flags), evidence)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


# ----------------------------------------------------------------------------- paired tests
def paired_test(policy: GatePolicy, champion: ModelEvaluation,
                challenger: ModelEvaluation) -> dict[str, Any]:
    """Is the challenger better than the champion on the same holdout rows, with the
    policy's confidence? JSON-safe evidence: the test's name, the holdout's size, the
    confidence, the improvement (point) and its interval (the lower and upper one-sided
    bounds at ``confidence`` each), the p-value of "no better", ``better`` (the lower bound
    is above 0), and the smallest improvement this holdout could show."""
    base = {"holdout": challenger.n, "confidence": policy.confidence,
            "improvement": _finite(improvement(policy, champion.score, challenger.score))}
    if champion.rows is None or challenger.rows is None:
        return {"name": MARGIN_ONLY, **base, "better": None,
                "note": "no per-row holdout evidence on both sides (an evaluation built by "
                        "hand or by an older caller): judged on the measured improvement "
                        "and the margin alone, with no confidence"}
    ours, theirs = challenger.rows, champion.rows
    if len(ours.truth) != len(theirs.truth) or not _same_labels(ours.truth, theirs.truth):
        raise InvalidInput("the champion and the challenger were scored on different holdout "
                           "rows: the gate compares them on the same rows")
    if policy.metric == "accuracy":
        return {**base, **_mcnemar(policy, theirs, ours)}
    return {**base, **_bootstrap(policy, theirs, ours)}


def _mcnemar(policy: GatePolicy, champion: HoldoutRows, challenger: HoldoutRows
             ) -> dict[str, Any]:
    """Exact one-sided McNemar: among the rows where exactly one model is right, is the
    challenger right more often than a fair coin would be? The improvement's bounds are the
    Clopper-Pearson bounds on that share, times the share of such rows (exact in sign: the
    lower bound is above 0 exactly when p < 1 - confidence)."""
    import numpy as np
    from scipy.stats import beta, binom

    right_theirs, known_theirs = _correct(champion)
    right_ours, known_ours = _correct(challenger)
    both = known_theirs & known_ours
    ours_only = int(np.sum(right_ours & ~right_theirs & both))
    theirs_only = int(np.sum(right_theirs & ~right_ours & both))
    n, disagree, alpha = int(both.sum()), ours_only + theirs_only, 1 - policy.confidence
    if disagree == 0 or n == 0:
        low = high = 0.0
        p_value = 1.0
    else:
        share = disagree / n
        lo = float(beta.ppf(alpha, ours_only, theirs_only + 1)) if ours_only else 0.0
        hi = float(beta.ppf(1 - alpha, ours_only + 1, theirs_only)) if theirs_only else 1.0
        low, high = share * (2 * lo - 1), share * (2 * hi - 1)
        p_value = float(binom.sf(ours_only - 1, disagree, 0.5))
    k = policy.rows_to_show_better
    return {"name": MCNEMAR, "interval": [low, high], "p_value": p_value,
            "better": p_value < alpha,
            "challenger_only_right": ours_only, "champion_only_right": theirs_only,
            "smallest_detectable": k / n if n else None,
            "smallest_detectable_rule": f"even if every row the models disagree on favoured "
                                        f"the challenger, the test needs {k} such rows"}


def _bootstrap(policy: GatePolicy, champion: HoldoutRows, challenger: HoldoutRows
               ) -> dict[str, Any]:
    """A paired bootstrap: the same resampled rows score both models, ``RESAMPLES`` times;
    the improvement's bounds are the percentiles at 1 - confidence and confidence."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    n = len(challenger.truth)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    chunk = max(1, _CELLS // max(n, 1))
    gains = []
    # Thin matrix products: one BLAS thread is faster, and threads only contend.
    with threadpool_limits(1, user_api="blas"):
        for start in range(0, RESAMPLES, chunk):
            size = min(chunk, RESAMPLES - start)
            draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
            weights = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n)
            weights = weights.astype(np.float64)
            ours = weighted_metric(policy.metric, challenger, weights)
            theirs = weighted_metric(policy.metric, champion, weights)
            gains.append(ours - theirs if policy.higher_is_better else theirs - ours)
    gain = np.concatenate(gains)
    gain = gain[np.isfinite(gain)]
    alpha = 1 - policy.confidence
    if len(gain) < RESAMPLES // 2:  # the metric is undefined on most resamples
        return {"name": BOOTSTRAP, "interval": [None, None], "p_value": None,
                "better": False, "resamples": RESAMPLES, "seed": BOOTSTRAP_SEED,
                "smallest_detectable": None,
                "note": f"{policy.metric} is undefined on {RESAMPLES - len(gain)} of "
                        f"{RESAMPLES} resamples (e.g. one class only): not judged better"}
    low, high = (float(v) for v in np.quantile(gain, [alpha, 1 - alpha]))
    point = improvement(policy, _value(policy.metric, champion),
                        _value(policy.metric, challenger))
    return {"name": BOOTSTRAP, "interval": [low, high],
            "p_value": float((1 + np.sum(gain <= 0)) / (len(gain) + 1)),
            "better": low > 0, "resamples": RESAMPLES, "seed": BOOTSTRAP_SEED,
            "smallest_detectable": _finite(max(point - low, 0.0)),
            "smallest_detectable_rule": "the distance from the measured improvement to its "
                                        "lower bound: with this holdout's spread, a smaller "
                                        "improvement is never shown"}


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _same_labels(a: Any, b: Any) -> bool:
    import pandas as pd

    return bool(pd.Series(a).reset_index(drop=True).equals(pd.Series(b).reset_index(drop=True)))


def _value(metric: str, rows: HoldoutRows) -> float:
    import numpy as np

    return float(weighted_metric(metric, rows, np.ones((1, len(rows.truth))))[0])


def _codes(values: Any, classes: Sequence[Any]) -> np.ndarray:
    """Each value's class index, as ``classification_metrics`` matches labels (1, 1.0,
    "1" and True name the class 1); _UNKNOWN if none, _MISSING if null."""
    import numpy as np
    import pandas as pd

    from ratchet.packaging.labels import class_matcher, plain

    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    match = class_matcher(list(classes))
    mapped = np.array([_UNKNOWN if (i := match(plain(u))) is None else i for u in uniques],
                      dtype=np.intp)
    out = np.full(len(codes), _MISSING, dtype=np.intp)
    out[codes >= 0] = mapped[codes[codes >= 0]]
    return out


def _correct(rows: HoldoutRows) -> tuple[np.ndarray, np.ndarray]:
    """Right or wrong on each row, and whether the row counts (a label and an answer)."""
    classes = rows.classes or ()
    truth, predicted = _codes(rows.truth, classes), _codes(rows.predictions, classes)
    known = (truth != _MISSING) & (predicted != _MISSING)
    return (truth == predicted) & (truth >= 0) & known, known


def weighted_metric(metric: str, rows: HoldoutRows, weights: np.ndarray) -> np.ndarray:
    """``metric`` of one model under row weights (resamples, rows): a bootstrap resample
    is the rows drawn with multiplicities. With all weights 1 it is the metric
    ``classification_metrics`` / ``regression_metrics`` compute (the tests hold it to
    them). NaN where a resample leaves the metric undefined."""
    import numpy as np

    if rows.classes is None:
        return _weighted_regression(metric, rows, weights)
    k = len(rows.classes)
    true, pred = _codes(rows.truth, rows.classes), _codes(rows.predictions, rows.classes)
    keep = (true != _MISSING) & (pred != _MISSING)
    true, pred, w = true[keep], pred[keep], weights[:, keep]
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return np.asarray(w @ (true == pred), dtype=np.float64) / total
        if metric in ("precision", "recall", "f1"):
            onehot_true = (true[:, None] == np.arange(k)).astype(np.float64)
            onehot_pred = (pred[:, None] == np.arange(k)).astype(np.float64)
            tp, predicted = w @ (onehot_true * onehot_pred), w @ onehot_pred
            actual = w @ onehot_true
            value = {"precision": np.where(predicted > 0, tp / predicted, 0.0),
                     "recall": np.where(actual > 0, tp / actual, 0.0),
                     "f1": np.where(predicted + actual > 0, 2 * tp / (predicted + actual),
                                    0.0)}[metric]
            if k <= 2:  # binary: the positive class, classes[-1]
                return np.asarray(value[:, k - 1])
            present = (actual > 0) | (predicted > 0)
            return np.asarray((value * present).sum(axis=1) / present.sum(axis=1))
        if rows.probabilities is None or k < 2 or metric not in ("log_loss", "roc_auc"):
            return np.full(len(weights), np.nan)
        proba = np.asarray(rows.probabilities, dtype=np.float64)[keep]
        proba = proba / proba.sum(axis=1, keepdims=True)
        known = true >= 0
        t, p, w = true[known], proba[known], w[:, known]
        if metric == "log_loss":  # as sklearn's: probabilities clipped to [eps, 1 - eps]
            eps = np.finfo(np.float64).eps
            loss = -np.log(np.clip(p[np.arange(len(t)), t], eps, 1 - eps))
            return np.asarray(w @ loss / w.sum(axis=1))
        if k == 2:  # binary: the positive class
            return _weighted_auc(w, t == 1, p[:, 1])
        # one-vs-rest, macro over the classes present in the resample's labels
        aucs = np.stack([_weighted_auc(w, t == j, p[:, j]) for j in range(k)], axis=1)
        present = (w @ (t[:, None] == np.arange(k))) > 0
        value = np.where(present, aucs, 0.0).sum(axis=1) / present.sum(axis=1)
        return np.asarray(np.where(present.sum(axis=1) >= 2, value, np.nan))


def _weighted_auc(w: np.ndarray, positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC (Mann-Whitney, ties count one half) for each row of weights: every positive
    row's weight times the negative weight below its score, plus half the tied."""
    import numpy as np

    order = np.argsort(scores, kind="mergesort")
    s, pos, ws = scores[order], positive[order], w[:, order]
    if not len(s):
        return np.full(len(w), np.nan)
    new_level = np.r_[True, s[1:] != s[:-1]]
    level = np.cumsum(new_level) - 1
    starts = np.flatnonzero(new_level)
    ends = np.r_[starts[1:], len(s)]
    negative = ws * ~pos
    below_all = np.concatenate([np.zeros((len(w), 1)), np.cumsum(negative, axis=1)], axis=1)
    below = below_all[:, starts[level]]
    tied = below_all[:, ends[level]] - below
    positive_w = ws * pos
    pairs = positive_w.sum(axis=1) * negative.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((positive_w * (below + 0.5 * tied)).sum(axis=1) / pairs)


def _weighted_regression(metric: str, rows: HoldoutRows, weights: np.ndarray) -> np.ndarray:
    import numpy as np
    import pandas as pd

    t = pd.to_numeric(pd.Series(rows.truth), errors="coerce").to_numpy(dtype=np.float64)
    p = pd.to_numeric(pd.Series(rows.predictions), errors="coerce").to_numpy(dtype=np.float64)
    keep = ~np.isnan(t) & ~np.isnan(p)
    t, p, w = t[keep], p[keep], weights[:, keep]
    error = p - t
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "mae":
            return np.asarray(w @ np.abs(error) / total)
        if metric == "rmse":
            return np.asarray(np.sqrt(w @ error ** 2 / total))
        if metric == "mape":
            nonzero = t != 0
            return np.asarray(w[:, nonzero] @ (np.abs(error[nonzero]) / np.abs(t[nonzero]))
                              / w[:, nonzero].sum(axis=1))
        if metric == "r2":  # as sklearn's r2_score: a constant truth scores 1 if exact, else 0
            centered = t - t.mean() if len(t) else t
            squares = w @ error ** 2
            spread = w @ centered ** 2 - (w @ centered) ** 2 / total
            constant = spread <= 1e-12 * np.maximum(w @ centered ** 2, 1e-300)
            return np.asarray(np.where(constant, np.where(squares == 0, 1.0, 0.0),
                                       1 - squares / np.where(constant, 1.0, spread)))
    return np.full(len(weights), np.nan)


# ----------------------------------------------------------------------------- evaluation
def evaluate_model(model: Any, X: Any, y: Any, *, policy: GatePolicy,
                   classes: Sequence[Any] | None = None, latency_rows: int = 200,
                   importance_repeats: int = 3, seed: int = 0) -> ModelEvaluation:
    """Score a model (anything with ``predict``; ``predict_proba`` for AUC/log loss) on a
    holdout frame: the metric overall and per slice, p99 one-row latency, the top features
    by scikit-learn's permutation importance, and its answers row by row (``rows``, for the
    gate's paired test)."""
    import numpy as np
    import pandas as pd

    from ratchet.monitoring.performance import classification_metrics, regression_metrics

    X = pd.DataFrame(X).reset_index(drop=True)
    y = pd.Series(np.asarray(y))
    missing = [s for s in policy.slices if s not in X.columns]
    if missing:
        raise InvalidInput(f"slice column(s) {', '.join(missing)} are not in the holdout")
    features = X.drop(columns=[s for s in policy.slices if s not in _inputs(model, X)])
    proba_fn = getattr(model, "predict_proba", None)
    classes = list(classes) if classes is not None else (
        list(np.asarray(model.classes_).tolist()) if hasattr(model, "classes_") else None)

    def score(truth: Any, predicted: Any, proba: Any) -> float:
        if classes is not None:
            metrics = classification_metrics(truth, predicted, proba, classes)
        else:
            metrics = regression_metrics(truth.astype(float), predicted.astype(float))
        if policy.metric not in metrics:
            raise InvalidInput(f"unknown gate metric {policy.metric!r}; known: "
                               f"{', '.join(sorted(k for k in metrics if k != 'n'))}")
        value = metrics[policy.metric]
        return float("nan") if value is None else float(value)

    # One pass over the holdout; slices are scored on their share of the same answers.
    truth = y.to_numpy()
    predicted = np.asarray(model.predict(features))
    proba = None
    if classes is not None and proba_fn is not None:
        proba = np.asarray(proba_fn(features))
    overall = score(truth, predicted, proba)
    slices, sizes = {}, {}
    for column in policy.slices:
        for value, index in X.groupby(column, dropna=True).groups.items():
            at = np.asarray(index)
            slices[f"{column}={value}"] = score(truth[at], predicted[at],
                                                None if proba is None else proba[at])
            sizes[f"{column}={value}"] = len(at)
    latency = _latency_p99_ms(model, features, latency_rows)
    top = _top_features(model, features, y, policy, importance_repeats, seed)
    rows = HoldoutRows(truth, predicted, proba,
                       tuple(classes) if classes is not None else None)
    return ModelEvaluation(overall, len(X), slices, sizes, latency, top, rows)


def _inputs(model: Any, X: Any) -> set[str]:
    names = getattr(model, "feature_names_in_", None)
    return set(names.tolist()) if names is not None else set(X.columns)


def _latency_p99_ms(model: Any, X: Any, rows: int) -> float | None:
    import numpy as np

    if rows <= 0 or len(X) == 0:
        return None
    timings = []
    for i in range(min(rows, len(X))):
        row = X.iloc[[i % len(X)]]
        started = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(timings, 99))


def _top_features(model: Any, X: Any, y: Any, policy: GatePolicy, repeats: int,
                  seed: int) -> tuple[str, ...]:
    import numpy as np
    from sklearn.inspection import permutation_importance

    if policy.top_features <= 0 or repeats <= 0 or X.shape[1] == 0:
        return ()
    sample = X.sample(n=min(len(X), 2_000), random_state=seed)
    result = permutation_importance(model, sample, y.loc[sample.index], n_repeats=repeats,
                                    random_state=seed)
    order = np.argsort(-result.importances_mean)[: policy.top_features]
    return tuple(str(X.columns[i]) for i in order)


class LoadedPredictor:
    """A loaded model as the gate's evaluator expects it (predict, predict_proba, classes_),
    going through the same signature handling as serving."""

    def __init__(self, model: Any) -> None:
        self.model = model
        raw = model.raw
        if hasattr(raw, "classes_"):
            self.classes_ = raw.classes_
        names = model.signature.input_names if model.signature else None
        if names is not None:
            import numpy as np

            self.feature_names_in_ = np.asarray(names, dtype=object)

    def predict(self, X: Any) -> Any:
        return self.model.predict(X)

    def predict_proba(self, X: Any) -> Any:
        return self.model.predict_proba(X)

    def fit(self, X: Any, y: Any) -> LoadedPredictor:  # scikit-learn's checks look for it
        return self

    def score(self, X: Any, y: Any) -> float:
        import numpy as np

        return float(np.mean(np.asarray(self.predict(X)) == np.asarray(y)))
