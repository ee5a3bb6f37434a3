"""``ratchet.serving.serve``, the library function ``ratchet serve`` calls: it checks what
to serve before the port is bound, announces the plan, and runs the worker(s) from the
worker spec it writes (a real process, stopped by its process group)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from ratchet.config import Settings
from ratchet.errors import InvalidInput, NotFound
from ratchet.registry import RegistryClient
from ratchet.serving import ServingConfig, serve
from ratchet.serving.access import AccessPolicy
from ratchet.workspace import Workspace
from tests.serving.conftest import ROW, _free_port, wait_until


def test_refusals_come_before_the_plan_is_announced(churn_registry: RegistryClient,
                                                    serving_settings: Settings) -> None:
    announced: list[object] = []
    workspace = Workspace(serving_settings)
    with pytest.raises(NotFound, match="aliases"):
        serve("churn@nope", workspace=workspace, announce=announced.append)
    with pytest.raises(InvalidInput, match="not both"):
        serve("churn@champion", bundle="dist/churn", workspace=workspace,
              announce=announced.append)
    with pytest.raises(InvalidInput, match="a deployment or a bundle"):
        serve(workspace=workspace, announce=announced.append)
    with pytest.raises(InvalidInput, match="token"):
        serve("churn@champion", workspace=workspace, announce=announced.append,
              config=ServingConfig(access=AccessPolicy(token_file=str(
                  serving_settings.home / "missing-tokens"))))
    assert announced == []


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_runs_what_it_announced(churn_registry: RegistryClient,
                                      serving_settings: Settings, tmp_path: Path,
                                      workers: int) -> None:
    port = _free_port()
    script = textwrap.dedent(f"""
        from ratchet.serving import ServingConfig, serve
        from ratchet.serving.access import AccessPolicy

        def announce(plan):
            print("PLAN", plan.what, plan.url, plan.workers, ",".join(plan.allowed_hosts),
                  plan.open_to_others, flush=True)

        serve("churn@champion", port={port}, workers={workers}, announce=announce,
              config=ServingConfig(access=AccessPolicy(allowed_hosts=("api.example",))))
    """)
    env = {**os.environ, "RATCHET_HOME": str(serving_settings.home),
           "RATCHET_DB": serving_settings.db_url,
           "RATCHET_ARTIFACTS": serving_settings.artifacts_uri}
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=90, what="server ready")
        answer = httpx.post(f"{url}/predict", json={"inputs": [ROW]}, timeout=30)
        assert answer.status_code == 200 and answer.json()["model_name"] == "churn"
        # The allowlist given plus the loopback names: another Host is refused (421).
        assert httpx.get(f"{url}/v2", headers={"Host": "api.example"}).status_code == 200
        assert httpx.get(f"{url}/v2", headers={"Host": "evil.example"}).status_code == 421
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    first = log_path.read_text().splitlines()[0]
    assert first == (f"PLAN deployment churn: churn@champion {url} {workers} "
                     "localhost,127.0.0.1,[::1],api.example False"), first
