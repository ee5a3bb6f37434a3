"""A continuous-training policy: what to retrain, when, how to judge and roll it out.

Written in Python (``CTPolicy(...)``) or YAML (``load_policy("churn.yaml")``)::

    model: churn                 # the registered model the loop moves forward
    deployment: churn            # where it is served (default: the model's name)
    pipeline: flows:training     # module:name or file.py:name, run to make a challenger
    params: {C: 1.0}             # pipeline parameters (the controller adds data=DATASET@V)
    triggers:
      - drift                    # the newest monitor verdict is drift
      - {performance: accuracy, below: 0.7}
      - {performance: accuracy, drop: 0.05}      # vs the champion's accuracy at promotion
      - {schedule: "0 3 * * 1"}
      - {new_labels: 5000}
      - manual                   # always allowed: ratchet ct retrain
    cooldown: 6h                 # no new retrain sooner than this after the last one
    max_retrains_per_day: 2
    gate: {metric: accuracy, margin: 0.01, slices: [plan], slice_tolerance: 0.02,
           latency_budget_ms: 20}
    rollout: {shadow_requests: 500, canary_percent: 10, canary_requests: 1000,
              max_error_rate: 0.01, max_latency_p99_ms: 50, max_accuracy_drop: 0.02,
              max_phase: 7d}      # a phase ends at its requests or after max_phase
    approval: false              # true: wait for ratchet ct approve|reject before promoting
    data: {label: churned, rows: 20000, holdout: 2000}  # lookback: 30d bounds their age;
                                 # timestamp: requested_at adds each row's request time
    monitor: {rows: 5000}        # the newest logged rows the controller judges at each tick

Every field is checked when the policy is built; a mistake names the field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from typing import Any

from ratchet.ct.gate import GatePolicy
from ratchet.durations import format_duration
from ratchet.errors import InvalidInput

DRIFT, PERFORMANCE, SCHEDULE, NEW_LABELS, MANUAL = (
    "drift", "performance", "schedule", "new_labels", "manual")
TRIGGER_KINDS = (DRIFT, PERFORMANCE, SCHEDULE, NEW_LABELS, MANUAL)


@dataclass(frozen=True)
class Trigger:
    kind: str
    metric: str | None = None     # performance
    below: float | None = None    # performance: an absolute bound
    drop: float | None = None     # performance: a margin below the champion's baseline
    cron: str | None = None       # schedule (UTC)
    rows: int | None = None       # new_labels

    def to_spec(self) -> Any:
        """The YAML form: ``drift``, ``{performance: accuracy, below: 0.7}``, ..."""
        if self.kind in (DRIFT, MANUAL):
            return self.kind
        if self.kind == PERFORMANCE:
            bound = {"below": self.below} if self.below is not None else {"drop": self.drop}
            return {PERFORMANCE: self.metric, **bound}
        if self.kind == SCHEDULE:
            return {SCHEDULE: self.cron}
        return {NEW_LABELS: self.rows}

    def describe(self) -> str:
        if self.kind == PERFORMANCE:
            bound = f"below {self.below:g}" if self.below is not None else \
                f"dropping by {self.drop:g}"
            return f"{self.metric} {bound}"
        if self.kind == SCHEDULE:
            return f"schedule {self.cron!r} (UTC)"
        if self.kind == NEW_LABELS:
            return f"{self.rows} new labeled rows"
        return self.kind


@dataclass(frozen=True)
class RolloutPolicy:
    shadow_requests: int = 500
    canary_percent: float = 10.0
    canary_requests: int = 1_000
    max_error_rate: float = 0.01
    max_latency_p99_ms: float | None = None
    max_accuracy_drop: float = 0.02      # canary vs champion, once feedback arrives
    max_disagreement: float | None = None  # shadow vs champion predictions
    max_prediction_shift: float | None = 0.2  # canary vs champion answers, JS / Wasserstein
    min_labels: int = 30                 # labeled canary rows before accuracy is judged
    # A phase also ends this long after it began, judged on the rows it has (at least
    # one): at low traffic a rollout takes days, not the years its requests would.
    max_phase: timedelta | None = timedelta(days=7)

    def __post_init__(self) -> None:
        if self.max_phase is not None and (not isinstance(self.max_phase, timedelta)
                                           or self.max_phase <= timedelta(0)):
            shown = format_duration(self.max_phase) if isinstance(self.max_phase, timedelta) \
                else repr(self.max_phase)
            raise InvalidInput(f"rollout.max_phase must be a positive duration (7d) or null, "
                               f"got {shown}")
        for name in ("shadow_requests", "canary_requests", "min_labels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"rollout.{name} must be an int >= 0, got {value!r}")
        if not _number(self.canary_percent) or not 0 < self.canary_percent <= 100:
            raise InvalidInput(f"rollout.canary_percent must be in (0, 100], got "
                               f"{self.canary_percent!r}")
        for name in ("max_error_rate", "max_accuracy_drop"):
            if not _number(getattr(self, name)) or not 0 <= getattr(self, name) <= 1:
                raise InvalidInput(f"rollout.{name} must be in [0, 1], got "
                                   f"{getattr(self, name)!r}")
        for name in ("max_latency_p99_ms", "max_disagreement", "max_prediction_shift"):
            value = getattr(self, name)
            if value is not None and (not _number(value) or value <= 0):
                raise InvalidInput(f"rollout.{name} must be a number > 0, got {value!r}")


WINDOW_NEWEST, WINDOW_CHANGEPOINT = "newest", "changepoint"
WINDOWS = (WINDOW_NEWEST, WINDOW_CHANGEPOINT)


@dataclass(frozen=True)
class DataPolicy:
    """What a retrain learns from: the newest labeled production rows (inputs + feedback
    as ``label``), at most ``rows``, read from the last ``lookback`` of the log (None, the
    default: as far back as those rows are — a low-traffic log is read in growing spans
    until it holds them, so one row a day is as usable as a thousand a minute); the newest
    ``holdout`` of them are held out for the gate, the rest train the challenger. With
    ``refit``, a challenger that passed the gate is trained once more on all the rows
    (holdout included: the newest data) before its rollout guards it live.

    ``window: changepoint`` keeps only the rows since the most recent change point in the
    champion's right/wrong series over the lookback (``ratchet.ct.changepoint``; each side
    of a change at least ``holdout`` rows), but never fewer than ``min_window`` (default:
    twice the holdout, at least ``min_rows``, at most ``rows``) nor more than ``rows``;
    with no change point found, the newest ``rows`` as with ``window: newest``."""

    label: str = "label"
    rows: int = 10_000
    holdout: int = 1_000
    lookback: timedelta | None = None  # a hard bound on the rows' age; None: rows decide
    min_rows: int = 200          # fewer labeled rows than this: the retrain waits
    refit: bool = False          # once the gate passed, retrain on train + holdout
    window: str = WINDOW_NEWEST  # or changepoint: the rows since the error rate last moved
    min_window: int | None = None  # changepoint: the fewest rows kept (train + holdout)
    # Each row's request time (UTC) as this column: a pipeline building its training set
    # from the feature store takes the features as of it (None: no time column).
    timestamp: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise InvalidInput(f"data.label must be a column name, got {self.label!r}")
        if self.timestamp is not None and (not isinstance(self.timestamp, str)
                                           or not self.timestamp
                                           or self.timestamp == self.label):
            raise InvalidInput(f"data.timestamp must be a column name other than data.label, "
                               f"got {self.timestamp!r}")
        for name in ("rows", "holdout", "min_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInput(f"data.{name} must be an int >= 1, got {value!r}")
        if self.holdout >= self.rows:
            raise InvalidInput(f"data.holdout ({self.holdout}) must be smaller than data.rows "
                               f"({self.rows}): the rest trains the challenger")
        if self.window not in WINDOWS:
            raise InvalidInput(f"data.window must be one of {', '.join(WINDOWS)}, got "
                               f"{self.window!r}")
        value = self.min_window
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInput(f"data.min_window must be an int (rows), got {value!r}")
            if not (self.holdout < value <= self.rows and value >= self.min_rows):
                raise InvalidInput(f"data.min_window ({value}) must be larger than "
                                   f"data.holdout ({self.holdout}), at least data.min_rows "
                                   f"({self.min_rows}) and at most data.rows ({self.rows}): "
                                   "the window holds the holdout and the rows that train "
                                   "the challenger")
            if self.window != WINDOW_CHANGEPOINT:
                raise InvalidInput("data.min_window applies to window: changepoint only "
                                   f"(data.window is {self.window!r})")

    @property
    def smallest_window(self) -> int:
        """``min_window``, or its default: twice the holdout, at least ``min_rows``, at
        most ``rows``."""
        if self.min_window is not None:
            return self.min_window
        return min(self.rows, max(2 * self.holdout, self.min_rows))


@dataclass(frozen=True)
class MonitorPolicy:
    """What the controller watches at each tick: the newest ``rows`` logged rows (within
    the data lookback) of the champion, against its training data."""

    rows: int = 1_000
    min_rows: int = 100          # fewer: no verdict yet
    multivariate: bool = True    # also the classifier test (slower)

    def __post_init__(self) -> None:
        for name in ("rows", "min_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInput(f"monitor.{name} must be an int >= 1, got {value!r}")


@dataclass(frozen=True)
class CTPolicy:
    model: str
    pipeline: str
    deployment: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    triggers: tuple[Trigger, ...] = (Trigger(DRIFT), Trigger(MANUAL))
    cooldown: timedelta = timedelta(hours=6)
    max_retrains_per_day: int = 2
    gate: GatePolicy = field(default_factory=GatePolicy)
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)
    approval: bool = False
    data: DataPolicy = field(default_factory=DataPolicy)
    monitor: MonitorPolicy = field(default_factory=MonitorPolicy)

    def __post_init__(self) -> None:
        from ratchet.registry.uris import parse_model_uri

        if not isinstance(self.model, str) or not self.model:
            raise InvalidInput(f"policy model must be a registered model's name, got "
                               f"{self.model!r}")
        parse_model_uri(f"{self.model}/1")  # a name the registry can hold
        if not isinstance(self.pipeline, str) or ":" not in self.pipeline:
            raise InvalidInput(f"policy pipeline must be module:name or file.py:name, got "
                               f"{self.pipeline!r}")
        if not isinstance(self.params, Mapping):
            raise InvalidInput("policy params must be a mapping of pipeline parameters")
        if not self.triggers:
            raise InvalidInput("policy triggers: give at least one (e.g. drift, manual)")
        if self.cooldown < timedelta(0):
            raise InvalidInput("policy cooldown must not be negative")
        if not isinstance(self.max_retrains_per_day, int) or self.max_retrains_per_day < 1:
            raise InvalidInput(f"policy max_retrains_per_day must be an int >= 1, got "
                               f"{self.max_retrains_per_day!r}")
        self.gate.check_holdout(self.data.holdout, "data.holdout")  # can it show the margin?

    @property
    def deployment_name(self) -> str:
        return self.deployment or self.model

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (``policy_from_dict`` reads it back)."""
        gate = asdict(self.gate)
        gate["slices"] = list(self.gate.slices)
        return {"model": self.model, "pipeline": self.pipeline, "deployment": self.deployment,
                "params": dict(self.params), "triggers": [t.to_spec() for t in self.triggers],
                "cooldown": f"{int(self.cooldown.total_seconds())}s",
                "max_retrains_per_day": self.max_retrains_per_day, "gate": gate,
                "rollout": {**asdict(self.rollout), "max_phase": None
                            if self.rollout.max_phase is None else
                            f"{int(self.rollout.max_phase.total_seconds())}s"},
                "approval": self.approval,
                "data": {**asdict(self.data),
                         "lookback": None if self.data.lookback is None else
                         f"{int(self.data.lookback.total_seconds())}s"},
                "monitor": asdict(self.monitor)}


