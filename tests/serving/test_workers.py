"""``ratchet.serving.serve``, the library function ``ratchet serve`` calls: it checks what
to serve before the port is bound, announces the plan, and runs the worker(s) from the
worker spec it writes (a real process, stopped by its process group)."""

from __future__ import annotations

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
from tests.serving.conftest import ROW, _free_port, running_process


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
    command = [sys.executable, "-c", script]
    with running_process(serving_settings, tmp_path, command, port) as (url, log_path):
        answer = httpx.post(f"{url}/predict", json={"inputs": [ROW]}, timeout=30)
        assert answer.status_code == 200 and answer.json()["model_name"] == "churn"
        # The allowlist given plus the loopback names: another Host is refused (421).
        assert httpx.get(f"{url}/v2", headers={"Host": "api.example"}).status_code == 200
        assert httpx.get(f"{url}/v2", headers={"Host": "evil.example"}).status_code == 421
    first = log_path.read_text().splitlines()[0]
    assert first == (f"PLAN deployment churn: churn@champion {url} {workers} "
                     "localhost,127.0.0.1,[::1],api.example False"), first
