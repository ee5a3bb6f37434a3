"""The access guard on its own: Host names, tokens from files and the environment, the cap
on requests in flight; and inside the app (in-process)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.errors import InvalidInput
from ratchet.registry import RegistryClient
from ratchet.serving import create_app
from ratchet.serving.access import (
    TOKEN_ENV,
    AccessGuard,
    AccessPolicy,
    TokenSet,
    default_allowed_hosts,
    normalize_host,
)
from ratchet.serving.app import ServingConfig
from ratchet.workspace import Workspace
from tests.serving.conftest import ROW, wait_until


@pytest.mark.parametrize("raw, host", [
    ("LocalHost:8000", "localhost"), ("127.0.0.1", "127.0.0.1"), ("[::1]:8000", "[::1]"),
    ("::1", "[::1]"), ("api.example.com", "api.example.com")])
def test_host_names_are_compared_without_port_or_case(raw: str, host: str) -> None:
    assert normalize_host(raw) == host


def test_default_hosts_add_the_bound_address_unless_it_is_a_wildcard() -> None:
    assert default_allowed_hosts("0.0.0.0") == ("localhost", "127.0.0.1", "[::1]")
    assert default_allowed_hosts("10.1.2.3", ["Churn.Example.com"]) == (
        "localhost", "127.0.0.1", "[::1]", "10.1.2.3", "churn.example.com")


def test_token_file_is_reread_when_rotated(tmp_path: Path, monkeypatch: Any) -> None:
    import ratchet.serving.access as access

    monkeypatch.setattr(access, "TOKEN_RECHECK_S", 0.0)
    path = tmp_path / "tokens"
    path.write_text("old-token\n")
    tokens = TokenSet(str(path))
    assert tokens.accepts(b"Bearer old-token") and tokens.accepts(b"bearer old-token")
    assert not tokens.accepts(b"Bearer old") and not tokens.accepts(b"old-token")
    assert not tokens.accepts(None)
    path.write_text("# rotated\nnew-token\n")
    os.utime(path, ns=(1, 10**18))
    assert tokens.accepts(b"Bearer new-token") and not tokens.accepts(b"Bearer old-token")


def test_tokens_from_the_environment_and_bad_files(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert TokenSet.from_environment(None) is None
    monkeypatch.setenv(TOKEN_ENV, "a-token, b-token")
    tokens = TokenSet.from_environment(None)
    assert tokens is not None and tokens.accepts(b"Bearer b-token")
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n\n")
    with pytest.raises(InvalidInput, match="has no token"):
        TokenSet(str(empty))
    with pytest.raises(InvalidInput, match="cannot read token file"):
        TokenSet(str(tmp_path / "missing"))


def test_requests_past_the_in_flight_limit_get_503() -> None:
    release = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = AccessGuard(slow_app, AccessPolicy(max_in_flight=1), None)

    async def call(path: str) -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "client": ("127.0.0.1", 1),
                 "headers": [(b"host", b"localhost:8000")]}
        await guard(scope, None, send)  # type: ignore[arg-type]
        return int(sent[0]["status"])

    async def run() -> list[int]:
        first = asyncio.ensure_future(call("/v2"))
        await asyncio.sleep(0.01)
        second = await call("/v2")
        live = asyncio.ensure_future(call("/health/live"))  # probes are never refused
        release.set()
        return [await first, second, await live]

    assert asyncio.run(run()) == [200, 503, 200]


@pytest.fixture
def guarded(churn_registry: RegistryClient, serving_settings: Settings,
            tmp_path: Path) -> Iterator[TestClient]:
    path = tmp_path / "tokens"
    path.write_text("t0k3n\n")
    config = ServingConfig(poll_interval_s=0.05, startup_wait_s=10, access=AccessPolicy(
        token_file=str(path), protect="predict"))
    with TestClient(create_app("churn@champion", workspace=Workspace(serving_settings),
                               config=config)) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        yield client


def test_auth_predict_protects_inference_but_not_health(guarded: TestClient) -> None:
    assert guarded.post("/predict", json={"inputs": [ROW]}).status_code == 401
    assert guarded.get("/v2/models/churn").status_code == 401
    ok = guarded.post("/predict", json={"inputs": [ROW]},
                      headers={"Authorization": "Bearer t0k3n"})
    assert ok.status_code == 200, ok.text
    assert guarded.get("/health/live").status_code == 200
    assert guarded.get("/metrics").status_code == 200
