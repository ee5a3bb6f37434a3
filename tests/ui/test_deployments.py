"""The deployments pages: plans and their history, live traffic from the prediction log,
drift and performance over time from real monitor runs, the monitor results and their
stored reports; hostile strings stay text; a grant hides a deployment."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ratchet.data.catalog import DataClient
from ratchet.monitoring.monitor import run_monitor
from ratchet.registry import RegistryClient
from ratchet.server.app import ServerOptions
from ratchet.server.permissions import SESSION_COOKIE
from ratchet.serving import create_app
from ratchet.serving.app import ServingConfig
from ratchet.serving.deployments import DeploymentClient
from ratchet.serving.request_validation import ValidationPolicy
from ratchet.serving.traffic_plan import TrafficPlan
from ratchet.ui import dashboard_app
from ratchet.ui.pages.deployments import bucket_ms, monitor_charts, recent_errors, traffic
from ratchet.workspace import Workspace
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
# A column named like markup whose categories include markup: both reach the drift table,
# the distributions and the chart legends.
PLAN = HOSTILE
# Rows per monitored window: under the monitor's 100-row minimum for its multivariate
# classifier (seconds of CPU per run), enough for the univariate tests to see the shift.
ROWS = 90


def churn(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"age": rng.integers(18, 80, n), "income": rng.normal(50.0, 10.0, n),
                      PLAN: rng.choice(["basic", "pro", HOSTILE], n)})
    y = ((X.age > 45) ^ (X[PLAN] == "pro")).astype(int)
    return X, y


def _model(handle_unknown: str = "ignore") -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    encoder = make_column_transformer((OneHotEncoder(handle_unknown=handle_unknown), [PLAN]),
                                      remainder="passthrough")
    return make_pipeline(encoder, LogisticRegression(max_iter=1000))


def _serve(workspace: Workspace, rows: pd.DataFrame, labels: pd.Series | None) -> None:
    """``rows`` through the real serving app in batches of 30, with feedback if given.
    Every request is answered: where the canary fails, the primary answers its rows."""
    config = ServingConfig(policy=ValidationPolicy(unknown_category="flag",
                                                   out_of_range="flag"),
                           poll_interval_s=0.1, log_flush_interval_s=0.1)
    app = create_app(deployment="churn", workspace=workspace, config=config)
    with TestClient(app) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200)
        for start in range(0, len(rows), 30):
            part = rows.iloc[start:start + 30]
            answer = client.post("/predict", json={"inputs": part.to_dict(orient="records")})
            assert answer.status_code == 200, answer.text
            if labels is not None:
                rid = answer.json()["request_id"]
                items = [{"request_id": rid, "row": i, "value": int(v)}
                         for i, v in enumerate(labels.iloc[start:start + 30])]
                assert client.post("/feedback", json={"feedback": items}).status_code == 200


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Deployment churn: a canary of v2 beside the champion v1, quiet labeled traffic and a
    monitor run (ok), then drifted unlabeled traffic and a second run (drift), then a
    plan change whose reason is hostile. Deployment ``secret`` is never served."""
    workspace = local_workspace(tmp_path_factory.mktemp("deployments"))
    registry = RegistryClient(workspace)
    X, y = churn(1_000, seed=0)
    with registry.tracking.start_run(experiment="churn") as run:
        DataClient(workspace).log(X.assign(label=y), name="churn-train", role="train")
        registry.log_model(run.id, _model().fit(X, y), name="churn", input_example=X)
        # v2, the canary, never saw the hostile category and fails on it: real errors.
        known = (X[PLAN] != HOSTILE).to_numpy()
        registry.log_model(run.id, _model("error").fit(X[known], y[known]), name="churn",
                           input_example=X[known])
    registry.set_alias("churn", "champion", 1)
    deployments = DeploymentClient(workspace)
    deployments.create("churn", TrafficPlan.canary("churn@champion", "churn/2", 30, key="income"),
                       description="churn scoring", actor="ana")
    deployments.create("secret", TrafficPlan.single("churn/1"), actor="ana")
    quiet, labels = churn(ROWS, seed=11)
    _serve(workspace, quiet, labels)
    assert run_monitor("churn", window="1h", workspace=workspace).verdict == "ok"
    # The champion the plan names moves and comes back: served versions change without a
    # plan revision.
    registry.set_alias("churn", "champion", 2, reason="try v2", actor="ci")
    registry.set_alias("churn", "champion", 1, reason="v2 fails on new plans", actor="rui")
    between = datetime.now(UTC)
    moved, _ = churn(ROWS, seed=12)
    moved = moved.assign(age=moved.age + 25,
                         **{PLAN: np.where(moved.index % 3 == 0, moved[PLAN], HOSTILE)})
    _serve(workspace, moved, None)
    # The second window starts after the first batch: it holds the moved rows only.
    span = timedelta(seconds=math.ceil((datetime.now(UTC) - between).total_seconds()))
    second = run_monitor("churn", window=span, end=between + span, workspace=workspace)
    assert second.verdict == "drift", (second.result["rows"], second.result["drift"])
    deployments.set_plan("churn", TrafficPlan.shadowed("churn@champion", "churn/2"),
                         reason=HOSTILE, actor="ana")
    return workspace


