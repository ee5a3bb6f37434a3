"""The prediction log on S3 (moto_server over HTTP): a served deployment writes it, and
``predictions()``/``LogReader`` read it back through DuckDB with the s3fs filesystem
registered (no DuckDB extension is downloaded)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.serving import create_app
from ratchet.serving.app import ServingConfig
from ratchet.serving.prediction_query import LogReader, predictions
from ratchet.workspace import Workspace
from tests import s3_server as s3_fixtures
from tests.s3_server import S3Bucket
from tests.serving.conftest import ROW, register_churn, wait_until

s3, s3_server = s3_fixtures.s3, s3_fixtures.s3_server  # the fixtures this module uses

FAST = ServingConfig(poll_interval_s=0.05, log_flush_interval_s=0.1, startup_wait_s=10)
HOUR = 3_600_000


@pytest.fixture
def s3_settings(s3: S3Bucket, tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    return Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                    artifacts_uri=s3.url("team/ratchet"))


@pytest.fixture
def registry(s3_settings: Settings) -> RegistryClient:
    return register_churn(s3_settings)


def _serve(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app("churn@champion", workspace=Workspace(settings), config=FAST)) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        yield client


def test_served_predictions_are_logged_to_s3_and_read_back(
    registry: RegistryClient, s3_settings: Settings, s3: S3Bucket
) -> None:
    for client in _serve(s3_settings):
        ids = [client.post("/predict", json={"inputs": [ROW, {**ROW, "age": 20}]}).json()[
            "request_id"] for _ in range(3)]
        assert client.post("/feedback", json={"request_id": ids[1], "value": 0}).status_code \
            == 200
    # Shutdown flushed the log: Parquet objects under predictions/, nothing else.
    logged_keys = s3.fs().find(f"{s3.name}/team/ratchet/predictions")
    assert logged_keys and all(k.endswith(".parquet") for k in logged_keys), logged_keys
    assert all("/deployment=churn/hour=" in k for k in logged_keys)

    logged = predictions("churn", workspace=Workspace(s3_settings), with_feedback=True)
    assert len(logged) == 6 and list(logged.request_id.unique()) == ids
    assert {"input.age", "input.plan", "output.prediction"} <= set(logged.columns)
    labelled = logged.dropna(subset=["feedback"])
    assert list(zip(labelled.request_id, labelled.row, strict=True)) == [(ids[1], 0)]
    # A window that excludes everything is empty, not an error.
    assert predictions("churn", until=0, workspace=Workspace(s3_settings)).empty


_WRITE_ONE = """
import sys, time
from ratchet.serving.prediction_log import LoggedRequest, PredictionLog
with PredictionLog(sys.argv[1], flush_interval_s=3600) as log:
    assert log.record(LoggedRequest(
        request_id=sys.argv[2], timestamp_ms=time.time_ns() // 1_000_000, deployment="churn",
        model_name="churn", model_version=1, variant="primary", latency_ms=1.0,
        inputs={"age": [40]}, outputs={"prediction": [1]}))
"""


def _log_from_another_process(root: str, request_id: str) -> None:
    subprocess.run([sys.executable, "-c", _WRITE_ONE, root, request_id], check=True,
                   timeout=60)


def test_readers_see_what_other_processes_log_after_their_first_read(
    s3_settings: Settings,
) -> None:
    """A monitor or controller reads the log again and again while servers keep writing it:
    each read must list S3 afresh (s3fs would otherwise answer from its listing cache)."""
    root = s3_settings.artifacts_uri
    since = time.time_ns() // 1_000_000 - 60_000
    _log_from_another_process(root, "first")
    assert predictions("churn", since=since, workspace=Workspace(s3_settings)).request_id.tolist() == [
        "first"]
    reader = LogReader("churn", horizon_ms=2 * HOUR, workspace=Workspace(s3_settings))
    assert reader.read(since, with_feedback=False).request_id.tolist() == ["first"]

    _log_from_another_process(root, "second")
    assert predictions("churn", since=since, workspace=Workspace(s3_settings)).request_id.tolist() == [
        "first", "second"]
    assert reader.read(since, with_feedback=False).request_id.tolist() == ["first", "second"]
