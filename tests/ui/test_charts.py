"""Metric charts: the JSON route (downsampled windows, errors, permissions) and chart.js in
Chromium (a canvas with data, zoom fetches a finer window, honest empty states, hostile
keys as text)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import ratchet
from ratchet.server.app import ServerOptions
from ratchet.ui import dashboard_app
from ratchet.workspace import Workspace, use
from tests.ui.browser import Watched, dashboard, dialogs_of, issue_token, local_workspace

HOSTILE = "<script>alert(1)</script>{{7*7}}"
ODD_KEY = "val/loss: top-1 x.y"  # metric keys may hold '/', ':' and spaces (no markup)
STEPS = 20_000
SPIKE = 12_345


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict[str, str]]:
    workspace = local_workspace(tmp_path_factory.mktemp("charts"))
    ids = {}
    with use(workspace):
        with ratchet.start_run(experiment="charts", name="long") as run:
            points = [("loss", 1.0 / (1 + s / 100), s, 1_000 + s) for s in range(STEPS)]
            points[SPIKE] = ("loss", 9.0, SPIKE, 1_000 + SPIKE)
            points += [("only nan", math.nan, s, 1) for s in range(5)]
            points += [(ODD_KEY, float(s % 5), s, 1) for s in range(50)]
            ratchet.log_batch(points)
            ids["long"] = run.info.run_id if hasattr(run, "info") else run.run_id
        with ratchet.start_run(experiment="secret", name="hidden") as run:
            ratchet.log_metric("loss", 1.0)
            ids["secret"] = run.info.run_id if hasattr(run, "info") else run.run_id
    return workspace, ids


@pytest.fixture(scope="module")
def url(seeded: tuple[Workspace, dict[str, str]]) -> Iterator[str]:
    with dashboard(seeded[0]) as base:
        yield base


def api(client: TestClient, run_id: str, **query: Any) -> Any:
    return client.get(f"/ui/api/runs/{run_id}/metric", params=query)


def test_the_route_downsamples_and_keeps_the_spike(
        seeded: tuple[Workspace, dict[str, str]]) -> None:
    workspace, ids = seeded
    client = TestClient(dashboard_app(workspace, ServerOptions(auth=False)))
    whole = api(client, ids["long"], key="loss", points=500).json()
    assert whole["downsampled"] and whole["count"] == STEPS and whole["width"] == 40
    assert whole["extent"] == [0, STEPS - 1] and len(whole["step"]) == 500
    assert max(whole["max"]) == 9.0
    zoom = api(client, ids["long"], key="loss", points=500, start=12_300, end=12_399).json()
    assert not zoom["downsampled"] and zoom["step"] == list(range(12_300, 12_400))
    assert zoom["value"][45] == 9.0 and zoom["extent"] == [0, STEPS - 1]
    nan = api(client, ids["long"], key="only nan").json()
    assert nan["nan"] == 5 and nan["value"] == [None] * 5  # JSON has no NaN: null + count
    empty = api(client, ids["long"], key="never").json()
    assert empty["extent"] is None and empty["step"] == []


@pytest.mark.parametrize(("query", "status", "words"), [
    ({"key": "loss", "points": "many"}, 422, "points must be an integer"),
    ({"key": "loss", "points": "0"}, 422, "points must be an integer from 1"),
    ({"key": "loss", "start": "9", "end": "2"}, 422, "start (9) is after end (2)"),
    ({"key": "loss", "start": "x"}, 422, "start must be an integer"),
    ({}, 422, "?key=NAME"),
])
def test_bad_input_is_a_json_error(seeded: tuple[Workspace, dict[str, str]],
                                   query: dict[str, str], status: int, words: str) -> None:
    workspace, ids = seeded
    client = TestClient(dashboard_app(workspace, ServerOptions(auth=False)))
    answer = api(client, ids["long"], **query)
    assert answer.status_code == status and words in answer.json()["error"]["message"]


def test_unknown_runs_and_unreadable_experiments(
        seeded: tuple[Workspace, dict[str, str]]) -> None:
    workspace, ids = seeded
    token = issue_token(workspace, "cora", "reader")
    workspace.stores.auth.grant("cora", "experiment", "secret", "none")
    client = TestClient(dashboard_app(workspace, ServerOptions(auth=True)))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/ui/api/runs/{'0' * 32}/metric?key=loss",
                      headers=headers).status_code == 404
    assert client.get(f"/ui/api/runs/{ids['secret']}/metric?key=loss",
                      headers=headers).status_code == 403
    assert client.get(f"/ui/api/runs/{ids['long']}/metric?key=loss",
                      headers=headers).status_code == 200
    assert client.get(f"/ui/api/runs/{ids['long']}/metric?key=loss").status_code == 401


def chart_host(page: Any, url: str, run_id: str) -> None:
    """A page that loads uPlot and chart.js (the compare page of one run)."""
    page.goto(f"{url}/ui/compare?run={run_id}&key=loss")
    # compare.js drew its own chart with chart.js: ratchetCharts is there.
    page.locator("[data-compare-chart][data-state=ready]").wait_for()


def add_chart(page: Any, run_id: str, key: str, title: str = "") -> Any:
    """A ``data-metric-chart`` element added the way a page would hold one."""
    page.evaluate("""([run, key, title]) => {
        const el = document.createElement("div");
        el.className = "chart"; el.id = "under-test";
        el.dataset.metricChart = ""; el.dataset.run = run; el.dataset.key = key;
        if (title) el.dataset.title = title;
        document.querySelector("main").prepend(el);
        window.ratchetCharts.metric(el, run, key);
    }""", [run_id, key, title])
    chart = page.locator("#under-test")
    page.locator("#under-test:is([data-state=ready], [data-state=empty], [data-state=error])"
                 ).wait_for()
    return chart


def painted(page: Any, selector: str) -> int:
    """How many pixels of the chart's canvas are not blank."""
    return int(page.evaluate("""(selector) => {
        const c = document.querySelector(selector + " canvas");
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
    }""", selector))


