"""The dashboard's continuous-training pages, on a real controller's record.

One workspace for the module, built with the controller tests' scene (tests/ct/
test_controller.py: a served model, its prediction log and a simulated clock, the real
training pipeline and controller): ``ctm`` is promoted once (trigger, data, retrain, gate,
shadow, canary, promotion), then a challenger that lost its canary is rolled back, then a
third challenger waits for approval; a second model with a hostile name waits too. A
backtest of the controller tests' policy is recorded as a run. Browser tests approve,
reject and read; TestClient checks cover permissions, errors and the report's headers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

import ratchet
from ratchet.server.app import ServerOptions
from ratchet.server.permissions import SESSION_COOKIE
from ratchet.ui import dashboard_app
from ratchet.ui.pages.loop import BACKTEST_REPORT, BACKTEST_RESULT, BACKTEST_TAG, interval_plot
from ratchet.workspace import Workspace, use
from tests.ct import test_controller as ct
from tests.ui.browser import Watched, dashboard, dialogs_of, issue_token, local_workspace
from tests.ui.test_shell import sign_in

SCRIPT = "<script>alert(1)</script>{{7*7}}"
# Model names cannot hold "/" (nor "@", "\\"): a tag that runs script without one, and
# characters that must be URL-encoded in a path.
HOSTILE_MODEL = "<img src=x onerror=alert(1)> {{7*7}} ?#%"
HERE = "tests.ui.test_loop"


OTHER = "ctm-b"


# ------------------------------------------------------------------ a second model's pipeline
@ratchet.step(model={"output": OTHER})
def fit_other(train: pd.DataFrame) -> Any:
    return LogisticRegression().fit(train[ct.INPUTS], train[ct.LABEL].astype(int))


@ratchet.pipeline(experiment="ctm-b-ct")
def other_training(data: str) -> Any:
    return fit_other(ct.training_window(data))


@dataclass
class Loop:
    """The module's workspace and the scenes that can still tick."""

    workspace: Workspace
    main: ct.Scene
    other: ct.Scene
    backtest_run: str


def _second_scene(main: ct.Scene) -> ct.Scene:
    """``OTHER`` served in the same workspace, with its own log and clock."""
    from ratchet.ct.backtesting import SimulatedWorld
    from ratchet.data.catalog import DataClient
    from ratchet.pipelines.pipeline_definition import load_pipeline
    from ratchet.pipelines.runner import PipelineRunner
    from ratchet.serving.traffic_plan import TrafficPlan

    workspace = main.registry.tracking.workspace
    version = DataClient(workspace).log(ct.frame(400, seed=7), "ctm-b-initial")
    PipelineRunner(load_pipeline(f"{HERE}:other_training"),
                   {"data": f"{version.name}@{version.version}"}, workspace=workspace).run()
    main.registry.set_alias(OTHER, ct.CHAMPION, 1, reason="test: initial model")
    main.deployments.ensure(OTHER, TrafficPlan.single(f"{OTHER}@champion"))
    policy = ct.policy(model=OTHER, pipeline=f"{HERE}:other_training", approval=True)
    world = SimulatedWorld(policy, main.deployments, ct.INPUTS, label_delay_ms=0)
    world.now = ct.T0
    return ct.Scene(main.home, main.deployments, policy, world)