@pytest.fixture(scope="module")
def url(seeded: Workspace) -> Iterator[str]:
    with dashboard(seeded) as base:
        yield base



def _drawn(page: Any, chart: str) -> dict[str, Any]:
    """A chart drawn on its element (a canvas), and the data the page gave it."""
    page.locator(f'[data-chart="{chart}"] canvas').first.wait_for()
    data = page.evaluate("JSON.parse(document.getElementById('deployment-charts').textContent)")
    return next(c for c in data if c["id"] == chart)


def _points(chart: dict[str, Any]) -> int:
    return sum(v is not None for s in chart["series"] for v in s["values"])


def test_the_listing_shows_plans_and_the_latest_verdict(url: str, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{url}/ui/deployments")
    rows = page.get_by_role("table", name="Deployments and their current plans").locator(
        "tbody tr")
    assert rows.count() == 2
    text = rows.nth(0).inner_text()
    assert "shadow" in text and "churn@champion" in text and "churn v1" in text
    assert "copy of traffic" in text and "drift" in text
    assert "not monitored" in rows.nth(1).inner_text()  # secret


def test_a_deployment_shows_its_plan_history_and_live_traffic(
        url: str, watched: Watched) -> None:
    page = watched.page
    dialogs = dialogs_of(page)
    page.goto(f"{url}/ui/deployments/churn")
    plan = page.get_by_role("table", name="Variants of the current plan").inner_text()
    assert "shadow" in plan and "churn/2" in plan and "churn v2" in plan
    history = page.get_by_role("table", name="Every plan change, newest first")
    rows = [[c.inner_text() for c in r.locator("td").all()]
            for r in history.locator("tbody tr").all()]
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("2", "new plan", "ana"), ("1", "alias moved", "rui"), ("1", "alias moved", "ci"),
        ("1", "new plan", "ana")]
    assert rows[0][4] == HOSTILE  # the reason, as text
    assert rows[1][5] == "churn@champion: v2 → v1" and rows[2][5] == "churn@champion: v1 → v2"
    assert "canary" in rows[3][5] and "30%" in rows[3][5] and rows[3][4] == "created"
    totals = page.get_by_role("table", name="Traffic per variant in the last 1h")
    cells = {r.locator("td").nth(0).inner_text(): [c.inner_text() for c in r.locator("td").all()]
             for r in totals.locator("tbody tr").all()}
    assert set(cells) == {"primary", "canary"}
    # The canary failed on every request (a category it never saw); the primary answered
    # every row in its place.
    assert int(cells["primary"][1]) == 2 * ROWS and cells["primary"][3] == "0 (0%)"
    canary_requests = int(cells["canary"][2])
    assert canary_requests > 0 and cells["canary"][3] == f"{canary_requests} (100%)"
    drawn = _drawn(page, "traffic")
    assert sum(sum(s["values"]) for s in drawn["series"]) == 2 * ROWS + int(cells["canary"][1])
    assert _points(_drawn(page, "latency")) >= 1
    error_rate = _drawn(page, "errors")["series"][0]["values"]
    assert max(v for v in error_rate if v is not None) == 50.0  # canary fails, primary not
    failures = page.get_by_role("table", name="The newest failed requests").locator("tbody tr")
    assert failures.count() == min(canary_requests, 10)
    message = failures.first.locator("td").nth(4).inner_text()
    assert message.startswith("ValueError: Found unknown categories") and HOSTILE in message
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "deployments_overview_page.png"), full_page=True)
    page.get_by_role("link", name="churn v2").click()  # the version the shadow serves
    page.wait_for_url("**/ui/models/churn?version=2")
    assert not dialogs


