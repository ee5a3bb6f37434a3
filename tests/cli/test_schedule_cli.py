"""``ratchet schedule`` and ``ratchet scheduler``, in-process and as real processes, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ratchet.clock import now_ms
from ratchet.store import PipelineStore, open_database
from ratchet.store.schedule_store import ScheduleStore
from tests.cli.conftest import Invoke, assert_user_error, strict_json

REF = "tests.pipelines.sample_pipelines"
REPO = Path(__file__).parents[2]
FLOWS = textwrap.dedent("""
    import ratchet

    @ratchet.step(cache=False)
    def double(x: int) -> int:
        return 2 * x

    @ratchet.pipeline
    def nightly(n: int = 1):
        return double(n)
""")


@pytest.fixture
def cli_on(cli: Invoke, backend_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """The in-process CLI over a store on ``backend_url``."""
    monkeypatch.setenv("RATCHET_DB", backend_url)
    return cli


def _store(url: str) -> ScheduleStore:
    return ScheduleStore(open_database(url))


def _make_due(url: str, name: str) -> None:
    """As if the schedule's time had come a minute ago."""
    _store(url).set_enabled(name, True, next_run_at=now_ms() - 60_000)


@pytest.mark.parametrize("args", [
    ["schedule"], ["schedule", "create"], ["schedule", "list"], ["schedule", "delete"],
    ["schedule", "enable"], ["schedule", "disable"], ["scheduler"],
], ids=" ".join)
def test_help(cli: Invoke, args: list[str]) -> None:
    result = cli(*args, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_create_list_disable_enable_delete(cli_on: Invoke) -> None:
    result = cli_on("schedule", "list")
    assert result.exit_code == 0 and "no schedules yet" in result.stdout
    created = cli_on("schedule", "create", f"{REF}:typed", "--cron", "0 3 * * *",
                     "--param", "name=007", "-p", "ratio=2", "--param", "flag=yes",
                     "--name", "typed-nightly", "--executor", "local:2", "--json")
    assert created.exit_code == 0, created.output
    data = strict_json(created.stdout)
    assert data["name"] == "typed-nightly" and data["pipeline"] == f"{REF}:typed"
    assert data["params"] == {"name": "007", "ratio": 2.0, "flag": True}
    assert data["executor"] == "local:2" and data["enabled"] is True
    assert data["next_run_at"].endswith("T03:00:00+00:00")

    plain = cli_on("schedule", "create", f"{REF}:nightly", "--cron", "@hourly", "--disabled")
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.startswith("scheduled nightly: ") and "disabled" in plain.stdout

    listed = strict_json(cli_on("schedule", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["nightly", "typed-nightly"]
    table = cli_on("schedule", "list").stdout
    assert "typed-nightly" in table and "0 3 * * *" in table and "name='007'" in table

    enabled = strict_json(cli_on("schedule", "enable", "nightly", "--json").stdout)
    assert enabled["enabled"] is True and enabled["next_run_at"].endswith(":00:00+00:00")
    shown = cli_on("schedule", "disable", "nightly")
    assert shown.exit_code == 0 and "- (disabled)" in shown.stdout

    replaced = cli_on("schedule", "create", f"{REF}:nightly", "--cron", "*/10 * * * *",
                      "--param", "n=4", "--replace", "--json")
    assert strict_json(replaced.stdout)["params"] == {"n": 4}

    assert cli_on("schedule", "delete", "nightly").stdout == "deleted schedule nightly\n"
    assert strict_json(cli_on("schedule", "delete", "typed-nightly", "--json").stdout) == {
        "deleted": "typed-nightly"}
    assert strict_json(cli_on("schedule", "list", "--json").stdout) == []


def test_user_errors_are_one_line(cli_on: Invoke) -> None:
    lines = assert_user_error(
        cli_on("schedule", "create", f"{REF}:nightly", "--cron", "61 3 * * *"),
        "invalid cron expression '61 3 * * *'", "out of range")
    assert len(lines) == 1
    assert_user_error(cli_on("schedule", "create", f"{REF}:nightly", "--cron", "0 3 * *"),
                      "'0 3 * *'", "4 field(s)")
    assert_user_error(cli_on("schedule", "create", f"{REF}:nightly", "--cron", "@daily",
                             "--param", "m=1"), "unexpected keyword argument 'm'")
    assert_user_error(cli_on("schedule", "create", f"{REF}:nightly", "--cron", "@daily",
                             "--param", "n=three"), "expected an int")
    assert_user_error(cli_on("schedule", "create", f"{REF}:nightly", "--cron", "@daily",
                             "--param", "n"), "KEY=VALUE")
    assert_user_error(cli_on("schedule", "create", f"{REF}:nope", "--cron", "@daily"),
                      "has no attribute 'nope'")
    assert_user_error(cli_on("schedule", "create", "no_such_module_q:flow", "--cron", "@daily"),
                      "cannot import module")
    assert cli_on("schedule", "create", f"{REF}:nightly", "--cron", "@daily").exit_code == 0
    assert_user_error(cli_on("schedule", "create", f"{REF}:nightly", "--cron", "@daily"),
                      "already exists", "--replace")
    for command in ("delete", "enable", "disable"):
        assert_user_error(cli_on("schedule", command, "ghost"), "no schedule named 'ghost'")


def test_scheduler_once_in_process(cli_on: Invoke, backend_url: str) -> None:
    assert cli_on("schedule", "create", f"{REF}:nightly", "--cron", "0 3 * * *").exit_code == 0
    nothing = cli_on("scheduler", "--once")
    assert nothing.exit_code == 0 and "no schedules due" in nothing.stdout
    _make_due(backend_url, "nightly")
    result = cli_on("scheduler", "--once", "--json")
    assert result.exit_code == 0, result.output
    [fired] = strict_json(result.stdout)
    assert fired["schedule"] == "nightly" and fired["status"] == "finished"
    assert fired["next_run_at"].endswith("T03:00:00+00:00")
    assert _store(backend_url).get_lease("scheduler") is None  # released on exit
    # Held by another scheduler: this one fires nothing and says so.
    _make_due(backend_url, "nightly")
    assert _store(backend_url).acquire_lease("scheduler", "elsewhere", 60_000) is not None
    standby = cli_on("scheduler", "--once")
    assert standby.exit_code == 0 and "elsewhere" in standby.stdout
    assert _store(backend_url).get_schedule("nightly").last_pipeline_run_id == \
        fired["pipeline_run_id"]


def test_scheduler_once_reports_a_failed_run(cli_on: Invoke, backend_url: str) -> None:
    for ref, name in ((f"{REF}:failing", "failing"), (f"{REF}:nightly", "nightly")):
        assert cli_on("schedule", "create", ref, "--cron", "@daily").exit_code == 0
        _make_due(backend_url, name)
    result = cli_on("scheduler", "--once")
    assert result.exit_code == 1
    assert "failing" in result.stdout and "nightly" in result.stdout  # both ran
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: 1 scheduled pipeline run(s) failed: failing (see `ratchet "
                      "schedule list` and the pipeline runs)"]
    assert "Traceback" not in result.stdout


# ---------------------------------------------------------------- real processes
def _ratchet() -> list[str]:
    script = Path(sys.executable).with_name("ratchet")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ratchet.cli.main"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_ratchet(), *args], cwd=project, env=_env(), capture_output=True,
                          text=True, timeout=180)


def test_scheduler_once_end_to_end(project: Path, backend_url: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's project: a flows.py next to them, scheduled and fired from the shell."""
    monkeypatch.setenv("RATCHET_DB", backend_url)
    (project / "flows.py").write_text(FLOWS)
    created = _run(project, "schedule", "create", "flows:nightly", "--cron", "30 2 * * *",
                   "--param", "n=21", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["params"] == {"n": 21}
    assert json.loads(_run(project, "scheduler", "--once", "--json").stdout) == []
    _make_due(backend_url, "nightly")

    done = _run(project, "scheduler", "--once", "--json")
    assert done.returncode == 0, done.stderr
    [fired] = json.loads(done.stdout)
    assert fired["schedule"] == "nightly" and fired["status"] == "finished"
    assert fired["next_run_at"].endswith("T02:30:00+00:00")
    run = PipelineStore(open_database(backend_url)).get_pipeline_run(fired["pipeline_run_id"])
    assert run.status == "finished" and run.params == {"n": 21} and run.ref == "flows:nightly"
    [listed] = json.loads(_run(project, "schedule", "list", "--json").stdout)
    assert listed["last_pipeline_run_id"] == fired["pipeline_run_id"]
    assert listed["last_run_at"] is not None
    assert json.loads(_run(project, "scheduler", "--once", "--json").stdout) == []


def test_scheduler_stops_gracefully_on_ctrl_c(project: Path, backend_url: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_DB", backend_url)
    (project / "flows.py").write_text(FLOWS)
    assert _run(project, "schedule", "create", "flows:nightly", "--cron", "@daily").returncode == 0
    _make_due(backend_url, "nightly")
    proc = subprocess.Popen([*_ratchet(), "scheduler", "--poll", "0.05"], cwd=project, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "started" in proc.stdout.readline()
        fired = proc.stdout.readline()  # the due schedule runs on the first poll
        assert "nightly: flows:nightly finished" in fired, fired
        assert _store(backend_url).get_lease("scheduler") is not None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.strip().endswith("scheduler stopped")
    assert "Traceback" not in err and "stopping" in err
    assert _store(backend_url).get_lease("scheduler") is None
