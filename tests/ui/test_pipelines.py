"""The pipelines pages: runs per pipeline, schedules, a run's DAG with statuses and cache
hits, each step's log, error and outputs; hostile strings stay text."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import ratchet
from ratchet.errors import StepFailed
from ratchet.pipelines import list_pipeline_runs, pipeline, step
from ratchet.pipelines.run_result import PipelineResult
from ratchet.server.app import ServerOptions
from ratchet.server.permissions import SESSION_COOKIE
from ratchet.ui import dashboard_app
from ratchet.ui.pages.pipelines import NODE_W, layout
from ratchet.workspace import Workspace, use
from tests.serving.conftest import wait_until
from tests.ui.browser import (
    SCREENSHOTS,
    Watched,
    dashboard,
    dialogs_of,
    issue_token,
    local_workspace,
)

HOSTILE = "<script>alert(1)</script>{{7*7}}"
FLAKY: dict[str, int] = {"calls": 0}


@step
def load(n: int, label: str) -> list[int]:
    print(f"loading {n} rows for {label}")
    return list(range(n))


@step
def left(rows: list[int]) -> int:
    return sum(rows)


@step
def right(rows: list[int]) -> int:
    return len(rows)


@step(cache=False)
def join(a: int, b: int, label: str) -> str:
    print(f"joined {label}")
    return f"{a}/{b}"


@step(cache=False, retries=1, backoff=0.01)
def explode(total: int) -> int:
    FLAKY["calls"] += 1
    raise RuntimeError(f"cannot score {HOSTILE}")


GATE = threading.Event()


@step(cache=False)
def wait_for_gate(n: int) -> int:
    assert GATE.wait(60), "the test never opened the gate"
    return n


@pipeline
def gated(n: int = 1) -> Any:
    return inc_after(wait_for_gate(n))


@step(cache=False)
def inc_after(n: int) -> int:
    return n + 1


@pipeline
def diamond(n: int = 5, label: str = HOSTILE) -> Any:
    rows = load(n, label)
    return join(left(rows), right(rows), label)


@pipeline
def fragile(n: int = 3) -> Any:
    return explode(left(load(n, "fragile")))


def _environment_of(mp: pytest.MonkeyPatch, workspace: Workspace) -> None:
    """Point the RATCHET_* variables at ``workspace`` for the test only: a step that runs
    outside the ambient workspace (another thread) sets them to its run's store for the
    rest of the process (``pipelines/step_task._tracking_client``), which would leak
    into the next test module."""
    settings = workspace.settings
    mp.setenv("RATCHET_HOME", str(settings.home))
    mp.setenv("RATCHET_DB", settings.db_url)
    mp.setenv("RATCHET_ARTIFACTS", settings.artifacts_uri)
    mp.delenv("RATCHET_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two runs of a diamond (the second reuses the cached steps), one failing run, and a
    schedule with a hostile parameter (schedule names are plain keys)."""
    workspace = local_workspace(tmp_path_factory.mktemp("pipelines"))
    with pytest.MonkeyPatch.context() as mp, use(workspace):
        _environment_of(mp, workspace)
        first = diamond.run()
        second = diamond.run()
        with pytest.raises(StepFailed) as failed:
            fragile.run()
        ratchet.schedule("tests.ui.test_pipelines:diamond", "0 3 * * *", name="nightly",
                         params={"n": 2, "label": HOSTILE})
    assert failed.value.run_id is not None
    return {"workspace": workspace, "first": first, "second": second,
            "failed": failed.value.run_id}


@pytest.fixture(scope="module")
def url(seeded: dict[str, Any]) -> Iterator[str]:
    with dashboard(seeded["workspace"]) as base:
        yield base