# ----------------------------------------------------------------------------- parsing
def policy_from_dict(data: Any, where: str = "policy") -> CTPolicy:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: expected a mapping with model, pipeline, triggers, ...")
    known = {f.name for f in fields(CTPolicy)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(known))})")
    for required in ("model", "pipeline"):
        if required not in data:
            raise InvalidInput(f"{where}: {required!r} is required")
    kwargs = dict(data)
    if "triggers" in kwargs:
        raw = kwargs["triggers"]
        if not isinstance(raw, list):
            raise InvalidInput(f"{where}.triggers: expected a list")
        kwargs["triggers"] = tuple(trigger_from(t, f"{where}.triggers[{i}]")
                                   for i, t in enumerate(raw))
    if "cooldown" in kwargs:
        kwargs["cooldown"] = _duration(kwargs["cooldown"], f"{where}.cooldown")
    if "gate" in kwargs:
        kwargs["gate"] = _dataclass(GatePolicy, kwargs["gate"], f"{where}.gate",
                                    tuples=("slices",))
    if "rollout" in kwargs:
        raw = kwargs["rollout"]
        if isinstance(raw, Mapping) and raw.get("max_phase") is not None:
            raw = {**raw, "max_phase": _duration(raw["max_phase"],
                                                 f"{where}.rollout.max_phase")}
        kwargs["rollout"] = _dataclass(RolloutPolicy, raw, f"{where}.rollout")
    if "data" in kwargs:
        raw = kwargs["data"]
        if isinstance(raw, Mapping) and raw.get("lookback") is not None:
            raw = {**raw, "lookback": _duration(raw["lookback"], f"{where}.data.lookback")}
        kwargs["data"] = _dataclass(DataPolicy, raw, f"{where}.data")
    if "monitor" in kwargs:
        kwargs["monitor"] = _dataclass(MonitorPolicy, kwargs["monitor"], f"{where}.monitor")
    if "params" in kwargs and kwargs["params"] is None:
        kwargs["params"] = {}
    try:
        return CTPolicy(**kwargs)
    except (TypeError, InvalidInput) as exc:  # checks across sections name the file too
        raise InvalidInput(f"{where}: {exc}") from None


