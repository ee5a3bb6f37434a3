"""A real `ratchet serve` process under 32 concurrent connections: an alias move and a
rollback lose zero requests and return zero errors."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.serving.deployments import DeploymentClient
from tests.serving.conftest import ROW, running_server

CONNECTIONS = 32


@pytest.fixture
def server(churn_registry: RegistryClient, serving_settings: Settings,
           tmp_path: Path) -> Iterator[str]:
    with running_server(serving_settings, tmp_path, "churn@champion",
                        "--poll-interval", "0.1") as url:
        yield url


async def _load(url: str, stop: asyncio.Event, results: list[tuple[int, int | None]]) -> None:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        async def worker() -> None:
            while not stop.is_set():
                try:
                    r = await client.post("/predict", json={"inputs": [ROW]})
                    version = r.json().get("model_version") if r.status_code == 200 else None
                    results.append((r.status_code, version))
                except httpx.HTTPError as exc:  # a dropped connection counts as lost
                    results.append((-1, None))
                    print("lost:", repr(exc))

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))


def test_alias_move_and_rollback_under_load_lose_nothing(
        server: str, churn_registry: RegistryClient) -> None:
    results: list[tuple[int, int | None]] = []

    def served_versions_since(start: int) -> set[int | None]:
        return {v for _, v in results[start:]}

    async def scenario() -> None:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(server, stop, results))
        loop = asyncio.get_running_loop()

        async def until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + 30
            while not predicate():
                assert time.monotonic() < deadline, f"timed out: {what}"
                await asyncio.sleep(0.05)

        await until(lambda: len(results) > 200, "warm traffic")
        mark = len(results)
        await loop.run_in_executor(None, churn_registry.set_alias, "churn", "champion", 2)
        await until(lambda: served_versions_since(len(results) - 50) == {2}
                    if len(results) - mark > 50 else False, "swap to v2")
        await asyncio.sleep(1.0)
        await loop.run_in_executor(None, DeploymentClient(churn_registry.workspace).rollback, "churn")
        mark = len(results)
        await until(lambda: served_versions_since(len(results) - 50) == {1}
                    if len(results) - mark > 50 else False, "rollback to v1")
        await asyncio.sleep(1.0)
        stop.set()
        await load

    asyncio.run(scenario())
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: len(results)}, statuses
    versions = [v for _, v in results]
    assert versions[0] == 1 and versions[-1] == 1 and 2 in versions
    assert len(results) > 300


def test_workers_share_one_metrics_endpoint(churn_registry: RegistryClient,
                                            serving_settings: Settings, tmp_path: Path) -> None:
    """With --workers 2 every worker serves and /metrics sums them (and passes promtool)."""
    with (running_server(serving_settings, tmp_path, "churn@champion", "--workers", "2") as url,
          httpx.Client(base_url=url) as client):
        # A worker accepts connections only once its model is loaded: never a 503.
        statuses = Counter(client.post("/predict", json={"inputs": [ROW]}).status_code
                           for _ in range(200))
        served = statuses[200]
        assert statuses == {200: 200}, statuses
        text = client.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("ratchet_requests_total{")
                and 'status="ok"' in x)
    assert float(line.rsplit(" ", 1)[1]) == served
    check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