def test_a_chart_draws_and_zooming_fetches_a_finer_window(
        seeded: tuple[Workspace, dict[str, str]], url: str, watched: Watched) -> None:
    _, ids = seeded
    page = watched.page
    chart_host(page, url, ids["long"])
    chart = add_chart(page, ids["long"], "loss", "loss")
    assert chart.get_attribute("data-state") == "ready"
    assert int(chart.get_attribute("data-points")) > 100
    assert chart.get_attribute("data-window") == f"0:{STEPS - 1}"
    assert painted(page, "#under-test") > 500
    assert "drag to zoom" in chart.locator(".chart-note").inner_text()
    coarse = int(chart.get_attribute("data-width"))
    assert coarse > 1
    over = chart.locator(".u-over")
    box = over.bounding_box()
    with page.expect_response(lambda r: "/metric?" in r.url and "start=" in r.url) as zoomed:
        page.mouse.move(box["x"] + box["width"] * 0.60, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.63, box["y"] + 60, steps=4)
        page.mouse.up()
    assert zoomed.value.ok
    page.locator(f"#under-test[data-state=ready]:not([data-window='0:{STEPS - 1}'])").wait_for()
    start, end = (int(v) for v in chart.get_attribute("data-window").split(":"))
    assert 0 < start < end < STEPS - 1 and end - start < STEPS / 10
    assert int(chart.get_attribute("data-width")) < coarse  # finer buckets (or raw)
    assert "double-click to zoom out" in chart.locator(".chart-note").inner_text()
    with page.expect_response(lambda r: "/metric?" in r.url and "start=" not in r.url):
        over.dblclick()
    page.locator(f"#under-test[data-state=ready][data-window='0:{STEPS - 1}']").wait_for()


def test_empty_and_nan_only_histories_say_so(
        seeded: tuple[Workspace, dict[str, str]], url: str, watched: Watched) -> None:
    _, ids = seeded
    page = watched.page
    chart_host(page, url, ids["long"])
    empty = add_chart(page, ids["long"], "never logged")
    assert empty.get_attribute("data-state") == "empty"
    assert "No values of never logged logged yet" in empty.inner_text()
    assert empty.locator("canvas").count() == 0
    page.evaluate("document.getElementById('under-test').remove()")
    nan = add_chart(page, ids["long"], "only nan")
    assert "none finite" in nan.locator(".chart-note").inner_text()


def test_an_odd_metric_key_and_a_hostile_title_are_text(
        seeded: tuple[Workspace, dict[str, str]], url: str, watched: Watched) -> None:
    _, ids = seeded
    page = watched.page
    dialogs = dialogs_of(page)
    chart_host(page, url, ids["long"])
    chart = add_chart(page, ids["long"], ODD_KEY, HOSTILE)
    assert chart.get_attribute("data-state") == "ready"
    assert chart.get_attribute("data-count") == "50"
    assert chart.locator(".u-title").inner_text() == HOSTILE
    assert ODD_KEY in chart.locator(".u-legend").inner_text()
    assert not dialogs and "49" not in chart.locator(".u-title").inner_text()
    assert chart.locator("script").count() == 0
