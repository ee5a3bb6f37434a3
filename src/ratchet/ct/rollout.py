"""Rollout guards: is the challenger behaving in shadow, then on its canary share?

Pure functions over the prediction log's rows since the phase began (the live log, or a
backtest's simulated one, in the same shape). Each answers: enough evidence yet? passed?
why not? with the numbers. A canary that has already spent its whole error budget fails
at once, without waiting for the rest of its requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ratchet.ct.gate import LOWER_IS_BETTER
from ratchet.ct.policy import RolloutPolicy

if TYPE_CHECKING:
    import pandas as pd

SHADOW, CANARY, PRIMARY = "shadow", "canary", "primary"


@dataclass(frozen=True)
class RolloutCheck:
    done: bool                   # the evidence is complete (or already decisive)
    passed: bool
    reasons: tuple[str, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)


def shadow_check(policy: RolloutPolicy, logged: pd.DataFrame, version: int) -> RolloutCheck:
    """The challenger answered a copy of live traffic: errors, latency, disagreement."""
    import numpy as np

    shadow = logged[(logged["variant"] == SHADOW) & (logged["model_version"] == version)]
    primary = logged[logged["variant"] == PRIMARY]
    n = len(shadow)  # logged rows: a request of ten rows is ten rows of evidence
    errors = int((shadow["status"] != "ok").sum())
    evidence: dict[str, Any] = {"rows": n, "requests": _requests(shadow), "errors": errors,
                                "needed": policy.shadow_requests}
    reasons = _error_budget(policy, n, errors, policy.shadow_requests)
    if n < policy.shadow_requests and not reasons:
        return RolloutCheck(False, False, (), evidence)
    ok = shadow[shadow["status"] == "ok"]
    evidence["error_rate"] = errors / n if n else 0.0
    evidence["latency_p99_ms"] = _p99(ok)
    reasons += _latency(policy, evidence["latency_p99_ms"])
    pairs = ok.merge(primary[primary["status"] == "ok"], on=["request_id", "row"],
                     suffixes=("", "_primary"))
    if len(pairs) and "output.prediction" in pairs.columns:
        differ = pairs["output.prediction"].to_numpy() != \
            pairs["output.prediction_primary"].to_numpy()
        evidence["compared"] = len(pairs)
        evidence["disagreement"] = float(np.mean(differ))
        if policy.max_disagreement is not None and \
                evidence["disagreement"] > policy.max_disagreement:
            reasons.append(f"shadow disagrees with the champion on "
                           f"{evidence['disagreement']:.1%} of rows (policy: at most "
                           f"{policy.max_disagreement:.1%})")
    return RolloutCheck(True, not reasons, tuple(reasons), evidence)


def canary_check(policy: RolloutPolicy, logged: pd.DataFrame, version: int, *,
                 metric: str = "accuracy", classes: list[Any] | None = None) -> RolloutCheck:
    """The challenger answered ``canary_percent`` of live traffic: errors, latency, its
    answers' distribution vs the champion's in the same period, and live ``metric`` once
    enough feedback has arrived (waiting up to twice the canary's requests for it): worse
    than the champion by more than ``max_accuracy_drop`` and by more than two standard
    errors fails."""
    canary = logged[(logged["variant"] == CANARY) & (logged["model_version"] == version)]
    primary = logged[(logged["variant"] == PRIMARY) & (logged["status"] == "ok")]
    n = len(canary)
    errors = int((canary["status"] != "ok").sum())
    evidence: dict[str, Any] = {"rows": n, "requests": _requests(canary), "errors": errors,
                                "needed": policy.canary_requests,
                                "primary_requests": len(primary)}
    reasons = _error_budget(policy, n, errors, policy.canary_requests)
    if reasons:
        return RolloutCheck(True, False, tuple(reasons), evidence)
    if n < policy.canary_requests:
        return RolloutCheck(False, False, (), evidence)
    ok = canary[canary["status"] == "ok"]
    evidence["error_rate"] = errors / n if n else 0.0
    evidence["latency_p99_ms"] = _p99(ok)
    reasons += _latency(policy, evidence["latency_p99_ms"])
    reasons += _prediction_shift(policy, ok, primary, evidence)
    labeled = _labeled(ok), _labeled(primary)
    enough = min(len(labeled[0]), len(labeled[1])) >= policy.min_labels
    evidence["labeled"] = [len(labeled[0]), len(labeled[1])]
    if not enough and n < 2 * policy.canary_requests and not reasons:
        return RolloutCheck(False, False, (), evidence)  # wait for feedback
    if enough:
        ours, theirs = (_metric(f, metric, classes) for f in labeled)
        evidence["live"] = {"metric": metric, "canary": ours, "champion": theirs}
        if ours is not None and theirs is not None:
            drop = ours - theirs if metric in LOWER_IS_BETTER else theirs - ours
            noise = _noise(metric, ours, theirs, *map(len, labeled))
            evidence["live"].update(drop=drop, standard_error=noise)
            # Worse by more than the policy allows, and by more than two standard errors:
            # a few dozen labeled rows per side must not roll back a good model by chance.
            if drop > policy.max_accuracy_drop and (noise is None or drop > 2 * noise):
                reasons.append(f"live {metric} {ours:.4f} vs the champion's {theirs:.4f} in "
                               f"the same period: worse by {drop:.4f} (policy: at most "
                               f"{policy.max_accuracy_drop:g}; 2 standard errors: "
                               f"{2 * noise if noise is not None else float('nan'):.4f})")
    else:
        evidence["live"] = {"metric": metric, "note": f"fewer than {policy.min_labels} "
                            "labeled rows on a side: not judged"}
    return RolloutCheck(True, not reasons, tuple(reasons), evidence)


# ----------------------------------------------------------------------------- pieces
def _requests(rows: pd.DataFrame) -> int:
    """Distinct requests among logged rows (the counts above are rows, as the policy's
    ``shadow_requests`` / ``canary_requests`` are)."""
    return int(rows["request_id"].nunique()) if "request_id" in rows.columns else len(rows)


def _error_budget(policy: RolloutPolicy, n: int, errors: int, needed: int) -> list[str]:
    """Failing as soon as the errors exceed what the whole phase may have (in rows)."""
    budget = policy.max_error_rate * max(needed, n)
    if errors > budget and errors > 0:
        return [f"{errors} of {n} rows failed (policy: error rate at most "
                f"{policy.max_error_rate:.1%} over {max(needed, n)} rows)"]
    return []


def _latency(policy: RolloutPolicy, p99: float | None) -> list[str]:
    if policy.max_latency_p99_ms is not None and p99 is not None and \
            p99 > policy.max_latency_p99_ms:
        return [f"p99 latency {p99:.2f} ms is over {policy.max_latency_p99_ms:g} ms"]
    return []


def _p99(rows: pd.DataFrame) -> float | None:
    import numpy as np

    if not len(rows):
        return None
    return float(np.percentile(rows["latency_ms"].to_numpy(dtype=float), 99))


def _prediction_shift(policy: RolloutPolicy, canary: pd.DataFrame, primary: pd.DataFrame,
                      evidence: dict[str, Any]) -> list[str]:
    from ratchet.monitoring.drift import (
        JENSENSHANNON,
        NUMERIC,
        WASSERSTEIN,
        DriftTest,
        column_drift,
        column_kind,
    )

    column = "output.prediction"
    if policy.max_prediction_shift is None or column not in canary.columns or \
            not len(canary) or not len(primary):
        return []
    # Error rows leave holes (None) that make the column object-typed: infer again, so
    # numbers are compared as numbers.
    ours = canary[column].dropna().infer_objects()
    theirs = primary[column].dropna().infer_objects()
    if not len(ours) or not len(theirs):
        return []
    kind = column_kind(theirs)
    test = WASSERSTEIN if kind == NUMERIC and theirs.nunique() > 5 else JENSENSHANNON
    result = column_drift(theirs, ours, column="prediction",
                          kind=kind if test == WASSERSTEIN else "categorical",
                          test=DriftTest(test, policy.max_prediction_shift))
    evidence["prediction_shift"] = {"test": test, "statistic": result.statistic}
    if result.statistic > policy.max_prediction_shift:
        return [f"the canary's answers are distributed differently from the champion's "
                f"({test} {result.statistic:.3f} > {policy.max_prediction_shift:g})"]
    return []


def _noise(metric: str, ours: float, theirs: float, n_ours: int, n_theirs: int
           ) -> float | None:
    """The standard error of a difference of two rates (accuracy-like metrics in [0, 1]);
    None for other metrics, whose drop is judged on the bound alone."""
    import math

    if not (0 <= ours <= 1 and 0 <= theirs <= 1) or metric in LOWER_IS_BETTER:
        return None
    return math.sqrt(ours * (1 - ours) / max(n_ours, 1)
                     + theirs * (1 - theirs) / max(n_theirs, 1))


def _labeled(rows: pd.DataFrame) -> pd.DataFrame:
    if "feedback" not in rows.columns:
        return rows.iloc[0:0]
    return rows[rows["feedback"].notna()]


def _metric(rows: pd.DataFrame, metric: str, classes: list[Any] | None) -> float | None:
    from ratchet.monitoring.performance import classification_metrics, regression_metrics

    truth, predicted = rows["feedback"].to_numpy(), rows["output.prediction"].to_numpy()
    if classes is not None:
        metrics = classification_metrics(truth, predicted, None, classes)
    else:
        metrics = regression_metrics(truth.astype(float), predicted.astype(float))
    value = metrics.get(metric)
    return None if value is None else float(value)
