"""The CLI, ``ratchet serve`` and the controller in remote mode: every command against a
live ``ratchet server`` through ``RATCHET_TRACKING_URI`` and a token, nothing local but
the prediction log of the serving host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import ratchet
from tests.cli.conftest import Invoke
from tests.cli.test_ct_cli import _champion
from tests.team_server import ADMIN, TeamServer, free_port


@pytest.fixture
def remote(team_server: TeamServer, project: Path, monkeypatch: pytest.MonkeyPatch
           ) -> TeamServer:
    team_server.reset()
    for key, value in team_server.client_env().items():
        monkeypatch.setenv(key, value)
    return team_server


def test_ct_commands_through_the_server_record_the_real_actor(
        cli: Invoke, project: Path, remote: TeamServer) -> None:
    _champion(project)
    done = cli("ct", "tick", "policy.yaml", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["state"] == "watching"
    done = cli("ct", "retrain", "rain", "--actor", "ana", "--reason", "new sensors")
    assert done.exit_code == 0, done.output
    status = json.loads(cli("ct", "status", "rain", "--json").stdout)
    assert [(r["kind"], r["actor"]) for r in status["requests"]] == [
        ("retrain", f"{ADMIN} (ana)")]
    models = json.loads(cli("models", "list", "--json").stdout)
    assert [m["name"] for m in models] == ["rain"]
    # Nothing of the metadata is local: the project has no database of its own.
    assert not (project / ".ratchet" / "ratchet.db").exists()


def test_a_wrong_token_is_one_line_not_a_traceback(cli: Invoke, project: Path,
                                                   remote: TeamServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_TRACKING_TOKEN", "rt_nope_nope")
    done = cli("models", "list", catch_exceptions=True)
    assert done.exit_code == 1
    assert "tokens create" in done.output and "Traceback" not in done.output


def test_serve_in_remote_mode_predicts_and_sends_feedback_to_the_server(
        project: Path, remote: TeamServer) -> None:
    _champion(project)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    log = project / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from ratchet.cli.main import main; main()", "serve",
             "rain@champion", "--port", str(port), "--log-flush", "0"],
            cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        answer = httpx.post(f"{url}/predict", json={"inputs": [{"x": 1.5}, {"x": -2.0}]},
                            timeout=30)
        assert answer.status_code == 200, answer.text
        request_id = answer.headers["x-request-id"]
        fed = httpx.post(f"{url}/feedback", json={"request_id": request_id, "row": 0,
                                                  "value": True}, timeout=30)
        assert fed.status_code == 200, fed.text
    finally:
        process.terminate()
        process.wait(timeout=30)
    # The deployment and its feedback are on the server, seen by any client.
    stores = ratchet.workspace.current().stores
    assert stores.deployments.get("rain").name == "rain"
    assert [(f.request_id, f.row) for f in stores.deployments.feedback("rain")] == [
        (request_id, 0)]