def test_the_drift_page_charts_drift_and_performance_over_time(
        url: str, watched: Watched) -> None:
    page = watched.page
    dialogs = dialogs_of(page)
    page.goto(f"{url}/ui/deployments/churn")
    page.get_by_role("link", name="Drift and performance").click()
    page.wait_for_url("**/ui/deployments/churn/drift")
    for chart in ("drift-share", "perf-accuracy"):
        assert _points(_drawn(page, chart)) >= 2
    p_values = _drawn(page, "drift-p")
    assert {s["label"] for s in p_values["series"]} == {"age", "income", PLAN, "prediction"}
    age = next(s for s in p_values["series"] if s["label"] == "age")["values"]
    assert len(age) == 2 and age[0] > 0.05 > age[1]  # quiet, then drifted
    accuracy = _drawn(page, "perf-accuracy")["series"]
    realized = next(s for s in accuracy if s["label"].startswith("realized"))["values"]
    assert realized[0] > 0.6 and realized[1] is None  # the drifted window had no labels
    assert PLAN in page.locator('[data-chart="drift-p"]').inner_text()  # legend, as text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "deployments_drift_page.png"), full_page=True)
    results = page.get_by_role("table", name="Monitor results, newest first").locator(
        "tbody tr")
    assert results.count() == 2
    newest = results.nth(0).inner_text()
    assert "drift" in newest and "age" in newest and f"{PLAN}" in newest
    results.nth(0).get_by_role("link", name="result").click()
    page.wait_for_url("**/ui/deployments/churn/monitor/*")
    drift = page.get_by_role("table", name="Drift tests per column")
    assert drift.get_by_role("cell", name=PLAN, exact=True).count() == 1  # column name
    hostile = page.get_by_role("region", name=f"Distribution of {PLAN}")
    assert hostile.get_by_role("cell", name=HOSTILE, exact=True).count() == 1  # category
    assert "drifted" in drift.locator("tr.flag").first.inner_text()
    assert "{{7*7}}" in page.locator("main").inner_text()
    assert not dialogs


def test_stored_reports_are_served_without_scripts(seeded: Workspace) -> None:
    found = seeded.stores.monitor.history("churn")
    with TestClient(dashboard_app(seeded, ServerOptions(auth=False))) as client:
        answer = client.get(f"/ui/deployments/churn/monitor/{found[0].result_id}/report.html")
        assert answer.status_code == 200 and answer.text.startswith("<!DOCTYPE html>")
        policy = answer.headers["content-security-policy"]
        assert "script-src 'none'" in policy and "sandbox" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        # A report path outside the deployment's reports folder is never read.
        elsewhere = Path(str(seeded.settings.home)).parent / "elsewhere.html"
        elsewhere.write_text("<!DOCTYPE html><p>not a report</p>")
        seeded.stores.monitor.set_report_path(found[0].result_id, str(elsewhere))
        try:
            moved = client.get(f"/ui/deployments/churn/monitor/{found[0].result_id}/report.html")
            assert moved.status_code == 404 and "reports folder" in moved.text
            result = client.get(f"/ui/deployments/churn/monitor/{found[0].result_id}")
            assert result.status_code == 200 and "not in this server" in result.text
        finally:
            seeded.stores.monitor.set_report_path(found[0].result_id, found[0].report_path or "")
        other = client.get(f"/ui/deployments/secret/monitor/{found[0].result_id}")
        assert other.status_code == 404  # a result is found under its own deployment only
        assert client.get("/ui/deployments/churn?window=3y").status_code == 422
        assert client.get("/ui/deployments/nope").status_code == 404
        page = client.get("/ui/deployments/churn/drift")
        assert HOSTILE not in page.text and "&lt;script&gt;" in page.text
        overview = client.get("/ui/deployments/churn")
        assert HOSTILE not in overview.text and len(overview.text) < 60_000  # no blow-up


