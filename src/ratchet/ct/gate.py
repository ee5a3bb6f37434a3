"""The promotion gate: may a challenger replace the champion?

Both models are scored on the same fresh holdout (recent labeled production data the
challenger did not train on). The challenger passes only if, on the policy's metric, it
beats the champion by more than the margin; is not worse than the champion by more than
the tolerance on any declared slice; its training data passed its checks; and its p99
latency fits the budget. Every number that decided is kept as evidence. The decision
itself (``decide``) is pure; ``evaluate_model`` is the part that runs models.

A challenger whose most important features share nothing with the champion's is passed
or failed on its scores like any other, but flagged: it may have learned a shortcut.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ratchet.errors import InvalidInput

# Metrics where smaller is better; every other metric is "higher is better".
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "mape"})


@dataclass(frozen=True)
class GatePolicy:
    metric: str = "accuracy"
    margin: float = 0.0             # must beat the champion by more than this
    slice_tolerance: float = 0.02   # may be worse on a slice by at most this
    slices: tuple[str, ...] = ()    # columns whose values define slices
    latency_budget_ms: float | None = None
    min_holdout: int = 100
    top_features: int = 3

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

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER


@dataclass(frozen=True)
class ModelEvaluation:
    """One model on the holdout."""

    score: float                              # the policy's metric, overall
    n: int                                    # holdout rows scored
    slices: Mapping[str, float] = field(default_factory=dict)  # "plan=pro" -> metric
    slice_sizes: Mapping[str, int] = field(default_factory=dict)
    latency_p99_ms: float | None = None
    top_features: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "slices": dict(self.slices),
                "slice_sizes": dict(self.slice_sizes)}


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
    gain = None
    if champion is not None:
        gain = improvement(policy, champion.score, challenger.score)
        if not (math.isfinite(gain) and gain > policy.margin):
            reasons.append(f"{metric} {challenger.score:.4f} vs the champion's "
                           f"{champion.score:.4f}: needs to be better by more than "
                           f"{policy.margin:g}")
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
                "challenger": challenger.to_dict(), "improvement": gain,
                "data_checks_passed": data_checks_passed}
    return GateDecision(not reasons, tuple(reasons), tuple(flags), evidence)


# ----------------------------------------------------------------------------- evaluation
def evaluate_model(model: Any, X: Any, y: Any, *, policy: GatePolicy,
                   classes: Sequence[Any] | None = None, latency_rows: int = 200,
                   importance_repeats: int = 3, seed: int = 0) -> ModelEvaluation:
    """Score a model (anything with ``predict``; ``predict_proba`` for AUC/log loss) on a
    holdout frame: the metric overall and per slice, p99 one-row latency, and the top
    features by scikit-learn's permutation importance."""
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

    def score(rows: Any) -> float:
        part = features.loc[rows]
        truth = y.loc[rows].to_numpy()
        predicted = np.asarray(model.predict(part))
        if classes is not None:
            proba = np.asarray(proba_fn(part)) if proba_fn is not None else None
            metrics = classification_metrics(truth, predicted, proba, classes)
        else:
            metrics = regression_metrics(truth.astype(float), predicted.astype(float))
        if policy.metric not in metrics:
            raise InvalidInput(f"unknown gate metric {policy.metric!r}; known: "
                               f"{', '.join(sorted(k for k in metrics if k != 'n'))}")
        value = metrics[policy.metric]
        return float("nan") if value is None else float(value)

    overall = score(X.index)
    slices, sizes = {}, {}
    for column in policy.slices:
        for value, rows in X.groupby(column, dropna=True).groups.items():
            slices[f"{column}={value}"] = score(rows)
            sizes[f"{column}={value}"] = len(rows)
    latency = _latency_p99_ms(model, features, latency_rows)
    top = _top_features(model, features, y, policy, importance_repeats, seed)
    return ModelEvaluation(overall, len(X), slices, sizes, latency, top)


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
