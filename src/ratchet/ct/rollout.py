"""Rollout guards: is the challenger behaving in shadow, then on its canary share?

Pure functions over the prediction log's rows since the phase began (the live log, or a
backtest's simulated one, in the same shape). Each answers: enough evidence yet? passed?
why not? with the numbers. A canary that has already spent its whole error budget fails
at once, without waiting for the rest of its requests.

The canary's answers are expected to differ from the champion's by as much as the two
models' answers differed on the gate's holdout (``expected_prediction_shift``): after a
change in the world a better model *should* answer differently, so only a shift beyond
that, by more than ``max_prediction_shift``, is an alarm, and labeled evidence that the
canary is better overrides it.
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


def shadow_check(policy: RolloutPolicy, logged: pd.DataFrame, version: int, *,
                 elapsed_ms: int | None = None) -> RolloutCheck:
    """The challenger answered a copy of live traffic: errors, latency, disagreement.
    Done at ``shadow_requests`` rows, or ``max_phase`` after the phase began
    (``elapsed_ms``) with at least one row."""
    import numpy as np

    shadow = logged[(logged["variant"] == SHADOW) & (logged["model_version"] == version)]
    primary = logged[logged["variant"] == PRIMARY]
    n = len(shadow)  # logged rows: a request of ten rows is ten rows of evidence
    errors = int((shadow["status"] != "ok").sum())
    evidence: dict[str, Any] = {"rows": n, "requests": _requests(shadow), "errors": errors,
                                "needed": policy.shadow_requests}
    reasons = _error_budget(policy, n, errors, policy.shadow_requests)
    if n < policy.shadow_requests and not reasons and \
            not _timed_out(policy, elapsed_ms, n, evidence):
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
                 metric: str = "accuracy", classes: list[Any] | None = None,
                 expected_shift: float | None = None,
                 elapsed_ms: int | None = None) -> RolloutCheck:
    """The challenger answered ``canary_percent`` of live traffic: errors, latency, its
    answers' distribution vs the champion's in the same period, and live ``metric`` once
    enough feedback has arrived (waiting up to twice the canary's requests for it): worse
    than the champion by more than ``max_accuracy_drop`` and by more than two standard
    errors fails.

    The answers' shift alarms when it exceeds ``expected_shift`` (the same statistic
    between the two models on the gate's holdout, ``expected_prediction_shift``; 0 when not
    given) by more than ``max_prediction_shift``. Like the accuracy guard it waits for
    feedback, because a live ``metric`` better than the champion's in the same period (once
    ``min_labels`` on both sides) overrides it: the evidence says so.

    With ``max_phase``, ``elapsed_ms`` after the phase began it is done with the rows it
    has (at least one), and it waits for feedback at most twice that long."""
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
    if n < policy.canary_requests and not _timed_out(policy, elapsed_ms, n, evidence):
        return RolloutCheck(False, False, (), evidence)
    ok = canary[canary["status"] == "ok"]
    evidence["error_rate"] = errors / n if n else 0.0
    evidence["latency_p99_ms"] = _p99(ok)
    reasons += _latency(policy, evidence["latency_p99_ms"])
    shifted = _prediction_shift(policy, ok, primary, evidence, expected_shift)
    labeled = _labeled(ok), _labeled(primary)
    enough = min(len(labeled[0]), len(labeled[1])) >= policy.min_labels
    evidence["labeled"] = [len(labeled[0]), len(labeled[1])]
    if not enough and n < 2 * policy.canary_requests and not reasons and \
            not _timed_out(policy, elapsed_ms, n, evidence, phases=2):
        return RolloutCheck(False, False, (), evidence)  # wait for feedback
    if enough:
        ours, theirs = (_metric(f, metric, classes) for f in labeled)
        evidence["live"] = {"metric": metric, "canary": ours, "champion": theirs}
        if ours is not None and theirs is not None:
            drop = ours - theirs if metric in LOWER_IS_BETTER else theirs - ours
            if shifted and drop < 0:  # labeled evidence beats a label-free alarm
                evidence["prediction_shift"]["overridden"] = (
                    f"the canary's live {metric} {ours:.4f} is better than the champion's "
                    f"{theirs:.4f} on labeled rows of the same period")
                shifted = []
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
    reasons += shifted
    return RolloutCheck(True, not reasons, tuple(reasons), evidence)


def expected_prediction_shift(champion_predictions: Any, challenger_predictions: Any
                              ) -> float | None:
    """How differently the two models answer the same rows (the gate's holdout): the
    statistic the canary's shift guard computes live (Jensen-Shannon distance for classes,
    Wasserstein distance normalized by the champion's spread for numbers). None without
    answers on both sides."""
    import pandas as pd

    theirs = pd.Series(champion_predictions).dropna().infer_objects()
    ours = pd.Series(challenger_predictions).dropna().infer_objects()
    if not len(ours) or not len(theirs):
        return None
    return _shift_statistic(theirs, ours)[1]


# ----------------------------------------------------------------------------- pieces
def _timed_out(policy: RolloutPolicy, elapsed_ms: int | None, n: int,
               evidence: dict[str, Any], *, phases: int = 1) -> bool:
    """The phase has run ``max_phase`` with at least one row: it is judged on what it has
    (the evidence says so) instead of waiting for requests a quiet service may take years
    to send."""
    if policy.max_phase is None or elapsed_ms is None or n < 1:
        return False
    limit = int(policy.max_phase.total_seconds() * 1000) * phases
    if elapsed_ms < limit:
        return False
    evidence["ended_by"] = f"max_phase: {n} rows after {elapsed_ms / 86_400_000:.1f} days"
    return True


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
                      evidence: dict[str, Any], expected: float | None) -> list[str]:
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
    test, statistic = _shift_statistic(theirs, ours)
    bound = (expected or 0.0) + policy.max_prediction_shift
    evidence["prediction_shift"] = {"test": test, "statistic": statistic,
                                    "expected": expected,
                                    "tolerance": policy.max_prediction_shift}
    if statistic > bound:
        allowed = f"{policy.max_prediction_shift:g}" if expected is None else (
            f"{expected:.3f} measured between the two models on the gate's holdout + "
            f"{policy.max_prediction_shift:g}")
        return [f"the canary's answers are distributed differently from the champion's "
                f"({test} {statistic:.3f} > {allowed})"]
    return []


def _shift_statistic(theirs: pd.Series, ours: pd.Series) -> tuple[str, float]:
    """(test, statistic) between the champion's answers and the challenger's."""
    from ratchet.monitoring.drift import (
        JENSENSHANNON,
        NUMERIC,
        WASSERSTEIN,
        DriftTest,
        column_drift,
        column_kind,
    )

    kind = column_kind(theirs)
    test = WASSERSTEIN if kind == NUMERIC and theirs.nunique() > 5 else JENSENSHANNON
    result = column_drift(theirs, ours, column="prediction",
                          kind=kind if test == WASSERSTEIN else "categorical",
                          test=DriftTest(test, 1.0))
    return test, float(result.statistic)


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
