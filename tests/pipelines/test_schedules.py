"""Schedules and the scheduler, against real SQLite and PostgreSQL stores."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ratchet.clock import now_ms, to_ms
from ratchet.errors import AlreadyExists, InvalidInput, NotFound
from ratchet.pipelines import pipeline
from ratchet.pipelines.scheduler import LEASE_NAME, Scheduler
from ratchet.pipelines.schedules import (
    delete_schedule,
    get_schedule,
    list_schedules,
    next_run_time,
    parse_params,
    schedule,
    schedule_store,
    set_enabled,
    validate_cron,
)
from ratchet.workspace import current as current_workspace
from tests.pipelines import sample_pipelines
from tests.pipelines.sample_pipelines import failing, nightly, typed

REF = "tests.pipelines.sample_pipelines"
HOUR = 3_600_000
DAY = 24 * HOUR
REPO = Path(__file__).parents[2]


def utc(*args: int) -> int:
    return to_ms(datetime(*args, tzinfo=UTC))  # type: ignore[misc]


def runs_of(schedule_id: str) -> list[Any]:
    """The pipeline runs recorded for a schedule, from the store."""
    store = current_workspace().stores.pipelines
    return [r for r in store.list_pipeline_runs(limit=1000) if r.schedule_id == schedule_id]


def make_due(name: str, at: int | None = None) -> int:
    """Move a schedule's next run into the past (as if its time had come); return it."""
    at = now_ms() - 60_000 if at is None else at
    schedule_store().set_enabled(name, True, next_run_at=at)
    return at