def _record_backtest(workspace: Workspace) -> str:
    """A real (small) backtest of the controller tests' policy, recorded as a run the way
    the loop page reads them: tag, result JSON, HTML report, headline metrics."""
    from ratchet.ct.backtesting import backtest

    history = ct.frame(360, seed=3)
    history.loc[180:, ct.LABEL] = 1 - history.loc[180:, ct.LABEL]  # the concept flips
    history["day"] = pd.date_range("2020-01-01", periods=len(history), freq="D", tz="UTC")
    policy = ct.policy(triggers=(ct.Trigger("performance", metric="accuracy", drop=0.1),),
                       monitor=ct.MonitorPolicy(rows=40, min_rows=20, multivariate=False),
                       data=ct.DataPolicy(label=ct.LABEL, rows=120, holdout=50, min_rows=100),
                       gate=ct.GatePolicy(margin=0.0, min_holdout=50))
    result = backtest(policy, history, time_column="day", start=120, tick="20d",
                      label_delay="1d", schedule=None)
    folder = workspace.settings.home / "backtest"
    folder.mkdir(parents=True)
    result.write_html(folder / Path(BACKTEST_REPORT).name, title=f"backtest {SCRIPT}")
    (folder / Path(BACKTEST_RESULT).name).write_text(json.dumps(result.to_dict(), default=str))
    with use(workspace), ratchet.start_run(experiment="ct-backtests",
                                           name=f"ctm {SCRIPT}") as run:
        ratchet.set_tag(BACKTEST_TAG, ct.MODEL)
        ratchet.log_artifacts(folder, "backtest")
        for row in result.summary:
            key = row["strategy"].replace(" ", "_").replace("'", "")
            ratchet.log_metric(f"backtest.accuracy.{key}", row["accuracy"])
    return str(run.run_id)


