"""Recording a backtest (``BacktestResult.record``, ``ratchet ct backtest --record``): a
real small backtest of the controller tests' policy (as tests/ui/test_loop.py builds it)
becomes a run the dashboard's continuous-training pages list and draw — tag, result,
report, one accuracy metric per strategy — and bad input is a clear error."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import ratchet
from ratchet.config import load_settings
from ratchet.ct.backtesting import (
    BACKTEST_REPORT,
    BACKTEST_RESULT,
    BACKTEST_TAG,
    BacktestResult,
    backtest,
    strategy_metric,
)
from ratchet.errors import ConfigError, Forbidden, InvalidInput
from ratchet.json_safe import dumps
from ratchet.server.app import ServerOptions
from ratchet.ui import dashboard_app
from ratchet.workspace import Workspace, use
from tests.cli.conftest import assert_user_error
from tests.ct import test_controller as ct
from tests.ui.browser import dashboard, issue_token, local_workspace

SCRIPT = "<script>alert(1)</script>{{7*7}}"
POLICY = f"""\
model: {ct.MODEL}
pipeline: tests.ct.test_controller:training
triggers: [{{performance: accuracy, drop: 0.1}}]
gate: {{metric: accuracy, margin: 0.0, min_holdout: 50}}
data: {{label: {ct.LABEL}, rows: 120, holdout: 50, min_rows: 100}}
monitor: {{rows: 40, min_rows: 20, multivariate: false}}
"""


def history() -> pd.DataFrame:
    """360 days whose concept flips halfway (tests/ui/test_loop.py's backtest)."""
    frame = ct.frame(360, seed=3)
    frame.loc[180:, ct.LABEL] = 1 - frame.loc[180:, ct.LABEL]
    frame["day"] = pd.date_range("2020-01-01", periods=len(frame), freq="D", tz="UTC")
    return frame


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    policy = ct.policy(triggers=(ct.Trigger("performance", metric="accuracy", drop=0.1),),
                       monitor=ct.MonitorPolicy(rows=40, min_rows=20, multivariate=False),
                       data=ct.DataPolicy(label=ct.LABEL, rows=120, holdout=50, min_rows=100),
                       gate=ct.GatePolicy(margin=0.0, min_holdout=50))
    return backtest(policy, history(), time_column="day", start=120, tick="20d",
                    label_delay="1d", schedule=None)


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[tuple[Workspace, TestClient]]:
    workspace = local_workspace(tmp_path / "ws")
    with TestClient(dashboard_app(workspace, ServerOptions(auth=False))) as client:
        yield workspace, client


def _artifacts(workspace: Workspace, run_id: str) -> set[str]:
    return {e.path for e in workspace.stores.tracking.list_artifacts(run_id, "backtest")}


def assert_recorded(workspace: Workspace, client: TestClient, run_id: str,
                    result: BacktestResult, *, experiment: str = "ct-backtests",
                    report: bool = True) -> None:
    """The run is what the loop pages read, and the dashboard draws it."""
    from ratchet.tracking.client import TrackingClient

    tracking = workspace.client(TrackingClient)
    run = tracking.get_run(run_id)
    assert run.tags[BACKTEST_TAG] == ct.MODEL and run.status == "finished"
    assert tracking.get_experiment(run.experiment_id).name == experiment
    assert _artifacts(workspace, run_id) == (
        {BACKTEST_RESULT, BACKTEST_REPORT} if report else {BACKTEST_RESULT})
    stored = json.loads(tracking.read_artifact(run_id, BACKTEST_RESULT))
    assert stored == json.loads(dumps(result.to_dict()))
    assert run.metrics == {strategy_metric(s["strategy"]): pytest.approx(s["accuracy"])
                           for s in result.summary}
    assert {"backtest.accuracy.loop", "backtest.accuracy.never_retrained",
            "backtest.accuracy.majority_class",
            "backtest.accuracy.yesterdays_label"} <= set(run.metrics)
    page = client.get(f"/ui/backtests/{run_id}")
    assert page.status_code == 200, page.text
    for row in result.summary:
        assert row["strategy"] in html.unescape(page.text)
    assert run_id in client.get("/ui/loop").text
    download = client.get(f"/ui/backtests/{run_id}/report.html")
    assert download.status_code == (200 if report else 404)
    if report:
        assert download.content == tracking.read_artifact(run_id, BACKTEST_REPORT)


# ------------------------------------------------------------------ through the API
def test_a_recorded_backtest_is_a_run_the_dashboard_draws(
        result: BacktestResult, reader: tuple[Workspace, TestClient]) -> None:
    workspace, client = reader
    run_id = result.record(name=f"ctm {SCRIPT}", workspace=workspace)
    assert_recorded(workspace, client, run_id, result)
    page = client.get(f"/ui/backtests/{run_id}").text
    assert SCRIPT not in page and SCRIPT in html.unescape(page)  # the run's name, as text
    # A second record is a second run; both are listed.
    again = result.record(workspace=workspace)
    assert again != run_id
    assert workspace.stores.tracking.get_run(again).name == f"backtest of {ct.MODEL}"
    overview = client.get("/ui/loop").text
    assert run_id in overview and again in overview


def test_recording_in_the_ambient_workspace_does_not_touch_the_callers_run(
        result: BacktestResult, reader: tuple[Workspace, TestClient]) -> None:
    workspace, client = reader
    with use(workspace), ratchet.start_run(experiment="analysis") as outer:
        run_id = result.record(experiment="policy reviews", report=False)
        assert ratchet.active_run_id() == outer.run_id
        ratchet.log_metric("after", 1.0)  # still the caller's run
    assert run_id != outer.run_id
    assert workspace.stores.tracking.get_run(run_id).parent_run_id is None
    assert_recorded(workspace, client, run_id, result, experiment="policy reviews",
                    report=False)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name", ["", "   ", "ct\u202ebacktests", "x" * 300])
def test_an_invalid_experiment_name_is_refused_before_anything_is_written(
        result: BacktestResult, reader: tuple[Workspace, TestClient], name: str) -> None:
    workspace, _ = reader
    with pytest.raises(InvalidInput, match="experiment name"):
        result.record(experiment=name, workspace=workspace)
    runs, _ = workspace.stores.tracking.search_runs(None, None, None, 10)
    assert runs == []


def test_a_workspace_whose_home_cannot_be_written_is_a_clear_error(
        result: BacktestResult, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("a file, not a folder")
    with pytest.raises(ConfigError, match=r"cannot create the ratchet home .*a file"):
        result.record(workspace=Workspace.at(home))


def test_remote_mode_records_with_a_writer_and_refuses_a_reader(
        result: BacktestResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a live team server: a writer's record lands in the server's workspace
    (artifacts uploaded over HTTP) and its dashboard draws it; a reader's write is refused
    in words and leaves nothing."""
    from ratchet.config import Settings

    server_side = local_workspace(tmp_path / "server")
    writer = issue_token(server_side, "wes", "writer")
    reader = issue_token(server_side, "rita", "reader")

    def remote(token: str, name: str) -> Workspace:
        monkeypatch.setenv("RATCHET_TRACKING_TOKEN", token)
        home = tmp_path / name
        return Workspace(Settings(home=home, db_url=f"sqlite:///{home / 'unused.db'}",
                                  artifacts_uri=str(home / "unused"), tracking_uri=url))

    with dashboard(server_side, auth=True) as url:
        run_id = result.record(workspace=remote(writer, "wes"))
        with pytest.raises(Forbidden, match=r"'rita' \(role reader\) may not write"):
            result.record(experiment="rita's", workspace=remote(reader, "rita"))
    with TestClient(dashboard_app(server_side, ServerOptions(auth=False))) as client:
        assert_recorded(server_side, client, run_id, result)
    runs, _ = server_side.stores.tracking.search_runs(None, None, None, 10)
    assert [r.run_id for r in runs] == [run_id]


# ------------------------------------------------------------------ the command line
@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / ".ratchet"))
    monkeypatch.delenv("RATCHET_DB", raising=False)
    monkeypatch.delenv("RATCHET_ARTIFACTS", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "policy.yaml").write_text(POLICY)
    history().to_parquet(tmp_path / "history.parquet")
    return tmp_path


def ct_backtest(*args: str) -> Any:
    from typer.testing import CliRunner

    from ratchet.cli.main import app

    return CliRunner().invoke(app, ["ct", "backtest", "policy.yaml", "--data",
                                    "history.parquet", "--time-column", "day", "--start",
                                    "120", "--tick", "20d", *args], catch_exceptions=False)


def test_the_cli_records_and_prints_the_run_and_its_dashboard_page(project: Path) -> None:
    done = ct_backtest("--record", "--run-name", "churn, 2024 policy")
    assert done.exit_code == 0, done.output
    found = re.search(r"recorded as run (\S+) \(experiment ct-backtests\); on the "
                      r"dashboard: /ui/backtests/(\S+)", done.stdout)
    assert found is not None, done.stdout
    run_id = found.group(1)
    assert found.group(2) == run_id
    workspace = Workspace(load_settings())
    run = workspace.stores.tracking.get_run(run_id)
    assert run.name == "churn, 2024 policy" and run.tags[BACKTEST_TAG] == ct.MODEL
    assert _artifacts(workspace, run_id) == {BACKTEST_RESULT, BACKTEST_REPORT}
    stored = json.loads(_read(workspace, run_id))
    strategies = [s["strategy"] for s in stored["summary"]]
    assert "fixed schedule" in strategies  # the CLI's default schedule baseline
    assert set(run.metrics) == {strategy_metric(s) for s in strategies}
    for row in stored["summary"]:
        assert run.metrics[strategy_metric(row["strategy"])] == pytest.approx(row["accuracy"])
        assert f"| {row['strategy']} | {row['accuracy']:.4f} |" in done.stdout
    with TestClient(dashboard_app(workspace, ServerOptions(auth=False))) as client:
        page = client.get(f"/ui/backtests/{run_id}")
        assert page.status_code == 200
        for name in strategies:
            assert name in html.unescape(page.text)


def _read(workspace: Workspace, run_id: str) -> bytes:
    from ratchet.tracking.client import TrackingClient

    return workspace.client(TrackingClient).read_artifact(run_id, BACKTEST_RESULT)


def test_the_cli_json_names_the_recorded_run(project: Path) -> None:
    done = ct_backtest("--record", "--experiment", "reviews", "--json", "--schedule", "720d")
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)
    run_id = printed["run_id"]
    assert printed["dashboard"] == f"/ui/backtests/{run_id}"
    workspace = Workspace(load_settings())
    run = workspace.stores.tracking.get_run(run_id)
    assert workspace.stores.tracking.get_experiment(run.experiment_id).name == "reviews"
    stored = json.loads(_read(workspace, run_id))
    assert stored["summary"] == printed["summary"]


def test_the_cli_without_record_records_nothing(project: Path) -> None:
    done = ct_backtest("--json", "--schedule", "720d")
    assert done.exit_code == 0, done.output
    assert "run_id" not in json.loads(done.stdout)
    runs, _ = Workspace(load_settings()).stores.tracking.search_runs(
        None, f"tags.`{BACKTEST_TAG}` is not null", None, 10)
    assert runs == []


def test_the_cli_refuses_bad_input_before_the_replay(project: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert_user_error(ct_backtest("--record", "--experiment", "  "), "experiment name")
    (project / "not-a-folder").write_text("x")
    monkeypatch.setenv("RATCHET_HOME", str(project / "not-a-folder"))
    assert_user_error(ct_backtest("--record"), "cannot create the ratchet home")


def test_the_cli_help_explains_record(project: Path) -> None:
    from typer.testing import CliRunner

    from ratchet.cli.main import app

    text = " ".join(CliRunner().invoke(app, ["ct", "backtest", "--help"],
                                       env={"COLUMNS": "300"}).stdout.split())
    text = text.replace("│ ", "")
    for fragment in ("--record", "Record the backtest as a run", "/ui/backtests/RUN_ID",
                     "--experiment", "--run-name"):
        assert fragment in text, fragment