# ---------------------------------------------------------------- cron
@pytest.mark.parametrize(("cron", "fragment"), [
    ("61 3 * * *", "out of range"),
    ("0 25 * * *", "out of range"),
    ("0 3 * *", "4 field(s), not 5"),
    ("0 3 * * * *", "6 field(s), not 5"),
    ("every day", "2 field(s)"),
    ("a b c d e", "not a cron expression"),
    ("*/0 * * * *", "step"),
    ("0 0 31 2 *", "never fires"),
    ("@sometimes", "unknown alias"),
    ("", "non-empty"),
    ("   ", "non-empty"),
])
def test_bad_cron_is_named_in_the_error(cron: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_cron(cron)
    message = str(info.value)
    assert fragment in message
    assert repr(cron) in message and "'0 3 * * *'" in message  # names it, shows an example


def test_cron_must_be_a_string() -> None:
    with pytest.raises(InvalidInput, match="non-empty string"):
        validate_cron(None)


def test_good_cron_is_normalized() -> None:
    assert validate_cron("0  3 * *   *") == "0 3 * * *"
    assert validate_cron("@DAILY") == "@daily"
    assert validate_cron("*/15 9-17 * * MON-FRI") == "*/15 9-17 * * MON-FRI"


def test_next_run_time_is_strictly_after_now_in_utc() -> None:
    daily = "0 3 * * *"
    assert next_run_time(daily, utc(2024, 5, 1, 12, 0)) == utc(2024, 5, 2, 3, 0)
    assert next_run_time(daily, utc(2024, 5, 1, 2, 59, 59) + 999) == utc(2024, 5, 1, 3, 0)
    assert next_run_time(daily, utc(2024, 5, 1, 3, 0)) == utc(2024, 5, 2, 3, 0)  # not "now"
    assert next_run_time(daily, utc(2024, 5, 1, 3, 0) + 1) == utc(2024, 5, 2, 3, 0)
    assert next_run_time("*/15 * * * *", utc(2024, 5, 1, 12, 7, 30)) == utc(2024, 5, 1, 12, 15)
    assert next_run_time("@hourly", utc(2024, 5, 1, 23, 30)) == utc(2024, 5, 2, 0, 0)
    assert next_run_time("0 0 1 * *", utc(2024, 12, 31, 23, 59)) == utc(2025, 1, 1, 0, 0)
    assert next_run_time("0 0 29 2 *", utc(2024, 3, 1)) == utc(2028, 2, 29)
    assert next_run_time("30 8 * * MON", utc(2024, 5, 1, 12, 0)) == utc(2024, 5, 6, 8, 30)
    # Datetimes: naive means UTC; other zones are converted (no local-time cron).
    assert next_run_time(daily, datetime(2024, 5, 1, 12, 0)) == utc(2024, 5, 2, 3, 0)
    plus2 = timezone(timedelta(hours=2))
    assert next_run_time(daily, datetime(2024, 5, 1, 4, 59, tzinfo=plus2)) == utc(2024, 5, 1, 3)
    assert next_run_time(daily, datetime(2024, 5, 1, 5, 0, tzinfo=plus2)) == utc(2024, 5, 2, 3)


# ---------------------------------------------------------------- parameters
def test_cli_params_are_converted_by_annotation() -> None:
    assert parse_params(typed, ["name=007", "ratio=2", "flag=yes", 'tags=["a", "b"]']) == {
        "name": "007", "ratio": 2.0, "flag": True, "tags": ["a", "b"]}
    assert parse_params(nightly, ["n=3"]) == {"n": 3}
    assert parse_params(typed, ["tags=not json"]) == {"tags": "not json"}
    with pytest.raises(InvalidInput, match="expected an int"):
        parse_params(nightly, ["n=three"])
    with pytest.raises(InvalidInput, match="true or false"):
        parse_params(typed, ["flag=maybe"])
    with pytest.raises(InvalidInput, match="KEY=VALUE"):
        parse_params(nightly, ["n"])


# ---------------------------------------------------------------- schedule records
def test_schedule_create_list_enable_delete(workspace_on: Path) -> None:
    before = now_ms()
    created = schedule(nightly, "0 3 * * *", params={"n": 2}, executor="local:2")
    after = now_ms()
    assert created.name == "nightly" and created.pipeline_ref == f"{REF}:nightly"
    assert created.cron == "0 3 * * *" and created.params == {"n": 2}
    assert created.executor == "local:2" and created.enabled
    assert next_run_time("0 3 * * *", before) <= created.next_run_at
    assert created.next_run_at <= next_run_time("0 3 * * *", after)
    assert created.next_run_at > after and created.next_run_at % 60_000 == 0
    assert created.last_run_at is None and created.last_pipeline_run_id is None

    with pytest.raises(AlreadyExists, match="replace"):
        schedule(nightly, "0 4 * * *")
    # A file reference is stored absolute (the scheduler may run elsewhere).
    (workspace_on / "flows.py").write_text("from tests.pipelines.sample_pipelines import *\n")
    by_file = schedule("flows.py:nightly", "@daily", name="by-file")
    assert by_file.pipeline_ref == f"{workspace_on / 'flows.py'}:nightly"
    delete_schedule("by-file")
    # By reference, under another name; the string form is checked the same way.
    hourly = schedule(f"{REF}:nightly", "@hourly", name="hourly", enabled=False)
    assert hourly.pipeline_ref == f"{REF}:nightly" and not hourly.enabled
    assert [s.name for s in list_schedules()] == ["hourly", "nightly"]
    assert get_schedule("hourly") == hourly

    replaced = schedule(nightly, "*/5 * * * *", params={"n": 5}, replace=True)
    assert replaced.schedule_id == created.schedule_id
    assert (replaced.cron, replaced.params, replaced.executor) == ("*/5 * * * *", {"n": 5}, None)

    assert not set_enabled("nightly", False).enabled
    make_due("hourly", at=utc(2020, 1, 1))
    set_enabled("hourly", False)
    start = now_ms()
    resumed = set_enabled("hourly", True)  # from now on: times passed while off don't run
    end = now_ms()
    assert resumed.enabled
    assert next_run_time("@hourly", start) <= resumed.next_run_at <= next_run_time("@hourly", end)
    assert set_enabled("hourly", True) == resumed  # already on: unchanged

    delete_schedule("hourly")
    assert [s.name for s in list_schedules()] == ["nightly"]
    with pytest.raises(NotFound, match="hourly"):
        delete_schedule("hourly")
    with pytest.raises(NotFound):
        set_enabled("hourly", True)


def test_schedule_rejects_bad_input(workspace_on: Path) -> None:
    with pytest.raises(InvalidInput, match=r"'0 3 \* \*'"):
        schedule(nightly, "0 3 * *")
    with pytest.raises(InvalidInput, match=r"unexpected keyword argument 'm'.*its parameters: n"):
        schedule(nightly, "@daily", params={"m": 1})
    with pytest.raises(InvalidInput, match="missing a required argument: 'name'"):
        schedule(typed, "@daily")
    with pytest.raises(InvalidInput, match="param 'n' of pipeline 'nightly' must be a int"):
        schedule(nightly, "@daily", params={"n": "3"})
    with pytest.raises(InvalidInput, match="must be a float"):
        schedule(typed, "@daily", params={"name": "x", "ratio": "high"})
    with pytest.raises(InvalidInput, match="JSON values"):
        schedule(nightly, "@daily", params={"n": object()})
    with pytest.raises(InvalidInput, match="JSON values"):
        schedule(typed, "@daily", params={"name": "x", "ratio": float("nan")})
    with pytest.raises(InvalidInput, match="string keys"):
        schedule(nightly, "@daily", params={1: 2})  # type: ignore[dict-item]

    @pipeline
    def local_pipeline(n: int = 1) -> Any:
        return sample_pipelines.inc(n)

    assert local_pipeline.ref is None
    with pytest.raises(InvalidInput, match="importable module"):
        schedule(local_pipeline, "@daily")
    with pytest.raises(InvalidInput, match="not a pipeline"):
        schedule(f"{REF}:not_a_pipeline", "@daily")
    with pytest.raises(NotFound, match="no_such_thing"):
        schedule(f"{REF}:no_such_thing", "@daily")
    with pytest.raises(NotFound, match="cannot import module"):
        schedule("no_such_module_xyz:flow", "@daily")
    with pytest.raises(InvalidInput, match=r"takes a @ratchet\.pipeline"):
        schedule(print, "@daily")
    with pytest.raises(InvalidInput, match="unknown executor"):
        schedule(nightly, "@daily", executor="kubernetes")
    with pytest.raises(InvalidInput, match="schedule name"):
        schedule(nightly, "@daily", name="")
    assert list_schedules() == []  # nothing half-created


def test_a_pipeline_in_the_running_script_is_refused(workspace_on: Path) -> None:
    script = workspace_on / "train.py"
    script.write_text(textwrap.dedent("""
        import ratchet

        @ratchet.step
        def one() -> int:
            return 1

        @ratchet.pipeline
        def nightly():
            return one()

        ratchet.schedule(nightly, "@daily")
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    done = subprocess.run([sys.executable, str(script)], cwd=workspace_on, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "InvalidInput" in done.stderr and "Move it into a module" in done.stderr
    assert list_schedules() == []


# ---------------------------------------------------------------- the scheduler
def test_run_due_fires_once_and_advances(workspace_on: Path) -> None:
    created = schedule(nightly, "0 3 * * *", params={"n": 41})
    due = created.next_run_at
    scheduler = Scheduler(holder="test")
    assert scheduler.run_due(now=due - 1) == []
    [fired] = scheduler.run_due(now=due)
    assert (fired.schedule, fired.status, fired.error) == ("nightly", "finished", None)
    assert (fired.scheduled_for, fired.fired_at, fired.next_run_at) == (due, due, due + DAY)
    after = get_schedule("nightly")
    assert after.next_run_at == due + DAY and after.last_run_at == due
    assert after.last_pipeline_run_id == fired.pipeline_run_id
    [run] = runs_of(created.schedule_id)
    assert run.run_id == fired.pipeline_run_id and run.status == "finished"
    assert run.params == {"n": 41} and run.pipeline == "nightly"
    assert scheduler.run_due(now=due) == []  # that time is done
    assert scheduler.run_due(now=due + DAY - 1) == []
    scheduler.release_lease()


def test_missed_times_collapse_into_one_run(workspace_on: Path) -> None:
    created = schedule(nightly, "0 3 * * *")
    due = created.next_run_at
    scheduler = Scheduler(holder="test")
    back = due + 3 * DAY + 5 * HOUR  # down for three days and a bit
    [fired] = scheduler.run_due(now=back)
    assert fired.scheduled_for == due and fired.next_run_at == due + 4 * DAY
    assert scheduler.run_due(now=back) == []
    assert len(runs_of(created.schedule_id)) == 1
    scheduler.release_lease()


def test_only_the_lease_holder_fires(workspace_on: Path) -> None:
    created = schedule(nightly, "0 3 * * *")
    due = created.next_run_at
    first, second = Scheduler(holder="first"), Scheduler(holder="second")
    assert first.acquire_lease() and first.holds_lease()
    assert second.run_due(now=due) == [] and not second.holds_lease()
    holder = second.current_holder()
    assert holder is not None and holder.holder == "first"
    first.release_lease()
    assert second.current_holder() is None
    assert [f.schedule for f in second.run_due(now=due)] == ["nightly"]
    assert first.run_due(now=due + DAY) == []  # second holds it now
    # A lease nobody renews expires and is taken over.
    second.release_lease()
    store = schedule_store()
    assert store.acquire_lease(LEASE_NAME, "crashed", 1_000, now=now_ms() - 60_000) is not None
    assert first.current_holder() is None  # expired
    assert [f.schedule for f in first.run_due(now=due + DAY)] == ["nightly"]
    assert first.current_holder().holder == "first"  # type: ignore[union-attr]
    first.release_lease()
    assert len(runs_of(created.schedule_id)) == 2


def test_a_failing_pipeline_does_not_stop_the_scheduler(
        workspace_on: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = schedule(failing, "0 3 * * *", params={"n": 7})
    good = schedule(nightly, "0 3 * * *")
    schedule(nightly, "0 3 * * *", name="gone")
    for name in ("failing", "nightly", "gone"):
        make_due(name)
    # A schedule whose pipeline disappeared from its module fails to load: also logged.
    schedule_store().create_schedule(
        "gone", pipeline_ref=f"{REF}:removed_pipeline", cron="0 3 * * *", params={},
        next_run_at=now_ms() - 60_000, replace=True)
    fired: list[Any] = []
    with caplog.at_level(logging.ERROR, logger="ratchet.scheduler"):
        count = Scheduler(holder="test", poll_s=0.01).serve(max_iterations=2,
                                                            on_fire=fired.append)
    assert count == 3
    by_name = {f.schedule: f for f in fired}
    assert by_name["failing"].status == "failed" and "boom 7" in (by_name["failing"].error or "")
    assert by_name["failing"].pipeline_run_id is not None
    assert by_name["nightly"].status == "finished"
    assert by_name["gone"].status == "failed" and by_name["gone"].pipeline_run_id is None
    assert "removed_pipeline" in (by_name["gone"].error or "")
    [failed_run] = runs_of(bad.schedule_id)
    assert failed_run.status == "failed" and failed_run.run_id == by_name["failing"].pipeline_run_id
    assert get_schedule("failing").last_pipeline_run_id == failed_run.run_id
    assert [r.status for r in runs_of(good.schedule_id)] == ["finished"]
    assert any("failed" in r.getMessage() and "failing" in r.getMessage() for r in caplog.records)
    assert any("removed_pipeline" in r.getMessage() for r in caplog.records)
    assert schedule_store().get_lease(LEASE_NAME) is None  # serve released it


def test_serve_stops_on_the_event_and_releases_the_lease(workspace_on: Path) -> None:
    stop = threading.Event()
    scheduler = Scheduler(holder="serving", poll_s=0.01)
    seen: list[Any] = []

    def fire_then_stop(item: Any) -> None:
        seen.append(item)
        stop.set()

    schedule(nightly, "0 3 * * *")
    make_due("nightly")
    assert scheduler.serve(stop, on_fire=fire_then_stop) == 1
    assert [f.schedule for f in seen] == ["nightly"]
    assert schedule_store().get_lease(LEASE_NAME) is None
    with pytest.raises(InvalidInput):
        Scheduler(poll_s=0)
    with pytest.raises(InvalidInput):
        scheduler.serve(max_iterations=0)


SCHEDULER_PROCESS = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from ratchet.pipelines.scheduler import Scheduler

    go = Path(sys.argv[1])
    scheduler = Scheduler(lease_ttl_s=30)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    fired = scheduler.run_due()
    scheduler.release_lease()
    print(json.dumps([[f.schedule, f.status, f.pipeline_run_id] for f in fired]), flush=True)
""")


def test_two_scheduler_processes_fire_a_due_schedule_once(
        workspace_on: Path, tmp_path: Path) -> None:
    created = schedule(nightly, "0 3 * * *", params={"n": 1})
    make_due("nightly")
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    procs = [subprocess.Popen([sys.executable, "-c", SCHEDULER_PROCESS, str(go)],
                              cwd=workspace_on, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:  # both started and connected before either looks
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    fired = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        fired.extend(json.loads(out.strip().splitlines()[-1]))
    assert len(fired) == 1 and fired[0][:2] == ["nightly", "finished"]
    [run] = runs_of(created.schedule_id)
    assert run.run_id == fired[0][2]
    assert get_schedule("nightly").last_pipeline_run_id == run.run_id