def _in_a_thread(work: Any, *args: Any) -> Any:
    """Run ``work`` off this thread: the browser's Playwright loop runs here, and the
    simulated world serves through an event loop of its own."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args).result()


def _build(home: Path) -> Loop:
    from ratchet.ct.policy import RolloutPolicy

    main = ct._scene(home)
    first = ct.train(main.deployments, ct.frame(400, seed=1))
    main.registry.set_alias(ct.MODEL, ct.CHAMPION, first, reason="test: initial model")
    main.deployments.ensure(ct.MODEL, ct.TrafficPlan.single(f"{ct.MODEL}@champion"))
    # Cycle 1: the concept flipped; v2 wins the gate, passes shadow and canary.
    main.serve(400, flipped=True)
    main.request("retrain", actor="ana", reason="new sensors")
    controller = main.controller()
    controller.tick()
    main.serve(60, flipped=True)
    controller.tick()
    main.serve(100, flipped=True)
    assert controller.tick().state == "watching"
    # Cycle 2: v3 learns the old concept back and wins the gate, but live traffic keeps
    # the new one: its canary loses to the champion and it is rolled back.
    main.serve(400)
    main.request("retrain", actor="ana")
    strict = main.controller(rollout=RolloutPolicy(
        shadow_requests=40, canary_percent=50, canary_requests=30, min_labels=10,
        max_prediction_shift=None))
    assert strict.tick().state == "shadow"
    main.serve(60, flipped=True)
    strict.tick()
    main.serve(100, flipped=True)
    assert strict.tick().state == "watching"
    # Cycle 3: v4 waits for a person's approval.
    main.serve(400)
    main.request("retrain", actor="ana")
    assert main.controller(approval=True).tick().state == "awaiting_approval"
    other = _second_scene(main)
    other.serve(400, flipped=True)
    other.store.request(OTHER, "retrain", actor="ana", at=other.world.now)
    assert other_controller(other).tick().state == "awaiting_approval"
    # A hostile name cannot be retrained (the controller's datasets are named after the
    # model, and dataset names are portable file names), but it can be registered and
    # asked to retrain: its controller row and request are real.
    workspace = main.registry.tracking.workspace
    workspace.stores.registry.create_registered_model(HOSTILE_MODEL)
    ratchet.ct.request_retrain(HOSTILE_MODEL, actor=SCRIPT, reason=SCRIPT,
                               workspace=workspace)
    return Loop(workspace, main, other, _record_backtest(workspace))


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    root = tmp_path_factory.mktemp("loop")
    home = root / ".ratchet"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("RATCHET_HOME", str(home))
        mp.setenv("RATCHET_DB", f"sqlite:///{home / 'ratchet.db'}")
        mp.setenv("RATCHET_ARTIFACTS", str(home / "artifacts"))
        yield _in_a_thread(_build, home)


def other_controller(scene: ct.Scene) -> Any:
    from ratchet.ct.controller import Controller

    scene.world.policy = scene.policy
    return Controller(scene.policy, scene.world, holder="test")



@pytest.fixture(scope="module")
def team(loop: Loop) -> Iterator[tuple[str, dict[str, str]]]:
    """The dashboard with sign-in, and tokens: an admin, a writer, a reader of everything
    and a reader kept off ``ctm-b`` by a grant."""
    workspace = loop.workspace
    tokens = {"admin": issue_token(workspace, "ana", "admin"),
              "writer": issue_token(workspace, "wes", "writer"),
              "reader": issue_token(workspace, "rui", "reader"),
              "partial": issue_token(workspace, "pia", "reader")}
    workspace.stores.auth.grant("pia", "model", OTHER, "none")
    with dashboard(workspace, auth=True) as url:
        yield url, tokens



def _event(page: Any, kind: str) -> Any:
    return page.locator(f"ol.timeline > li.event[data-kind='{kind}']")


# ------------------------------------------------------------------ in a browser
def test_the_overview_shows_each_controller_and_hostile_names_as_text(
        team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    dialogs = dialogs_of(page)
    sign_in(page, url, tokens["admin"])
    page.get_by_role("link", name="Loop").click()
    page.wait_for_url(f"{url}/ui/loop")
    rows = page.locator("table.loop-states tbody tr")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.model)")) == sorted(
        ["ctm", OTHER, HOSTILE_MODEL])
    ctm = page.locator("table.loop-states tr[data-model='ctm']")
    cells = ctm.locator("td").all_inner_texts()
    assert cells[1] == "awaiting approval" and cells[2] == "3"
    assert cells[3] == "v2" and cells[4] == "v4"  # the champion, the challenger waiting
    assert "approval needed" in cells[5]
    hostile = page.get_by_role("link", name=HOSTILE_MODEL)
    assert hostile.inner_text() == HOSTILE_MODEL  # text, not markup
    hostile_row = page.locator("table.loop-states tbody tr").filter(has=hostile)
    assert f"retrain by {SCRIPT}" in hostile_row.inner_text()
    assert "{{7*7}}" in page.locator("main").inner_text() and not dialogs
    hostile.click()  # the name travels URL-encoded (" ", "?", "#", "%") and comes back
    page.wait_for_selector("ol.timeline")
    assert page.locator("h1").inner_text() == HOSTILE_MODEL
    requested = _event(page, "retrain-requested")
    assert requested.locator(".summary").inner_text() == f"retrain requested: {SCRIPT}"
    assert requested.locator(".who").inner_text() == SCRIPT
    assert page.locator("script:not([src]):not([type='application/json'])").count() == 0
    assert not dialogs


def test_the_timeline_lays_out_each_decision_with_its_evidence(
        team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    sign_in(page, url, tokens["reader"])
    page.goto(f"{url}/ui/loop/ctm")
    kinds = page.locator("ol.timeline > li.event").evaluate_all(
        "es => es.map(e => e.dataset.kind)")
    assert kinds[:5] == ["gate", "retrained", "data", "trigger", "retrain-requested"]
    assert kinds.count("promoted") == 1 and kinds.index("rolled-back") < kinds.index("promoted")
    times = page.locator("ol.timeline time").all_inner_texts()
    assert times == sorted(times, reverse=True)  # newest first
    # The trigger that fired, and what the controller saw.
    trigger = _event(page, "trigger").first
    assert "manual: requested by hand" in trigger.locator("ul.fired").inner_text()
    # The gate: scores, the test, and its interval drawn against zero.
    gate = _event(page, "gate").first
    facts = gate.locator("dl.evidence").inner_text()
    assert "mcnemar-exact" in facts and "95% interval" in facts and "margin (policy)" in facts
    plot = gate.locator("figure.interval svg[role=img]")
    assert plot.count() == 1
    zero = float(plot.locator("line.zero").get_attribute("x1") or "nan")
    low = float(plot.locator("line.ci").get_attribute("x1") or "nan")
    assert low > zero  # the challenger's whole interval is above zero: it passed
    assert "tone-good" in (gate.locator("figure.interval").get_attribute("class") or "")
    # The canary that lost: each guard's measurement, then why it was rolled back.
    failed = _event(page, "canary-failed")
    guards = failed.locator("table.guards tbody tr").all_inner_texts()
    assert any(g.startswith("traffic") for g in guards)
    assert any(g.startswith("live accuracy") and "canary" in g for g in guards)
    assert "worse by" in failed.locator("ul.reasons").inner_text()
    assert failed.locator("figure.interval svg").count() == 1  # canary - champion ±2 SE
    rolled = _event(page, "rolled-back")
    assert "live accuracy" in rolled.locator("ul.reasons").inner_text()
    assert "v2 stays champion" in rolled.locator(".summary").inner_text()
    passed = _event(page, "shadow-passed").first
    assert "disagreement" in passed.locator("table.guards").inner_text()
    # Raw evidence stays one click away.
    gate.locator("details summary").click()
    assert '"mcnemar-exact"' in gate.locator("pre.raw").inner_text()
    # A reader is shown the waiting challenger, but no buttons.
    pending = page.locator("section.pending")
    assert "Challenger v4 passed the gate" in pending.inner_text()
    assert pending.locator("figure.interval.tone-good svg[role=img]").count() == 1
    assert pending.get_by_role("button").count() == 0
    assert "write permission" in pending.inner_text()


def test_a_writer_approves_and_the_record_names_them(
        loop: Loop, team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    sign_in(page, url, tokens["writer"])
    page.goto(f"{url}/ui/loop/ctm")
    page.get_by_label("Reason (kept on the record)").fill("checked the slices")
    with page.expect_navigation():
        page.get_by_role("button", name="Approve").click()
    answered = page.locator("section.pending .answered")
    assert "approve requested by wes: “checked the slices”" in answered.inner_text()
    assert page.locator("section.pending").get_by_role("button").count() == 0
    newest = page.locator("ol.timeline > li.event").first
    assert newest.get_attribute("data-kind") == "approve-requested"
    assert newest.locator(".who").inner_text() == "wes"
    # The same record `ratchet ct status` and `ratchet ct history` read.
    state = ratchet.ct.get_controller_state("ctm", workspace=loop.workspace)
    assert [(r["kind"], r["actor"], r["reason"], r["cycle"]) for r in state.requests] == [
        ("approve", "wes", "checked the slices", 3)]
    [event] = ratchet.ct.list_events("ctm", kinds=["approve-requested"],
                                     workspace=loop.workspace)
    assert event.actor == "wes"


def test_a_writer_rejects_and_the_controller_acts_on_it(
        loop: Loop, team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    dialogs = dialogs_of(page)
    sign_in(page, url, tokens["writer"])
    page.goto(f"{url}/ui/loop/{OTHER}")
    page.get_by_label("Reason (kept on the record)").fill(SCRIPT)
    with page.expect_navigation():
        page.get_by_role("button", name="Reject").click()
    assert "reject requested by wes" in page.locator("section.pending .answered").inner_text()
    result = _in_a_thread(lambda: other_controller(loop.other).tick())  # its next tick
    assert [e for _, _, e in result.steps] == ["disapproved", "rejected"]
    page.reload()
    assert page.locator("section.pending").count() == 0
    rejected = _event(page, "rejected")
    assert rejected.locator("ul.reasons").inner_text() == f"rejected by wes: {SCRIPT}"
    assert _event(page, "disapproved").locator(".who").inner_text() == "wes"
    assert page.locator("table.loop-states, .loop-state .badge").first.inner_text() == "watching"
    assert not dialogs


def test_a_reader_gets_no_buttons_and_the_json_route_refuses(
        loop: Loop, team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    watched.expect_status(403)
    page = watched.page
    sign_in(page, url, tokens["reader"])
    page.goto(f"{url}/ui/loop/ctm")
    assert page.get_by_role("button", name="Approve").count() == 0
    answer = page.evaluate("""async () => {
        const r = await fetch('/ui/api/loop/ctm/approve', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: '{}'});
        return [r.status, await r.json()];
    }""")
    assert answer[0] == 403 and "rui" in answer[1]["error"]["message"]
    state = ratchet.ct.get_controller_state("ctm", workspace=loop.workspace)
    assert all(r["actor"] != "rui" for r in state.requests)


def test_a_backtest_is_drawn_from_its_stored_result(
        loop: Loop, team: tuple[str, dict[str, str]], watched: Watched) -> None:
    url, tokens = team
    page = watched.page
    dialogs = dialogs_of(page)
    sign_in(page, url, tokens["reader"])
    page.goto(f"{url}/ui/loop/ctm")
    page.get_by_role("link", name=f"ctm {SCRIPT}").click()
    page.wait_for_url(f"{url}/ui/backtests/{loop.backtest_run}")
    from ratchet.tracking.client import TrackingClient

    stored = json.loads(loop.workspace.client(TrackingClient).read_artifact(
        loop.backtest_run, BACKTEST_RESULT))
    lines = page.locator("figure.periods svg polyline")
    assert lines.evaluate_all("ls => ls.map(l => l.dataset.strategy)") == list(stored["periods"])
    assert all(len(p.split(" ")) > 1 for p in lines.evaluate_all(
        "ls => ls.map(l => l.getAttribute('points'))"))
    summary = page.locator("table.grid").first.locator("tbody tr")
    assert summary.count() == len(stored["summary"])
    assert summary.first.locator("td").first.inner_text() == stored["summary"][0]["strategy"]
    assert page.get_by_role("link", name="download the HTML report").count() == 1
    assert page.locator("h1").inner_text() == "Backtest: ctm" and not dialogs


def test_an_empty_workspace_says_how_to_start_the_loop(tmp_path: Path,
                                                        watched: Watched) -> None:
    page = watched.page
    with dashboard(local_workspace(tmp_path)) as url:
        page.goto(f"{url}/ui/loop")
        empty = page.locator("p.empty").all_inner_texts()
        assert "No model is under continuous training yet" in empty[0]
        assert "ratchet ct tick" in empty[0] and "No backtest is recorded yet" in empty[1]
        assert page.locator("nav a[aria-current=page]").inner_text() == "Loop"


# ------------------------------------------------------------------ without a browser
@pytest.fixture(scope="module")
def client(loop: Loop, team: tuple[str, dict[str, str]]) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with TestClient(dashboard_app(loop.workspace, ServerOptions(auth=True))) as test_client:
        yield test_client, team[1]


def _as(test_client: TestClient, token: str) -> TestClient:
    test_client.cookies.clear()
    test_client.cookies.set(SESSION_COOKIE, token)
    return test_client


def test_answers_that_the_controller_cannot_take_are_clear_errors(
        client: tuple[TestClient, dict[str, str]]) -> None:
    test_client, tokens = client
    writer = _as(test_client, tokens["writer"])
    quoted = "/ui/api/loop/" + _path(HOSTILE_MODEL)
    nothing_waits = writer.post(f"{quoted}/approve", json={"reason": "x"})
    assert nothing_waits.status_code == 422
    assert "no challenger is waiting for approval (the controller is watching)" in \
        nothing_waits.json()["error"]["message"]
    unknown = writer.post("/ui/api/loop/no-such-model/reject", json={})
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith(
        "application/json")
    too_long = writer.post(f"{quoted}/reject", json={"reason": "x" * 2001})
    assert too_long.status_code == 422
    form = writer.post(f"{quoted}/reject", content="reason=x",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415  # another site's form cannot answer for anyone
    page = writer.get("/ui/loop/no-such-model")
    assert page.status_code == 404 and "no controller has run" in page.text
    assert page.headers["content-type"].startswith("text/html")


def test_a_grant_hides_a_model_from_the_overview_and_refuses_its_page(
        client: tuple[TestClient, dict[str, str]]) -> None:
    test_client, tokens = client
    partial = _as(test_client, tokens["partial"])
    overview = partial.get("/ui/loop")
    assert overview.status_code == 200
    assert 'data-model="ctm"' in overview.text and f'data-model="{OTHER}"' not in overview.text
    assert partial.get(f"/ui/loop/{OTHER}").status_code == 403
    assert partial.post(f"/ui/api/loop/{OTHER}/approve", json={}).status_code == 403


def test_the_stored_report_is_a_download_that_runs_no_script(
        loop: Loop, client: tuple[TestClient, dict[str, str]]) -> None:
    test_client, tokens = client
    reader = _as(test_client, tokens["reader"])
    report = reader.get(f"/ui/backtests/{loop.backtest_run}/report.html")
    assert report.status_code == 200 and "<script" in report.text  # plotly's, inlined
    policy = report.headers["content-security-policy"]
    assert "script-src 'none'" in policy and "sandbox" in policy
    assert report.headers["content-disposition"].startswith("attachment")
    assert report.headers["x-content-type-options"] == "nosniff"
    page = reader.get(f"/ui/backtests/{loop.backtest_run}")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;{{7*7}}" in page.text
    # A run that is not a backtest, and one that does not exist.
    champion_run = loop.main.registry.get_version(ct.MODEL, 1).run_id
    assert reader.get(f"/ui/backtests/{champion_run}").status_code == 404
    assert reader.get("/ui/backtests/nope/report.html").status_code == 404


def _path(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def test_the_interval_plot_places_zero_the_margin_and_an_open_end() -> None:
    passed = interval_plot(0.02, 0.08, 0.05, threshold=0.01, label="d")
    assert passed is not None and passed["tone"] == "good"
    assert passed["axis"][0] < passed["zero"] < passed["threshold"] < passed["low"] \
        < passed["estimate"] < passed["high"] <= passed["axis"][1]
    straddles = interval_plot(-0.01, 0.03, 0.01, threshold=0.0)
    assert straddles is not None and straddles["tone"] == "bad"
    assert straddles["low"] < straddles["zero"] < straddles["high"]
    assert straddles["threshold"] is None  # a zero margin is the zero line
    short = interval_plot(0.01, 0.05, 0.02, threshold=0.03)  # above 0, under the margin
    assert short is not None and short["tone"] == "bad"
    open_end = interval_plot(0.1, None, 0.2)
    assert open_end is not None and open_end["open"] and open_end["high_text"] == "∞"
    assert open_end["high"] == open_end["axis"][1]
    assert interval_plot(float("nan"), 1, 0.5) is None


def test_every_event_the_controller_wrote_is_laid_out(loop: Loop) -> None:
    """Each event of the module's real record shows more than its raw JSON."""
    from ratchet.ui.pages.loop import _event_view

    events = [e for model in (ct.MODEL, OTHER, HOSTILE_MODEL)
              for e in ratchet.ct.list_events(model, workspace=loop.workspace)]
    assert {"trigger", "gate", "shadow-passed", "canary-failed", "rolled-back", "promoted",
            "retrain-requested"} <= {e.kind for e in events}
    for event in events:
        view = _event_view(event)
        shown = view["facts"] or view["fired"] or view["guards"] or view["reasons"] \
            or view["plot"]
        assert shown, (event.kind, event.evidence)


