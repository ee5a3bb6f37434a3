"""Pipeline schedules: run a pipeline on a cron expression, with fixed parameters.

    ratchet.schedule(nightly, "0 3 * * *", params={"n": 2})   # every day at 03:00 UTC

A schedule names its pipeline by reference (``"module:qualname"``), so the pipeline must
be defined at the top level of an importable module; ``ratchet scheduler`` imports it in
its own process and runs it there. Cron expressions have the five standard fields
(minute hour day-of-month month day-of-week) or are one of ``@hourly``, ``@daily``,
``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``, ``@annually``; they are read in UTC.

``next_run_at`` is always the first cron time strictly after the moment it is computed:
when a schedule is created or re-enabled, and after each firing. A scheduler that was down
while several times passed fires once when it comes back, not once per missed time.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ratchet.clock import now_ms, to_ms
from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    from ratchet.store.schedule_store import Schedule, ScheduleStore
    from ratchet.workspace import Workspace

CRON_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
CRON_FIELDS = 5
_CRON_HELP = ("use five fields 'minute hour day-of-month month day-of-week' in UTC, e.g. "
              "'0 3 * * *' for 03:00 every day, or one of " + ", ".join(CRON_ALIASES))
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


# ---------------------------------------------------------------- cron
def validate_cron(cron: object) -> str:
    """The cron expression, normalized (single spaces), or ``InvalidInput`` naming it."""
    if not isinstance(cron, str) or not cron.strip():
        raise InvalidInput(f"cron expression must be a non-empty string, got {cron!r}; "
                           f"{_CRON_HELP}")
    text = " ".join(cron.split())
    if text.startswith("@"):
        if text.lower() not in CRON_ALIASES:
            raise InvalidInput(f"invalid cron expression {cron!r}: unknown alias; {_CRON_HELP}")
        text = text.lower()
    elif len(text.split()) != CRON_FIELDS:
        raise InvalidInput(f"invalid cron expression {cron!r}: it has {len(text.split())} "
                           f"field(s), not {CRON_FIELDS}; {_CRON_HELP}")
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidInput(f"invalid cron expression {cron!r}: it never fires (no such date); "
                           f"{_CRON_HELP}") from None
    except (CroniterError, ValueError, KeyError) as exc:
        reason = str(exc).replace(f"[{text}] ", "").removeprefix("is not acceptable")
        reason = reason.strip(" ,") or "not a cron expression"
        raise InvalidInput(f"invalid cron expression {cron!r}: {reason}; {_CRON_HELP}") from None
    return text


def next_run_time(cron: str, now: datetime | int | None = None) -> int:
    """The first time ``cron`` fires strictly after ``now`` (default: the current time), in
    epoch milliseconds. ``now`` is a datetime (naive means UTC) or epoch milliseconds."""
    from croniter import CroniterError, croniter

    text = validate_cron(cron)
    start = now_ms() if now is None else to_ms(now)
    moment = datetime.fromtimestamp(start / 1000, tz=UTC)
    try:
        following = croniter(text, moment).get_next(datetime)
    except (CroniterError, ValueError) as exc:  # e.g. '0 0 31 2 *' never comes
        raise InvalidInput(f"cron expression {cron!r} has no time after "
                           f"{moment.isoformat()}: {exc}") from None
    return to_ms(following)


# ---------------------------------------------------------------- parameters
def _signature(pipeline: Any) -> inspect.Signature:
    parameters = pipeline.parameters
    if isinstance(parameters, inspect.Signature):
        return parameters
    if isinstance(parameters, Mapping):
        return inspect.Signature(list(parameters.values()))
    return inspect.Signature(list(parameters))


def _simple_type(annotation: object) -> type | None:
    """int / float / str / bool for an annotation that is exactly one of them (or its name,
    under ``from __future__ import annotations``)."""
    simple: dict[object, type] = {int: int, float: float, str: str, bool: bool,
                                  "int": int, "float": float, "str": str, "bool": bool}
    try:
        return simple.get(annotation)
    except TypeError:  # unhashable annotation
        return None


def check_params(pipeline: Any, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` as plain JSON values, checked against the pipeline's signature."""
    name = getattr(pipeline, "name", "pipeline")
    if params is None:
        params = {}
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise InvalidInput(f"params for pipeline {name!r} must be a dict with string keys, "
                           f"got {params!r}")
    try:
        values: dict[str, Any] = json.loads(json.dumps(dict(params), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"params for pipeline {name!r} must be JSON values (numbers, "
                           f"strings, booleans, None, lists, dicts) because a schedule stores "
                           f"them: {exc}") from None
    signature = _signature(pipeline)
    try:
        signature.bind(**values)
    except TypeError as exc:
        known = ", ".join(signature.parameters) or "none"
        raise InvalidInput(f"params for pipeline {name!r}: {exc} (its parameters: {known})"
                           ) from None
    for key, value in values.items():
        parameter = signature.parameters.get(key)
        wanted = _simple_type(parameter.annotation) if parameter is not None else None
        if wanted is None or value is None:
            continue
        ok = isinstance(value, wanted) and not (wanted is not bool and isinstance(value, bool))
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise InvalidInput(f"param {key!r} of pipeline {name!r} must be a {wanted.__name__}, "
                               f"got {value!r}")
    return values


def parse_params(pipeline: Any, pairs: Sequence[str]) -> dict[str, Any]:
    """``["k=v", ...]`` from a command line to values: converted by the parameter's
    annotation when it is int / float / bool / str, else read as JSON (falling back to the
    plain string)."""
    signature = _signature(pipeline)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"--param {pair!r}: expected KEY=VALUE, e.g. --param n=3")
        parameter = signature.parameters.get(key)
        wanted = _simple_type(parameter.annotation) if parameter is not None else None
        out[key] = _convert(key, raw, wanted)
    return out


