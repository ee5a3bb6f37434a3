"""The dashboard under test: a real uvicorn server in a thread, a real Chromium.

``serving(app)`` runs an app on a free loopback port for a ``with`` block. ``Watched``
pages record every JavaScript console error, uncaught exception, failed request and
HTTP error answer; the ``page`` fixture (tests/ui/conftest.py) fails the test on any of
them unless the test declares the statuses it expects (``watched.expect_status(403)``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ratchet.config import Settings
from ratchet.server.app import ServerOptions
from ratchet.ui import dashboard_app
from ratchet.workspace import Workspace
from tests.team_server import free_port

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
# Screenshots of every browser test land here (CI keeps the folder as test output).
SCREENSHOTS = Path(os.environ.get("RATCHET_TEST_OUTPUT", REPO / ".test-output")) / "ui"
# No host but the loopback one resolves: a page that reaches for a CDN fails its test.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def local_workspace(root: Path) -> Workspace:
    """A fresh embedded workspace (SQLite + local blobs) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return Workspace(Settings(home=root / ".ratchet", db_url=f"sqlite:///{root / 'ratchet.db'}",
                              artifacts_uri=str(root / "artifacts")))


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` on http://127.0.0.1:<free port> until the block ends."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"dashboard:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the dashboard did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextlib.contextmanager
def dashboard(workspace: Workspace, *, auth: bool = False) -> Iterator[str]:
    """The dashboard (the team server's app) over ``workspace``; its base URL."""
    with serving(dashboard_app(workspace, ServerOptions(host="127.0.0.1", auth=auth))) as url:
        yield url


def issue_token(workspace: Workspace, user: str, role: str) -> str:
    """A token for ``user`` (created with ``role`` if new)."""
    from ratchet.errors import NotFound

    auth = workspace.stores.auth
    try:
        auth.get_user(user)
    except NotFound:
        auth.create_user(user, role)
    return auth.create_token(user, label="ui tests").token


class Watched:
    """A Playwright page and what went wrong on it."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        self.expected: set[int] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        page.on("requestfailed", lambda request: self.problems.append(
            f"request failed: {request.method} {request.url} ({request.failure})"))
        page.on("response", self._response)

    def expect_status(self, *statuses: int) -> None:
        """HTTP error answers this test provokes on purpose (not counted as problems)."""
        self.expected.update(statuses)

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        # Chromium logs every 4xx/5xx answer to the console too; the response handler
        # already judged those.
        status = re.search(r"status of (\d+)", message.text)
        if status and int(status.group(1)) in self.expected:
            return
        self.problems.append(f"console error: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and response.status not in self.expected:
            self.problems.append(f"HTTP {response.status}: {response.request.method} "
                                 f"{response.url}")


def screenshot_name(node_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", node_id.split("::", 1)[-1])[:120] + ".png"


def dialogs_of(page: Any) -> list[str]:
    """The messages of every alert/confirm/prompt the page opens from now on (each is
    dismissed): a hostile name that ran as script would show up here."""
    seen: list[str] = []

    def dismiss(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    return seen