def test_failed_and_blocked_steps_say_why() -> None:
    """Kinds this module's scene does not reach, in the shapes the controller writes."""
    from ratchet.store.ct_event_store import CTEvent
    from ratchet.ui.pages.loop import _event_view

    failed = _event_view(CTEvent("e1", "m", "retrain-failed", "retrain #2 failed: out of "
                                 "memory", {"error": "out of memory", "params": {"data":
                                                                               "m-ct-train@2"}},
                                 "ratchet-controller", 1))
    assert failed["reasons"] == ["out of memory"] and failed["tone"] == "bad"
    assert ("params.data", "m-ct-train@2") in failed["facts"]
    refit = _event_view(CTEvent("e2", "m", "retrain-failed", "refit failed: disk full",
                                {"params": {"data": "x@1"}}, None, 2))
    assert refit["reasons"] == ["refit failed: disk full"]
    blocked = _event_view(CTEvent("e3", "m", "trigger-blocked", "cooldown: last retrain "
                                  "0h30m ago", {"fired": [{"kind": "performance", "reason":
                                                           "accuracy 0.7 is 0.2 worse",
                                                           "evidence": {"accuracy": 0.7,
                                                                        "drop": 0.2}}]},
                                  None, 3))
    assert blocked["fired"] == [{"kind": "performance", "reason": "accuracy 0.7 is 0.2 worse",
                                 "stats": [("accuracy", "0.7"), ("drop", "0.2")]}]
    gate_failed = _event_view(CTEvent("e4", "m", "gate", "gate failed", {
        "passed": False, "reasons": ["needs to be better by more than 0.01"], "flags": [],
        "evidence": {"metric": "auc", "improvement": 0.004,
                     "policy": {"margin": 0.01, "confidence": 0.95},
                     "test": {"name": "paired-bootstrap", "interval": [-0.002, None],
                              "confidence": 0.95}}}, None, 4))
    assert gate_failed["tone"] == "bad" and gate_failed["plot"]["tone"] == "bad"
    assert gate_failed["plot"]["open"] and gate_failed["plot"]["threshold"] is not None
    assert ("95% interval", "[-0.002, ∞]") in gate_failed["facts"]