def test_a_run_is_drawn_as_a_dag_with_statuses_and_cache_hits(
        seeded: dict[str, Any], url: str, watched: Watched) -> None:
    page = watched.page
    dialogs = dialogs_of(page)
    second: PipelineResult = seeded["second"]
    page.goto(f"{url}/ui/pipelines/runs/{second.run_id}")
    nodes = page.locator("svg.dag a.node")
    assert nodes.count() == 4
    assert page.locator("svg.dag path.edge").count() == 4  # load→left, load→right, 2 into join
    statuses = {n.get_attribute("data-node"): n.get_attribute("class") for n in nodes.all()}
    # load, left and right are reused from the first run; join is never cached.
    for cached in ("load", "left", "right"):
        assert "status-cached" in (statuses[cached] or "")
        node = page.locator(f'svg.dag a.node[data-node="{cached}"]')
        assert "cache hit" in (node.text_content() or "")
    assert "status-finished" in (statuses["join"] or "")
    # Layered by depth: load, then left/right side by side, then join.
    xs = {n.get_attribute("data-node"): float(n.locator("rect").get_attribute("x") or 0)
          for n in nodes.all()}
    assert xs["load"] < xs["left"] == xs["right"] < xs["join"]
    assert "3 cache hits" in page.locator("dl.facts").first.inner_text()

    page.locator('svg.dag a.node[data-node="join"]').click()
    panel = page.locator("#step-join")
    assert "selected" in (panel.get_attribute("class") or "")
    assert page.locator("svg.dag path.edge.lit").count() == 2
    log = panel.locator("pre.log").inner_text()
    assert log.strip() == f"joined {HOSTILE}"  # the hostile log line is text
    assert "#step-join" in page.url
    page.locator('svg.dag a.node[data-node="left"]').focus()  # the keyboard way
    page.keyboard.press("Enter")
    assert "selected" in (page.locator("#step-left").get_attribute("class") or "")
    assert "selected" not in (panel.get_attribute("class") or "")
    main = page.locator("main").inner_text()
    assert HOSTILE in main  # neither markup nor a template: the text itself
    assert not dialogs


def test_a_failed_step_shows_its_attempts_and_error_as_text(
        seeded: dict[str, Any], url: str, watched: Watched) -> None:
    page = watched.page
    dialogs = dialogs_of(page)
    page.goto(f"{url}/ui/pipelines/runs/{seeded['failed']}")
    node = page.locator('svg.dag a.node[data-node="explode"]')
    assert "status-failed" in (node.get_attribute("class") or "")
    assert "2 attempts" in (node.text_content() or "")
    page.goto(f"{url}/ui/pipelines/runs/{seeded['failed']}#step-explode")
    panel = page.locator("#step-explode")
    assert "selected" in (panel.get_attribute("class") or "")
    error = panel.locator("pre.error").inner_text()
    assert f"cannot score {HOSTILE}" in error
    assert page.locator("h1 .status").inner_text() == "failed"
    assert not dialogs


def test_the_listing_groups_runs_by_pipeline_and_shows_schedules(
        seeded: dict[str, Any], url: str, watched: Watched) -> None:
    page = watched.page
    dialogs = dialogs_of(page)
    page.goto(f"{url}/ui/pipelines")
    assert page.locator("nav a[aria-current=page]").inner_text() == "Pipelines"
    diamond_runs = page.get_by_role("table", name="Runs of pipeline diamond")
    assert diamond_runs.locator("tbody tr").count() == 2
    assert "3 cache hits" in diamond_runs.locator("tbody tr").first.inner_text()
    assert "failed" in page.get_by_role("table", name="Runs of pipeline fragile").inner_text()
    schedule = page.get_by_role("table", name="Pipeline schedules").locator("tbody tr")
    assert schedule.count() == 1
    cells = schedule.locator("td")
    assert cells.nth(0).inner_text() == "nightly" and cells.nth(2).inner_text() == "0 3 * * *"
    assert cells.nth(3).inner_text() == f'label="{HOSTILE}", n=2'
    assert "enabled" in cells.nth(4).inner_text() and cells.nth(5).inner_text().startswith("20")
    assert cells.nth(6).inner_text() == "never"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "pipelines_listing_page.png"), full_page=True)
    page.get_by_role("link", name=seeded["first"].run_id).click()
    page.wait_for_url(f"**/ui/pipelines/runs/{seeded['first'].run_id}")
    assert page.locator("svg.dag a.node.status-finished").count() == 4
    page.goto(f"{url}/ui/pipelines?pipeline=fragile")
    assert page.get_by_role("table", name="Runs of pipeline diamond").count() == 0
    page.goto(f"{url}/ui/pipelines?pipeline=nothing-like-this")
    assert "No pipeline runs match" in page.locator(".empty").first.inner_text()
    assert not dialogs


