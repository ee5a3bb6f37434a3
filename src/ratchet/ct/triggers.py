"""When to retrain: a policy's triggers against what the loop observes now. Pure: the same
function decides live (the controller) and in a backtest (a simulated clock).

Automatic triggers respect the cooldown since the last retrain and the maximum number of
retrains in the last 24 hours; a manual request (a person asked) is never blocked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ratchet.ct.gate import LOWER_IS_BETTER
from ratchet.ct.policy import DRIFT, MANUAL, NEW_LABELS, PERFORMANCE, SCHEDULE, CTPolicy
from ratchet.durations import format_duration
from ratchet.errors import InvalidInput


@dataclass(frozen=True)
class Observations:
    now: datetime
    monitor_verdict: str | None = None            # the newest monitor result's verdict
    performance: Mapping[str, float] = field(default_factory=dict)  # newest window
    baseline: Mapping[str, float] = field(default_factory=dict)     # champion at promotion
    baseline_source: str | None = None            # where the baseline came from, in words
    performance_source: str = "realized"          # or "estimated" (calibrated, no labels)
    window_rows: int = 0                          # rows in the newest monitor window
    labeled_rows: int = 0                         # of them labeled
    min_rows: int = 0                             # the policy's monitor.min_rows
    new_labels: int = 0                           # labeled rows since the last retrain
    manual: bool = False                          # someone asked (ratchet ct retrain)
    last_retrain_at: datetime | None = None
    retrains_last_24h: int = 0
    last_checked_at: datetime | None = None       # previous evaluation (cron firings)


@dataclass(frozen=True)
class FiredTrigger:
    kind: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TriggerDecision:
    retrain: bool
    fired: tuple[FiredTrigger, ...]
    blocked: str | None = None       # why fired triggers did not start a retrain


def evaluate_triggers(policy: CTPolicy, obs: Observations) -> TriggerDecision:
    now = _utc(obs.now, "now")
    fired = [f for trigger in policy.triggers if (f := _fires(trigger, obs, now)) is not None]
    if not fired:
        return TriggerDecision(False, ())
    if any(f.kind == MANUAL for f in fired):
        return TriggerDecision(True, tuple(fired))
    if obs.last_retrain_at is not None:
        since = now - _utc(obs.last_retrain_at, "last_retrain_at")
        if since < policy.cooldown:
            return TriggerDecision(False, tuple(fired),
                                   f"cooldown: last retrain {_ago(since)} ago, the policy "
                                   f"waits {_ago(policy.cooldown)}")
    if obs.retrains_last_24h >= policy.max_retrains_per_day:
        return TriggerDecision(False, tuple(fired),
                               f"{obs.retrains_last_24h} retrains in the last 24 hours; the "
                               f"policy allows {policy.max_retrains_per_day}")
    return TriggerDecision(True, tuple(fired))


def explain_triggers(policy: CTPolicy, obs: Observations) -> tuple[str, ...]:
    """Why each trigger of ``policy`` does or does not fire on ``obs``, one sentence each
    (what ``ratchet ct status`` shows while the controller watches)."""
    now = _utc(obs.now, "now")
    lines = []
    for trigger in policy.triggers:
        fired = _fires(trigger, obs, now)
        lines.append(f"{trigger.describe()}: " + (f"fires ({fired.reason})" if fired else
                                                  _quiet(trigger, obs, now, policy)))
    decision = evaluate_triggers(policy, obs)
    if decision.blocked:
        lines.append(f"blocked: {decision.blocked}")
    return tuple(lines)


def _quiet(trigger: Any, obs: Observations, now: datetime, policy: CTPolicy) -> str:
    """Why ``trigger`` (which did not fire) is quiet, with the numbers."""
    kind = trigger.kind
    # Only rows within a data.lookback are watched: at low traffic that is the limit.
    within = "" if policy.data.lookback is None else \
        f" within data.lookback ({format_duration(policy.data.lookback)})"
    if kind == MANUAL:
        return "nobody asked (ratchet ct retrain MODEL)"
    if kind == NEW_LABELS:
        return f"{obs.new_labels} of {trigger.rows} new labeled rows since the last retrain"
    if kind == SCHEDULE:
        if obs.last_checked_at is None:
            return "the first check starts the clock"
        from croniter import croniter

        due = croniter(trigger.cron, _utc(obs.last_checked_at, "last_checked_at")
                       ).get_next(datetime)
        return f"next due at {due.replace(tzinfo=due.tzinfo or UTC).isoformat()}"
    if kind == DRIFT:
        if obs.monitor_verdict is None:
            return (f"no monitor verdict yet: {obs.window_rows} of the {obs.min_rows} "
                    f"served rows a verdict needs{within}")
        return f"the newest monitor verdict is {obs.monitor_verdict!r}"
    value = obs.performance.get(trigger.metric)
    if value is None:
        return (f"no {trigger.metric} yet: {obs.labeled_rows} labeled rows of the "
                f"{obs.min_rows} a window needs{within} (and no calibrated estimate)")
    source = "" if obs.performance_source == "realized" else \
        f" ({obs.performance_source}, no labels yet)"
    if trigger.below is not None:
        word = "above" if trigger.metric in LOWER_IS_BETTER else "below"
        return f"{trigger.metric} {value:.4f}{source} is not {word} {trigger.below:g}"
    baseline = obs.baseline.get(trigger.metric)
    if baseline is None:
        return f"no baseline {trigger.metric} for the champion yet"
    loss = value - baseline if trigger.metric in LOWER_IS_BETTER else baseline - value
    return (f"{trigger.metric} {value:.4f}{source} vs the baseline {baseline:.4f} "
            f"({obs.baseline_source or 'recorded'}): worse by {loss:.4f}, the policy "
            f"allows {trigger.drop:g}")


def _fires(trigger: Any, obs: Observations, now: datetime) -> FiredTrigger | None:
    kind = trigger.kind
    if kind == MANUAL:
        return FiredTrigger(MANUAL, "requested by hand") if obs.manual else None
    if kind == DRIFT:
        if obs.monitor_verdict == "drift":
            return FiredTrigger(DRIFT, "the newest monitor result says drift",
                                {"verdict": obs.monitor_verdict})
        return None
    if kind == NEW_LABELS:
        if obs.new_labels >= trigger.rows:
            return FiredTrigger(NEW_LABELS, f"{obs.new_labels} new labeled rows (policy: "
                                f"{trigger.rows})", {"new_labels": obs.new_labels})
        return None
    if kind == SCHEDULE:
        return _schedule(trigger.cron, obs, now)
    if kind == PERFORMANCE:
        return _performance(trigger, obs)
    raise InvalidInput(f"unknown trigger kind {kind!r}")


def _performance(trigger: Any, obs: Observations) -> FiredTrigger | None:
    value = obs.performance.get(trigger.metric)
    if value is None:
        return None
    lower_better = trigger.metric in LOWER_IS_BETTER
    if trigger.below is not None:
        bad = value > trigger.below if lower_better else value < trigger.below
        word = "above" if lower_better else "below"
        if bad:
            return FiredTrigger(PERFORMANCE, f"{trigger.metric} {value:.4f} is {word} "
                                f"{trigger.below:g}", {trigger.metric: value,
                                                       "bound": trigger.below})
        return None
    baseline = obs.baseline.get(trigger.metric)
    if baseline is None:
        return None
    loss = value - baseline if lower_better else baseline - value
    if loss > trigger.drop:
        source = "" if obs.performance_source == "realized" else \
            f" ({obs.performance_source})"
        return FiredTrigger(PERFORMANCE, f"{trigger.metric} {value:.4f}{source} is "
                            f"{loss:.4f} worse than the champion's {baseline:.4f} "
                            f"({obs.baseline_source or 'recorded'}; policy: {trigger.drop:g})",
                            {trigger.metric: value, "baseline": baseline, "drop": loss,
                             "baseline_source": obs.baseline_source,
                             "source": obs.performance_source})
    return None


def _schedule(cron: str, obs: Observations, now: datetime) -> FiredTrigger | None:
    from croniter import croniter

    if obs.last_checked_at is None:
        return None  # the first check only starts the clock
    after = _utc(obs.last_checked_at, "last_checked_at")
    due = croniter(cron, after).get_next(datetime)
    if due.tzinfo is None:
        due = due.replace(tzinfo=UTC)
    if due <= now:
        return FiredTrigger(SCHEDULE, f"scheduled at {due.isoformat()} ({cron!r}, UTC)",
                            {"due": due.isoformat()})
    return None


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a datetime, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"