def test_a_long_timeline_comes_in_pages_newest_first(
        loop: Loop, client: tuple[TestClient, dict[str, str]]) -> None:
    test_client, tokens = client
    events = loop.workspace.stores.ct_events
    for i in range(230):  # what a controller writes once per blocked spell
        events.append("paged", "trigger-blocked", f"cooldown #{i}",
                      evidence={"fired": []}, actor="ratchet-controller", at=1_000 + i)
    reader = _as(test_client, tokens["reader"])
    first = reader.get("/ui/loop/paged")
    assert first.status_code == 200 and "No controller has run for this model yet" in first.text
    assert first.text.count('data-kind="trigger-blocked"') == 100
    assert first.text.index("cooldown #229") < first.text.index("cooldown #130")
    assert "cooldown #129" not in first.text and "page 1 of 3 (230 events)" in first.text
    last = reader.get("/ui/loop/paged?page=3")
    assert last.text.count('data-kind="trigger-blocked"') == 30 and "cooldown #0<" in last.text
    beyond = reader.get("/ui/loop/paged?page=4")
    assert beyond.status_code == 404 and "3 pages of 100, not 4" in beyond.text
    assert reader.get("/ui/loop/paged?page=-1").status_code == 422


def _tagged_run(workspace: Workspace, folder: Path, text: str) -> str:
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(text)
    with use(workspace), ratchet.start_run(experiment="ct-backtests") as run:
        ratchet.set_tag(BACKTEST_TAG, ct.MODEL)
        ratchet.log_artifacts(folder, "backtest")
    return str(run.run_id)