def load_policy(path: str | os.PathLike[str]) -> CTPolicy:
    """A policy from a YAML file; errors name the file and the field."""
    from ratchet.safe_load import load_yaml

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such policy file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the policy file: {exc}") from None
    data = load_yaml(text, str(path))  # bounded: depth and alias expansion
    return policy_from_dict(data, str(path))


def trigger_from(value: Any, where: str) -> Trigger:
    if isinstance(value, Trigger):
        return value
    if value in (DRIFT, MANUAL):
        return Trigger(value)
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: expected one of {', '.join(TRIGGER_KINDS)} or a "
                           f"mapping like {{performance: accuracy, below: 0.7}}, got {value!r}")
    if PERFORMANCE in value:
        extra = sorted(set(value) - {PERFORMANCE, "below", "drop"})
        below, drop = value.get("below"), value.get("drop")
        if extra or (below is None) == (drop is None):
            raise InvalidInput(f"{where}: a performance trigger has a metric and exactly one "
                               "of below (a bound) or drop (a margin)")
        for name, bound in (("below", below), ("drop", drop)):
            if bound is not None and not _number(bound):
                raise InvalidInput(f"{where}.{name}: expected a number, got {bound!r}")
        if not isinstance(value[PERFORMANCE], str):
            raise InvalidInput(f"{where}.performance: expected a metric name")
        return Trigger(PERFORMANCE, metric=value[PERFORMANCE], below=below, drop=drop)
    if SCHEDULE in value and len(value) == 1:
        from ratchet.pipelines.schedules import validate_cron

        validate_cron(value[SCHEDULE])
        return Trigger(SCHEDULE, cron=value[SCHEDULE])
    if NEW_LABELS in value and len(value) == 1:
        rows = value[NEW_LABELS]
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
            raise InvalidInput(f"{where}.new_labels: expected a number of rows >= 1")
        return Trigger(NEW_LABELS, rows=rows)
    raise InvalidInput(f"{where}: unknown trigger {dict(value)!r}; use drift, manual, "
                       "{performance: METRIC, below|drop: X}, {schedule: CRON}, "
                       "{new_labels: N}")


def _dataclass(cls: Any, value: Any, where: str, tuples: tuple[str, ...] = ()) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: expected a mapping")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(known))})")
    kwargs = {k: tuple(v) if k in tuples and isinstance(v, list) else v
              for k, v in value.items()}
    try:
        return cls(**kwargs)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from None


def _duration(value: Any, where: str) -> timedelta:
    from ratchet.durations import parse_duration

    return parse_duration(value, where)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value)