def _convert(key: str, raw: str, wanted: type | None) -> Any:
    if wanted is str:
        return raw
    if wanted is bool:
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise InvalidInput(f"--param {key}={raw}: expected true or false")
    if wanted in (int, float):
        assert wanted is not None
        try:
            return wanted(raw)
        except ValueError:
            raise InvalidInput(f"--param {key}={raw}: expected {'an' if wanted is int else 'a'} "
                               f"{wanted.__name__}") from None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


# ---------------------------------------------------------------- records
def schedule_store(workspace: Workspace | None = None) -> ScheduleStore:
    """The schedule store of ``workspace`` (default: the ambient one)."""
    from ratchet.workspace import resolve

    return resolve(workspace).stores.schedules


def _resolve(pipeline: Any) -> tuple[Any, str]:
    """The pipeline object and its ``module:qualname`` reference."""
    from ratchet.pipelines.pipeline_definition import load_pipeline
    from ratchet.pipelines.references import normalized_reference

    if isinstance(pipeline, str):
        given = normalized_reference(pipeline)  # a file is stored absolute, for any cwd
        return load_pipeline(given), given
    ref = getattr(pipeline, "ref", None)
    name = getattr(pipeline, "name", None)
    if not hasattr(pipeline, "parameters") or not hasattr(pipeline, "run"):
        raise InvalidInput(f"schedule() takes a @ratchet.pipeline or a 'module:name' reference, "
                           f"got {type(pipeline).__name__}")
    if getattr(getattr(pipeline, "fn", None), "__module__", None) == "__main__":
        raise InvalidInput(
            f"pipeline {name!r} cannot be scheduled from the script being run (__main__): "
            "loading it would run the script's top-level code again in the scheduler. Move it "
            "into a module (e.g. flows.py) and schedule 'flows:" + str(name) + "'")
    if not ref:
        raise InvalidInput(
            f"pipeline {name!r} cannot be scheduled: it is not importable by reference (defined "
            "in __main__, a notebook or inside a function). Define it at the top level of an "
            "importable module so `ratchet scheduler` can load it")
    load_pipeline(ref)  # the scheduler must be able to load it the same way
    return pipeline, ref


def schedule(
    pipeline: Any,
    cron: str,
    *,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    executor: str | None = None,
    enabled: bool = True,
    replace: bool = False,
    workspace: Workspace | None = None,
) -> Schedule:
    """Run ``pipeline`` (a ``@ratchet.pipeline`` or ``"module:name"``) at each ``cron`` time
    (UTC) with ``params``, once ``ratchet scheduler`` is running.

    ``name`` defaults to the pipeline's name; ``replace=True`` redefines an existing schedule
    of that name. ``executor`` is passed to ``Pipeline.run`` (e.g. ``"local:4"``, ``"ray"``).
    """
    text = validate_cron(cron)
    target, ref = _resolve(pipeline)
    values = check_params(target, params)
    if executor is not None:
        if not isinstance(executor, str) or not executor.strip():
            raise InvalidInput(f"executor must be a name like 'local' or 'ray', got {executor!r}")
        if executor.partition(":")[0].strip().lower() != "ray":  # ray would connect now
            from ratchet.executors import resolve_executor

            resolve_executor(executor).shutdown()  # checks the name; starts no workers
    schedule_name = name if name is not None else getattr(target, "name", None)
    if not isinstance(schedule_name, str) or not schedule_name:
        raise InvalidInput(f"schedule name must be a non-empty string, got {schedule_name!r}")
    return schedule_store(workspace).create_schedule(
        schedule_name, pipeline_ref=ref, cron=text, params=values,
        next_run_at=next_run_time(text), executor=executor, enabled=bool(enabled),
        replace=replace)


def list_schedules(*, workspace: Workspace | None = None) -> list[Schedule]:
    """Every schedule, by name."""
    return schedule_store(workspace).list_schedules()


def get_schedule(name: str, *, workspace: Workspace | None = None) -> Schedule:
    return schedule_store(workspace).get_schedule(name)


def delete_schedule(name: str, *, workspace: Workspace | None = None) -> None:
    """Remove a schedule (its past pipeline runs stay)."""
    schedule_store(workspace).delete_schedule(name)


def set_enabled(name: str, enabled: bool, *, workspace: Workspace | None = None) -> Schedule:
    """Pause or resume a schedule. Resuming starts from now: times passed while it was
    disabled are not run."""
    store = schedule_store(workspace)
    if not enabled:
        return store.set_enabled(name, False)
    current = store.get_schedule(name)
    if current.enabled:
        return current
    return store.set_enabled(name, True, next_run_at=next_run_time(current.cron))