def test_a_result_of_another_shape_is_shown_as_far_as_it_goes(
        loop: Loop, client: tuple[TestClient, dict[str, str]], tmp_path: Path) -> None:
    """Anyone may tag a run: a result not written by BacktestResult is never a 500."""
    test_client, tokens = client
    reader = _as(test_client, tokens["reader"])
    odd = _tagged_run(loop.workspace, tmp_path / "odd", json.dumps({
        "summary": [1, {"strategy": SCRIPT, "accuracy": "high"}], "periods": {"loop": 3,
                                                                         "x": [[1]]},
        "promotions": "none", "events": [7, {"kind": SCRIPT}], "rows": "many"}))
    page = reader.get(f"/ui/backtests/{odd}")
    assert page.status_code == 200, page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;{{7*7}}" in page.text
    assert "rows replayed" not in page.text and "download the HTML report" not in page.text
    not_an_object = _tagged_run(loop.workspace, tmp_path / "list", "[1, 2]")
    refused = reader.get(f"/ui/backtests/{not_an_object}")
    assert refused.status_code == 422 and "is not an object" in refused.text
    broken = _tagged_run(loop.workspace, tmp_path / "broken", "{")
    assert reader.get(f"/ui/backtests/{broken}").status_code == 422


def test_a_canary_phase_shows_its_percent(loop: Loop) -> None:
    """The overview's phase during a canary: the percent of the last canary-started event
    (ctm's record holds two, at 50%)."""
    from dataclasses import replace

    from ratchet.ui.pages.loop import _state_row

    state = ratchet.ct.get_controller_state(ct.MODEL, workspace=loop.workspace)
    row = _state_row(loop.workspace, replace(state, state="canary"))
    assert row["phase"] == "canary 50%" and row["tone"] == "good"
    assert row["challenger"] == 4 and row["champion"] == 2
