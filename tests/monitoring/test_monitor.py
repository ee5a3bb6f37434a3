"""A monitor end to end: a served model's traffic (through the real app), feedback, and
``run_monitor`` against the training data found through lineage; stored, reported, alerted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.data.catalog import DataClient
from ratchet.errors import InvalidInput, NotFound
from ratchet.monitoring.monitor import list_monitor_results, run_monitor
from ratchet.monitoring.performance import parse_window
from ratchet.registry import RegistryClient
from ratchet.serving import create_app
from ratchet.serving.app import ServingConfig
from ratchet.serving.request_validation import ValidationPolicy
from ratchet.workspace import Workspace
from tests.serving.conftest import churn_frame, wait_until


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    root = tmp_path / "home"
    return Settings(home=root, db_url=f"sqlite:///{root / 'ratchet.db'}",
                    artifacts_uri=str(root / "artifacts"))


@pytest.fixture
def registry(home: Settings) -> RegistryClient:
    """churn v1, trained inside a run that logged its training data (role train)."""
    from tests.serving.conftest import _pipeline

    registry = RegistryClient(Workspace(home))
    X, y = churn_frame(3_000)
    with registry.tracking.start_run(experiment="churn") as run:
        DataClient(registry.workspace).log(X.assign(label=y), name="churn-train", role="train")
        model = _pipeline(1.0, "ignore").fit(X, y)
        registry.log_model(run.id, model, name="churn", input_example=X)
    registry.set_alias("churn", "champion", 1)
    return registry


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("RATCHET_ALLOW_PRIVATE_WEBHOOKS", "1")  # the hook is on 127.0.0.1
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _serve(home: Settings, rows: pd.DataFrame, labels: pd.Series | None) -> None:
    """Send ``rows`` through the real app in batches of 50; feedback for every row."""
    config = ServingConfig(policy=ValidationPolicy(unknown_category="flag",
                                                   out_of_range="flag"),
                           poll_interval_s=0.1, log_flush_interval_s=0.1)
    app = create_app("churn@champion", workspace=Workspace(home), config=config)
    with TestClient(app) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200)
        for start in range(0, len(rows), 50):
            part = rows.iloc[start:start + 50]
            answer = client.post("/predict", json={"inputs": part.to_dict(orient="records")})
            assert answer.status_code == 200, answer.text
            if labels is not None:
                rid = answer.json()["request_id"]
                items = [{"request_id": rid, "row": i, "value": int(v)}
                         for i, v in enumerate(labels.iloc[start:start + 50])]
                assert client.post("/feedback", json={"feedback": items}).status_code == 200


def test_quiet_traffic_then_drift_changes_the_verdict_and_alerts(
        home: Settings, registry: RegistryClient, webhook: str, tmp_path: Path) -> None:
    same, same_y = churn_frame(600, seed=11)
    _serve(home, same, same_y)
    first = run_monitor("churn", window="1h", workspace=Workspace(home), webhook=webhook)
    assert first.verdict == "ok", first.result["drift"]
    assert first.result["rows"] == 600 and first.previous_verdict is None
    assert first.result["reference"] == {"dataset": "churn-train", "version": 1, "rows": 3_000}
    performance = first.result["performance"]
    assert performance["labeled"] == 600 and performance["metrics"]["accuracy"] > 0.6
    assert performance["estimated"]["accuracy"] > 0.55
    assert first.report_html is not None and first.report_html.exists()
    assert json.loads(first.report_json.read_text())["verdict"] == "ok"  # type: ignore[union-attr]
    assert _Hook.received == []  # nothing changed yet

    # The world moves: older customers, a new plan; labels stop arriving.
    moved, _ = churn_frame(600, seed=12)
    moved = moved.assign(age=moved.age + 25, plan=np.where(moved.index % 3 == 0, "edu",
                                                            moved.plan))
    _serve(home, moved, None)
    second = run_monitor("churn", window="1h", workspace=Workspace(home), webhook=webhook)
    assert second.verdict == "drift" and second.changed and second.previous_verdict == "ok"
    stored = list_monitor_results("churn", workspace=Workspace(home))
    assert [r.verdict for r in stored] == ["ok", "drift"]
    assert [r.verdict for r in list_monitor_results("churn", limit=1,
                                                    workspace=Workspace(home))] == ["drift"]
    with pytest.raises(InvalidInput, match="limit must be"):
        list_monitor_results("churn", limit=0, workspace=Workspace(home))
    drift = second.result["drift"]
    assert "age" in drift["drifted_columns"] and "plan" in drift["drifted_columns"]
    assert drift["multivariate"]["drifted"]
    quality = {c["column"]: c for c in second.result["quality"]["columns"]}
    assert quality["plan"]["unknown_categories"] == 200
    assert quality["age"]["out_of_range"] > 0
    assert set(second.result["distributions"]) == {"age", "income", "plan"}
    assert len(_Hook.received) == 1
    alert = _Hook.received[0]
    assert (alert["deployment"], alert["previous"], alert["verdict"]) == ("churn", "ok", "drift")
    assert alert["report"].startswith("file://") and alert["report"].endswith(".html")

    stored = registry.tracking.workspace.stores.monitor.history("churn")
    assert [r.verdict for r in stored] == ["ok", "drift"]
    assert stored[-1].report_path == str(second.report_html)
    html = second.report_html.read_text()  # type: ignore[union-attr]
    assert "churn" in html and "age" in html


def test_windows_without_traffic_and_bad_input(home: Settings, registry: RegistryClient,
                                               tmp_path: Path) -> None:
    from ratchet.serving.deployments import DeploymentClient

    DeploymentClient(registry.workspace).create("churn", "churn@champion")
    quiet = run_monitor("churn", window="15min", workspace=Workspace(home),
                        end=datetime.now(UTC) - timedelta(days=3), report_dir=tmp_path / "r")
    assert quiet.verdict == "no data" and quiet.result["rows"] == 0
    assert (tmp_path / "r").is_dir() and quiet.report_html is not None
    with pytest.raises(InvalidInput, match="window: 'soon' is not a duration"):
        parse_window("soon")
    with pytest.raises(InvalidInput, match="window"):
        parse_window("-1h")
    assert parse_window("90min") == timedelta(minutes=90)
    with pytest.raises(NotFound):
        run_monitor("nope", workspace=Workspace(home))


def test_the_server_exports_the_newest_monitor_result(home: Settings,
                                                      registry: RegistryClient) -> None:
    import subprocess

    moved, _ = churn_frame(300, seed=5)
    _serve(home, moved.assign(age=moved.age + 30), None)
    result = run_monitor("churn", window="1h", workspace=Workspace(home))
    assert result.verdict == "drift"
    app = create_app("churn@champion", workspace=Workspace(home), config=ServingConfig(poll_interval_s=0.1))
    with TestClient(app) as client:
        def exported() -> str | None:
            text = client.get("/metrics").text
            return text if 'ratchet_drift_detected{deployment="churn"} 1.0' in text else None

        text = wait_until(exported, what="monitor gauges")
    assert 'ratchet_drift_score{column="age",deployment="churn",test="wasserstein"}' in text
    assert 'ratchet_model_performance{deployment="churn",kind="estimated",metric="accuracy"}' \
        in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
