"""Webhooks go through the outbound guard: a hook on a loopback, private or link-local
address is refused unless allowed explicitly (``RATCHET_ALLOW_PRIVATE_WEBHOOKS=1`` or
``allow_private=True``); a written address is refused up front, a name when the connection
is made. Real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from ratchet.config import Settings
from ratchet.errors import ConfigError, InvalidInput
from ratchet.monitoring.monitor import run_monitor
from ratchet.monitoring.webhook import (
    ALLOW_PRIVATE_ENV,
    post_json,
    private_webhooks_allowed,
    validate_webhook,
)
from ratchet.workspace import Workspace

TOKEN = "T000/B000/s3cr3tT0ken"


@pytest.fixture(autouse=True)
def _no_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_PRIVATE_ENV, raising=False)


@pytest.fixture
def hook() -> Iterator[tuple[int, list[bytes]]]:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], received
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.7/admin", "http://[::1]/x", "http://[fe80::1]/x", "http://2130706433/",
    "http://0x7f.1/", "http://[::ffff:192.168.0.1]/",
])
def test_written_private_addresses_are_refused_up_front(url: str) -> None:
    with pytest.raises(InvalidInput, match=f"--webhook .*public addresses only.*"
                                           f"{ALLOW_PRIVATE_ENV}=1") as exc:
        validate_webhook(f"{url.rstrip('/')}/{TOKEN}", "--webhook")
    assert TOKEN not in str(exc.value) and "\n" not in str(exc.value)
    assert validate_webhook(url, allow_private=True) == url


def test_the_opt_in_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not private_webhooks_allowed()
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    assert private_webhooks_allowed()
    assert validate_webhook("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "0")
    assert not private_webhooks_allowed()
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "maybe")
    with pytest.raises(ConfigError, match=f"{ALLOW_PRIVATE_ENV}='maybe'"):
        private_webhooks_allowed()


def test_a_name_resolving_to_loopback_is_refused_when_posting(
        hook: tuple[int, list[bytes]], caplog: pytest.LogCaptureFixture) -> None:
    port, received = hook
    url = f"http://localhost:{port}/{TOKEN}"
    assert validate_webhook(url) == url  # a name is not resolved up front ...
    with caplog.at_level(logging.WARNING):
        outcome = post_json(url, {"verdict": "drift"})
    # ... but is when the connection is made: nothing was sent
    assert received == [] and not outcome.delivered and outcome.status is None
    assert outcome.error is not None
    assert "localhost resolves to 127.0.0.1, a loopback address" in outcome.error
    assert ALLOW_PRIVATE_ENV in outcome.error
    assert TOKEN not in caplog.text and TOKEN not in outcome.error
    assert f"http://localhost:{port}/***" in caplog.text


def test_private_hooks_are_delivered_when_allowed(hook: tuple[int, list[bytes]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    port, received = hook
    outcome = post_json(f"http://localhost:{port}/{TOKEN}", {"n": 1}, allow_private=True)
    assert outcome.delivered and outcome.status == 204 and received == [b'{"n": 1}']
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    assert post_json(f"http://127.0.0.1:{port}/{TOKEN}", {"n": 2}).delivered
    assert received[-1] == b'{"n": 2}'


def test_post_json_refuses_a_written_private_address_before_sending(
        hook: tuple[int, list[bytes]]) -> None:
    port, received = hook
    with pytest.raises(InvalidInput, match="loopback"):
        post_json(f"http://127.0.0.1:{port}/{TOKEN}", {"n": 1})
    assert received == []


def test_run_monitor_refuses_a_private_webhook_before_any_work(tmp_path: Path) -> None:
    home = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'home' / 'r.db'}",
                    artifacts_uri=str(tmp_path / "home" / "artifacts"))
    with pytest.raises(InvalidInput, match=r"--webhook .*cloud metadata"):
        run_monitor("churn", workspace=Workspace(home),
                    webhook="http://169.254.169.254/latest/meta-data/")
    assert not (tmp_path / "home").exists()


def test_cli_private_webhook_is_one_line(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ratchet.cli.main import app
    from tests.cli.conftest import assert_user_error

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / ".ratchet"))
    result = CliRunner().invoke(app, ["monitor", "run", "churn", "--webhook",
                                      f"http://10.0.0.7/{TOKEN}"])
    assert_user_error(result, "--webhook", ALLOW_PRIVATE_ENV)
    assert TOKEN not in result.output