def test_a_running_pipeline_page_follows_the_run(tmp_path: Path, watched: Watched,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    page = watched.page
    workspace = local_workspace(tmp_path)
    _environment_of(monkeypatch, workspace)
    GATE.clear()
    results: list[PipelineResult] = []

    def run() -> None:
        with use(workspace):
            results.append(gated.run())

    thread = threading.Thread(target=run)
    thread.start()
    try:
        with dashboard(workspace) as base:
            run_id = wait_until(lambda: [r.run_id for r in list_pipeline_runs(
                workspace=workspace) if any(s.status == "running" for s in r.steps)])[0]
            page.goto(f"{base}/ui/pipelines/runs/{run_id}")
            assert page.locator("h1 .status").inner_text() == "running"
            node = page.locator('svg.dag a.node[data-node="wait_for_gate"]')
            assert "status-running" in (node.get_attribute("class") or "")
            assert "status-pending" in (page.locator(
                'svg.dag a.node[data-node="inc_after"]').get_attribute("class") or "")
            GATE.set()
            page.locator("h1 .status", has_text="finished").wait_for()  # reloaded by itself
            assert page.locator("svg.dag a.node.status-finished").count() == 2
            assert page.locator("[data-refresh]").count() == 0
    finally:
        GATE.set()
        thread.join(30)
    assert results and results[0].status == "finished"


def test_an_empty_workspace_says_how_runs_and_schedules_get_there(
        tmp_path: Path, watched: Watched) -> None:
    page = watched.page
    with dashboard(local_workspace(tmp_path)) as base:
        page.goto(f"{base}/ui/pipelines")
        empty = page.locator(".empty")
        assert "No pipeline runs yet" in empty.nth(0).inner_text()
        assert "ratchet scheduler" in empty.nth(1).inner_text()


# ----------------------------------------------------------------- without a browser
def test_logs_are_plain_text_and_unknown_runs_are_an_html_404(seeded: dict[str, Any]) -> None:
    workspace: Workspace = seeded["workspace"]
    with TestClient(dashboard_app(workspace, ServerOptions(auth=False))) as client:
        run_id = seeded["first"].run_id
        log = client.get(f"/ui/pipelines/runs/{run_id}/logs/load")
        assert log.status_code == 200 and log.text == f"loading 5 rows for {HOSTILE}\n"
        assert log.headers["content-type"].startswith("text/plain")
        assert log.headers["x-content-type-options"] == "nosniff"
        missing = client.get("/ui/pipelines/runs/nope-not-a-run")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
        step = client.get(f"/ui/pipelines/runs/{run_id}/logs/no-such-step")
        assert step.status_code == 404
        bad = client.get("/ui/pipelines?status=exploded")
        assert bad.status_code == 422 and "unknown pipeline run status" in bad.text


def test_pipelines_need_a_signed_in_reader(seeded: dict[str, Any]) -> None:
    workspace: Workspace = seeded["workspace"]
    token = issue_token(workspace, "rita", "reader")
    with TestClient(dashboard_app(workspace, ServerOptions(auth=True))) as client:
        away = client.get("/ui/pipelines", follow_redirects=False)
        assert away.status_code == 303 and away.headers["location"].startswith("/ui/login")
        client.cookies.set(SESSION_COOKIE, token)
        try:
            page = client.get(f"/ui/pipelines/runs/{seeded['first'].run_id}")
            assert page.status_code == 200
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert HOSTILE not in page.text  # escaped in the HTML source
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        finally:
            client.cookies.clear()


def test_layout_layers_by_depth_even_for_records_out_of_order(
        seeded: dict[str, Any]) -> None:
    steps = list(reversed(seeded["first"].steps))
    drawn = {n.step.node: n for n in layout(steps).nodes}
    assert drawn["load"].x < drawn["left"].x < drawn["join"].x
    assert drawn["left"].y != drawn["right"].y
    assert layout([]).nodes == [] and layout(steps).width >= 3 * NODE_W
