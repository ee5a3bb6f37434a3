"""Compare runs in Chromium: metric overlays, the parallel coordinates SVG (one path per
run), the diff table and its "only differences" toggle; hostile names and values as
text; bad requests and permissions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import ratchet
from ratchet.server.app import ServerOptions
from ratchet.ui import dashboard_app
from ratchet.ui.pages.compare import MAX_RUNS
from ratchet.workspace import Workspace, use
from tests.ui.browser import Watched, dashboard, dialogs_of, issue_token, local_workspace

HOSTILE = "<script>alert(1)</script>{{7*7}}"


def run_id_of(run: Any) -> str:
    return str(run.info.run_id if hasattr(run, "info") else run.run_id)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, list[str], str]:
    workspace = local_workspace(tmp_path_factory.mktemp("compare"))
    ids = []
    with use(workspace):
        for i, (lr, optimizer) in enumerate([(0.1, "adam"), (0.01, HOSTILE), (0.001, "sgd")]):
            with ratchet.start_run(experiment="tune", name=HOSTILE if i == 1 else f"trial {i}") \
                    as run:
                ratchet.log_params({"lr": lr, "optimizer": optimizer, "seed": 7,
                                    "layers": 2 + i})
                ratchet.log_batch([("loss", 1.0 / (1 + s * (i + 1)), s, 1000 + s)
                                   for s in range(0, 3000 - 1000 * i)])
                ratchet.log_metric("auc", 0.7 + 0.1 * i)
                if i != 2:
                    ratchet.log_metric("val/loss: top-1", 0.5 - 0.1 * i)
                ids.append(run_id_of(run))
        with ratchet.start_run(experiment="secret", name="hidden") as run:
            ratchet.log_metric("auc", 0.5)
            secret = run_id_of(run)
    return workspace, ids, secret


@pytest.fixture(scope="module")
def url(seeded: tuple[Workspace, list[str], str]) -> Iterator[str]:
    with dashboard(seeded[0]) as base:
        yield base


def test_three_runs_overlays_parallel_coordinates_and_diff(
        seeded: tuple[Workspace, list[str], str], url: str, watched: Watched) -> None:
    _, ids, _ = seeded
    page = watched.page
    dialogs = dialogs_of(page)
    page.goto(f"{url}/ui/compare?" + "&".join(f"run={i}" for i in ids))
    assert page.get_by_role("heading", name="Compare 3 runs").is_visible()
    # Overlays: one chart per metric key (auc, loss, val/loss: top-1), one series per run.
    charts = page.locator("[data-compare-chart]")
    assert charts.count() == 3
    charts_drawn(page)
    loss = page.locator("[data-compare-chart][data-key=loss]")
    assert loss.get_attribute("data-series") == "3" and loss.locator("canvas").count() == 1
    assert loss.locator(".u-legend .u-series").count() == 4  # step + one per run
    assert HOSTILE in loss.locator(".u-legend").inner_text()
    val = page.locator("[data-compare-chart][data-key='val/loss: top-1']")
    val.locator(".chart-note").wait_for()
    assert val.get_attribute("data-series") == "2"
    assert "1 of 3 runs have no val/loss: top-1" in val.locator(".chart-note").inner_text()
    # Parallel coordinates: one path per run, axes for the params that differ + the metric.
    svg = page.locator("[data-parallel] svg")
    svg.wait_for()
    assert svg.locator("path.pc-run").count() == 3
    labels = [t.strip() for t in svg.locator("text.pc-label").all_text_contents()]
    # Axis titles carry the full key in a <title> child: compare their first line.
    assert [t.split("param ")[0].split("metric ")[0] for t in labels] == \
        ["layers", "lr", "optimizer", "auc"]  # seed is the same in every run: no axis
    assert HOSTILE in (svg.locator(".axis").nth(2).text_content() or "")  # a category
    page.get_by_label("Metric", exact=True).select_option("loss")
    page.locator("[data-parallel] svg text.pc-label", has_text="loss").wait_for()
    assert svg.locator("path.pc-run").count() == 3
    # The diff table: rows = keys, columns = runs; the differing rows highlighted.
    table = page.locator("table[data-diff]")
    assert table.locator("thead th").count() == 4
    assert table.locator("thead").inner_text().count(HOSTILE) == 1
    seed = table.locator("tbody tr", has_text="seed")
    assert seed.get_attribute("class") == "same" and seed.is_visible()
    assert table.locator("tbody tr", has_text="optimizer").get_attribute("class") == "differs"
    assert HOSTILE in table.locator("tbody tr", has_text="optimizer").inner_text()
    page.get_by_label("Only differences").check()
    assert not seed.is_visible()
    assert table.locator("tbody tr", has_text="optimizer").is_visible()
    page.get_by_label("Only differences").uncheck()
    assert seed.is_visible()
    main = page.locator("main").inner_text()
    assert "{{7*7}}" in main and not dialogs  # not evaluated (49), not run
    assert page.get_by_role("link", name=HOSTILE).first.inner_text() == HOSTILE
    assert page.locator("main script:not([type='application/json'])").count() == 0


def charts_drawn(page: Any) -> None:
    """Every overlay has its answer (navigating away sooner aborts their requests); an
    overlay is fetched when it comes near the viewport, so each is scrolled to."""
    charts = page.locator("[data-compare-chart]")
    for i in range(charts.count()):
        charts.nth(i).scroll_into_view_if_needed()
        page.locator("[data-compare-chart]:is([data-state=ready], [data-state=empty])"
                     ).nth(i).wait_for()


def test_choosing_the_charted_metrics(
        seeded: tuple[Workspace, list[str], str], url: str, watched: Watched) -> None:
    _, ids, _ = seeded
    page = watched.page
    page.goto(f"{url}/ui/compare?" + "&".join(f"run={i}" for i in ids))
    charts_drawn(page)
    page.get_by_label("Metrics to chart").select_option(["auc"])
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**key=auc**")
    page.locator("[data-compare-chart][data-state=ready]").wait_for()
    assert page.locator("[data-compare-chart]").count() == 1
    assert page.locator("[data-compare-chart]").get_attribute("data-key") == "auc"


def test_no_runs_is_an_honest_empty_page(url: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{url}/ui/compare")
    assert "No runs chosen" in page.locator("main").inner_text()


def test_bad_requests_and_permissions(seeded: tuple[Workspace, list[str], str]) -> None:
    workspace, ids, secret = seeded
    open_client = TestClient(dashboard_app(workspace, ServerOptions(auth=False)))
    too_many = "&".join(f"run={i:032x}" for i in range(MAX_RUNS + 1))
    answer = open_client.get(f"/ui/compare?{too_many}")
    assert answer.status_code == 422 and "at most" in answer.text
    assert "text/html" in answer.headers["content-type"]
    missing = open_client.get(f"/ui/compare?run={ids[0]}&run={'0' * 32}")
    assert missing.status_code == 404 and "0" * 32 in missing.text
    assert open_client.get("/ui/api/compare/metric?run=" + ids[0]).status_code == 422
    bad = open_client.get(f"/ui/api/compare/metric?key=loss&points=100000&run={ids[0]}")
    assert bad.status_code == 422 and "points" in bad.json()["error"]["message"]
    data = open_client.get(f"/ui/api/compare/metric?key=loss&points=50&run={ids[0]}"
                           f"&run={ids[2]}").json()
    assert [len(s["step"]) for s in data["series"]] == [50, 50]
    assert [s["count"] for s in data["series"]] == [3000, 1000]

    token = issue_token(workspace, "dora", "reader")
    workspace.stores.auth.grant("dora", "experiment", "secret", "none")
    client = TestClient(dashboard_app(workspace, ServerOptions(auth=True)))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/ui/compare?run={ids[0]}", headers=headers).status_code == 200
    assert client.get(f"/ui/compare?run={ids[0]}&run={secret}",
                      headers=headers).status_code == 403
    assert client.get(f"/ui/api/compare/metric?key=auc&run={secret}",
                      headers=headers).status_code == 403
