"""Webhooks: http(s) only, checked up front, no redirects, the token never logged, and a
failed post never loses the alert. Real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from ratchet.config import Settings
from ratchet.errors import InvalidInput
from ratchet.monitoring.monitor import run_monitor
from ratchet.monitoring.webhook import post_json, validate_webhook
from ratchet.workspace import Workspace

TOKEN = "T000/B000/s3cr3tT0ken"


@pytest.fixture(autouse=True)
def _hooks_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hooks here are servers on 127.0.0.1: allowed explicitly (see
    test_webhook_guard.py for the refusal without this)."""
    monkeypatch.setenv("RATCHET_ALLOW_PRIVATE_WEBHOOKS", "1")


@dataclass
class Server:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


def _start(answer: int, location: str | None = None) -> tuple[Server, HTTPServer]:
    record: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            record.append({"path": self.path, "body": body})
            self.send_response(answer)
            if location is not None:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return Server(f"http://127.0.0.1:{httpd.server_address[1]}", record), httpd


@pytest.fixture
def servers() -> Iterator[list[HTTPServer]]:
    started: list[HTTPServer] = []
    yield started
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def _server(servers: list[HTTPServer], answer: int, location: str | None = None) -> Server:
    server, httpd = _start(answer, location)
    servers.append(httpd)
    return server


@pytest.mark.parametrize("url", [
    "not-a-url", "file:///etc/passwd", "ftp://example.com/x", "http://", "https:///path",
    "javascript:alert(1)", "gopher://127.0.0.1:70/", "", "http://host:port/x",
    "http://exa mple.com/x",
])
def test_only_absolute_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(InvalidInput, match="webhook") as exc:
        validate_webhook(url, "--webhook")
    assert "\n" not in str(exc.value)


def test_valid_urls_pass() -> None:
    assert validate_webhook("https://hooks.example/a/b?x=1") == "https://hooks.example/a/b?x=1"
    assert validate_webhook(" http://127.0.0.1:8080/hook ") == "http://127.0.0.1:8080/hook"


def test_delivered_post(servers: list[HTTPServer]) -> None:
    hook = _server(servers, 204)
    outcome = post_json(f"{hook.url}/{TOKEN}", {"verdict": "drift"})
    assert outcome.delivered and outcome.status == 204
    assert [json.loads(r["body"]) for r in hook.received] == [{"verdict": "drift"}]
    assert TOKEN not in outcome.webhook and outcome.webhook == f"{hook.url}/***"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(servers: list[HTTPServer], status: int,
                                    caplog: pytest.LogCaptureFixture) -> None:
    internal = _server(servers, 200)  # e.g. an admin endpoint on the monitor's host
    hook = _server(servers, status, location=f"{internal.url}/admin/delete")
    with caplog.at_level(logging.WARNING):
        outcome = post_json(f"{hook.url}/{TOKEN}?token=abc", {"verdict": "drift"})
    assert len(hook.received) == 1
    assert internal.received == []  # the redirect target saw nothing
    assert not outcome.delivered and outcome.status == status
    assert "redirects are not followed" in (outcome.error or "")
    assert TOKEN not in caplog.text and "abc" not in caplog.text
    assert f"{hook.url}/***" in caplog.text


def test_unreachable_hook_is_a_warning_without_the_token(
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://user:pw@127.0.0.1:{port}/{TOKEN}"
    with caplog.at_level(logging.WARNING):
        outcome = post_json(url, {"verdict": "drift"}, timeout=2)
    assert not outcome.delivered and outcome.error
    assert TOKEN not in caplog.text and "pw@" not in caplog.text
    assert TOKEN not in (outcome.error or "")


def test_run_monitor_refuses_a_bad_webhook_before_any_work(tmp_path: Path) -> None:
    home = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'home' / 'r.db'}",
                    artifacts_uri=str(tmp_path / "home" / "artifacts"))
    for url in ("not-a-url", "file:///etc/passwd"):
        with pytest.raises(InvalidInput, match="--webhook"):
            run_monitor("churn", workspace=Workspace(home), webhook=url)
    assert not (tmp_path / "home").exists()  # refused before the store was opened


def test_cli_bad_webhook_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ratchet.cli.main import app
    from tests.cli.conftest import assert_user_error

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / ".ratchet"))
    result = CliRunner().invoke(app, ["monitor", "run", "churn", "--webhook", "not-a-url"])
    assert_user_error(result, "--webhook", "http")


def test_a_failed_webhook_keeps_the_alert_with_the_stored_result(
        servers: list[HTTPServer], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np

    from ratchet.registry import RegistryClient
    from ratchet.tracking import TrackingClient
    from tests.monitoring.test_monitor import _serve
    from tests.serving.conftest import churn_frame

    root = tmp_path / "home"
    home = Settings(home=root, db_url=f"sqlite:///{root / 'ratchet.db'}",
                    artifacts_uri=str(root / "artifacts"))
    _train(RegistryClient(Workspace(home)))
    internal = _server(servers, 200)
    hook = _server(servers, 302, location=f"{internal.url}/internal")
    url = f"{hook.url}/{TOKEN}"

    same, same_y = churn_frame(600, seed=11)
    _serve(home, same, same_y)
    assert run_monitor("churn", window="1h", workspace=Workspace(home), webhook=url).verdict == "ok"
    moved, _ = churn_frame(600, seed=12)
    moved = moved.assign(age=moved.age + 25, plan=np.where(moved.index % 3 == 0, "edu",
                                                            moved.plan))
    _serve(home, moved, None)
    with caplog.at_level(logging.WARNING):
        second = run_monitor("churn", window="1h", workspace=Workspace(home), webhook=url)

    assert second.changed and second.verdict == "drift"
    assert second.alert is not None and not second.alert.delivered
    assert second.alert.status == 302 and len(hook.received) == 1 and internal.received == []
    stored = TrackingClient(Workspace(home)).workspace.stores.monitor.history("churn")[-1]
    assert stored.verdict == "drift"
    assert stored.result["alert"] == {"webhook": f"{hook.url}/***", "delivered": False,
                                      "status": 302,
                                      "error": "answered 302 (redirects are not followed)"}
    assert "verdict 'ok' -> 'drift'" in caplog.text  # the alert itself, in the log
    assert TOKEN not in caplog.text


def _train(registry: Any) -> None:
    from ratchet.data.catalog import DataClient
    from tests.serving.conftest import _pipeline, churn_frame

    X, y = churn_frame(3_000)
    with registry.tracking.start_run(experiment="churn") as run:
        DataClient(registry.workspace).log(X.assign(label=y), name="churn-train", role="train")
        registry.log_model(run.id, _pipeline(1.0, "ignore").fit(X, y), name="churn",
                           input_example=X)
    registry.set_alias("churn", "champion", 1)