def test_a_grant_of_none_hides_a_deployment(seeded: Workspace, url: str) -> None:
    token = issue_token(seeded, "rui", "reader")
    seeded.stores.auth.grant("rui", "deployment", "secret", "none")
    with TestClient(dashboard_app(seeded, ServerOptions(auth=True))) as client:
        assert client.get("/ui/deployments", follow_redirects=False).status_code == 303
        client.cookies.set(SESSION_COOKIE, token)
        try:
            listing = client.get("/ui/deployments")
            assert 'href="/ui/deployments/churn"' in listing.text
            assert 'href="/ui/deployments/secret"' not in listing.text
            assert client.get("/ui/deployments/secret").status_code == 403
            assert client.get("/ui/deployments/secret/drift").status_code == 403
            assert client.get("/ui/deployments/churn/drift").status_code == 200
        finally:
            client.cookies.clear()


def test_empty_states_say_how_data_gets_there(tmp_path: Path, watched: Watched) -> None:
    page = watched.page
    workspace = local_workspace(tmp_path)
    with dashboard(workspace) as base:
        page.goto(f"{base}/ui/deployments")
        assert "ratchet serve" in page.locator(".empty").inner_text()
        registry = RegistryClient(workspace)
        X, y = churn(200, seed=3)
        with registry.tracking.start_run(experiment="e") as run:
            registry.log_model(run.id, _model().fit(X, y), name="m", input_example=X)
        DeploymentClient(workspace).create("quiet", TrafficPlan.single("m/1"))
        page.goto(f"{base}/ui/deployments/quiet")
        assert "No predictions logged in the last 1h" in page.locator(".empty").inner_text()
        page.goto(f"{base}/ui/deployments/quiet/drift")
        assert "No monitor results yet" in page.locator(".empty").inner_text()


# ----------------------------------------------------------------- the pure parts
def test_traffic_buckets_follow_the_data_span() -> None:
    assert bucket_ms(10_000) == 1_000 and bucket_ms(3_000_000) == 60_000
    assert bucket_ms(30 * 86_400_000) == 86_400_000
    stamps = pd.to_datetime([0, 500, 1_500, 1_600, 2_500], unit="ms", utc=True)
    frame = pd.DataFrame({"timestamp": stamps, "request_id": ["a", "a", "b", "c", "d"],
                          "variant": ["primary", "primary", "canary", "primary", "primary"],
                          "status": ["ok", "ok", "error", "ok", "ok"],
                          "latency_ms": [10.0, 10.0, 30.0, 20.0, 40.0]})
    seen = traffic(frame)
    assert seen is not None and seen["x"] == [0.0, 1.0, 2.0]
    assert {s["label"]: s["values"] for s in seen["traffic"]} == {
        "canary": [0, 1, 0], "primary": [2, 1, 1]}
    assert seen["errors"][0]["values"] == [0.0, 50.0, 0.0]
    assert seen["latency"][0]["values"] == [10.0, 25.0, 40.0]
    assert traffic(frame.iloc[0:0]) is None
    frame = frame.assign(model_name="m", model_version=1, error=[None, None, "boom", None, None])
    assert [e["error"] for e in recent_errors(frame)] == ["boom"]
    assert recent_errors(frame.iloc[0:0]) == []
    assert monitor_charts([]) == []
