"""A server that cannot load its model says so: /health/live answers at once, a load that
can never succeed (no signature, untrusted code) is reported by readiness and ends
``ratchet serve`` with one ``error:`` line; ``--trust`` serves a cloudpickle model."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.serving.app import ServingConfig, create_app
from ratchet.serving.deployments import DeploymentClient
from ratchet.workspace import Workspace
from tests.serving.conftest import (
    ROW,
    _free_port,
    _pipeline,
    churn_frame,
    running_server,
    wait_until,
)

# A generous bound for the first load: long enough that the old behaviour (wait for it
# before binding the port, then 503 forever) shows up as a timeout, not a flaky pass.
CONFIG = ServingConfig(poll_interval_s=0.05, log_flush_interval_s=0.1, startup_wait_s=60)


@pytest.fixture
def registry(churn_registry: RegistryClient) -> RegistryClient:
    """churn v1-v3, plus churnpy v1 (the same pipeline saved with cloudpickle: needs trust)
    and nosig v1 (logged without an input example: no signature, never servable)."""
    X, y = churn_frame()
    model = _pipeline(1.0, "ignore").fit(X, y)
    with churn_registry.tracking.start_run(experiment="churn") as run:
        churn_registry.log_model(run.id, model, name="churnpy", input_example=X,
                                 flavor="python")
        churn_registry.log_model(run.id, model, name="nosig")
    return churn_registry


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "RATCHET_HOME": str(settings.home), "RATCHET_DB": settings.db_url,
            "RATCHET_ARTIFACTS": settings.artifacts_uri}


@pytest.fixture
def serve_process(serving_settings: Settings, tmp_path: Path) -> Iterator[object]:
    """Start ``ratchet serve ARGS`` on a free port; every process is stopped by its group."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "ratchet.cli.main", "serve", *args, "--port", str(port)],
            env=_env(serving_settings), cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        started.append(process)
        return process, f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


# ---------------------------------------------------------------------- in-process app
def test_a_load_that_can_never_succeed_is_reported_at_once(
        registry: RegistryClient, serving_settings: Settings) -> None:
    app = create_app("nosig/1", workspace=Workspace(serving_settings), config=CONFIG)
    with TestClient(app) as client:
        assert client.get("/health/live").json() == {"live": True}
        ready = wait_until(lambda: (r := client.get("/health/ready")).json().get("error") and r,
                           what="a load error")
        assert ready.status_code == 503
        assert ready.json()["retrying"] is False
        assert "no input signature" in ready.json()["error"]
        # Not "retry shortly" after the startup wait: the reason, at once.
        r = client.post("/predict", json={"inputs": [ROW]})
        assert r.status_code == 503
        assert "cannot be loaded" in r.json()["error"]
        assert "no input signature" in r.json()["error"]
        # The OIP routes say the same (not "no model named nosig").
        for path in ("/v2/models/nosig", "/v2/models/nosig/ready"):
            r = client.get(path)
            assert r.status_code == 503 and r.json()["retrying"] is False, r.text
        r = client.post("/v2/models/nosig/infer", json={"inputs": [
            {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
        assert r.status_code == 503 and "no input signature" in r.json()["error"], r.text


def test_untrusted_model_needs_trust(registry: RegistryClient,
                                     serving_settings: Settings) -> None:
    refused = create_app("churnpy/1", workspace=Workspace(serving_settings), config=CONFIG)
    with TestClient(refused) as client:
        body = wait_until(lambda: client.get("/health/ready").json().get("error") and
                          client.get("/health/ready").json(), what="a load error")
        assert body["retrying"] is False and body["error"].startswith("Untrusted")
    trusted = create_app("churnpy/1", workspace=Workspace(serving_settings), config=CONFIG, trust=True)
    with TestClient(trusted) as client:
        r = client.post("/predict", json={"inputs": [ROW]})
        assert r.status_code == 200, r.text
        assert r.json()["model_name"] == "churnpy"


def test_a_request_during_the_first_load_waits_for_it(
        registry: RegistryClient, serving_settings: Settings) -> None:
    app = create_app("churn/1", workspace=Workspace(serving_settings), config=CONFIG)
    with TestClient(app) as client:  # no wait for readiness: the request waits instead
        r = client.post("/predict", json={"inputs": [ROW]})
        assert r.status_code == 200, r.text


# ---------------------------------------------------------------------- ratchet serve
def test_serve_exits_with_the_reason_when_the_model_can_never_load(
        registry: RegistryClient, serve_process: object) -> None:
    process, _ = serve_process("nosig/1")  # type: ignore[operator]
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("ratchet serve kept running with a model that can never load")
    assert process.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no input signature" in errors[0], stderr
    assert "Traceback" not in stderr


def test_serve_refuses_an_untrusted_model_before_binding(
        registry: RegistryClient, serve_process: object) -> None:
    process, _ = serve_process("churnpy/1")  # type: ignore[operator]
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("ratchet serve kept running with a model it may not load")
    assert process.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--trust" in errors[0] and "python-flavor" in errors[0]


def test_serve_with_trust_serves_a_cloudpickle_model(
        registry: RegistryClient, serving_settings: Settings, tmp_path: Path) -> None:
    with running_server(serving_settings, tmp_path, "churnpy/1", "--trust") as url:
        r = httpx.post(f"{url}/predict", json={"inputs": [ROW]})
        assert r.status_code == 200 and r.json()["model_name"] == "churnpy"


def test_live_answers_while_the_model_is_not_loadable_yet(
        registry: RegistryClient, serving_settings: Settings, serve_process: object) -> None:
    # Files gone: a transient failure (they may come back), retried on every poll.
    DeploymentClient(registry.workspace).create("ghost", "churn/3")
    shutil.rmtree(Path(serving_settings.artifacts_uri) / "blobs")
    shutil.rmtree(serving_settings.home / "cache", ignore_errors=True)
    process, url = serve_process("-d", "ghost")  # type: ignore[operator]

    def live() -> bool:
        assert process.poll() is None, process.communicate()
        r = _get(f"{url}/health/live")
        return r is not None and r.status_code == 200

    wait_until(live, timeout=60, what="/health/live")
    ready = wait_until(lambda: (r := _get(f"{url}/health/ready")) is not None
                       and r.json().get("error") and r, timeout=60, what="a load error")
    assert ready.status_code == 503 and ready.json()["retrying"] is True
    assert process.poll() is None  # transient: it keeps trying


def test_workers_report_a_permanent_failure_in_readiness(
        registry: RegistryClient, serve_process: object) -> None:
    """With --workers N each worker keeps running (the supervisor would restart one that
    exited) and readiness says why: documented in docs/serving.md."""
    process, url = serve_process("nosig/1", "--workers", "2")  # type: ignore[operator]

    def reported() -> httpx.Response | None:
        assert process.poll() is None, process.communicate()
        r = _get(f"{url}/health/ready")
        return r if r is not None and r.json().get("error") else None

    ready = wait_until(reported, timeout=90, what="a load error")
    assert ready.status_code == 503 and ready.json()["retrying"] is False
    assert "no input signature" in ready.json()["error"]
    assert _get(f"{url}/health/live").status_code == 200  # type: ignore[union-attr]
