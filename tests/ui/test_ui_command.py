"""``ratchet ui``: the dashboard on the local workspace, loopback only, no sign-in; and
every dashboard route declares its permission (default deny holds for pages too)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import ratchet
from ratchet.server.app import ServerOptions, routes_of
from ratchet.server.permissions import declared_level
from ratchet.ui import dashboard_app
from ratchet.workspace import use
from tests.team_server import free_port
from tests.ui.browser import local_workspace


def test_ratchet_ui_serves_the_local_workspace_without_sign_in(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    env = {**os.environ, "RATCHET_HOME": str(project / ".ratchet")}
    for key in ("RATCHET_DB", "RATCHET_TRACKING_URI", "RATCHET_TRACKING_TOKEN",
                "RATCHET_ARTIFACTS"):
        env.pop(key, None)
    subprocess.run([sys.executable, "-c", "import ratchet\nwith ratchet.start_run("
                    "experiment='nightly'):\n    ratchet.log_metric('auc', 0.9)"],
                   cwd=project, env=env, check=True, timeout=120)
    port = free_port()
    log = (tmp_path / "ui.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from ratchet.cli.main import main; main()", "ui", "--port",
         str(port), "--no-open"], cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        page = _get(f"http://127.0.0.1:{port}/ui/", process)
        assert "nightly" in page and "Sign out" not in page
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
    said = (tmp_path / "ui.log").read_text()
    assert f"http://127.0.0.1:{port}/ui/" in said and "no authentication" in said


def _get(url: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "ratchet ui exited"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_every_dashboard_route_declares_its_permission(tmp_path: Path) -> None:
    workspace = local_workspace(tmp_path)
    with use(workspace), ratchet.start_run(experiment="x"):
        pass
    app = dashboard_app(workspace, ServerOptions(auth=True))
    pages = [(path, route) for path, route in routes_of(app.app_routes)
             if path == "/" or path.startswith("/ui/")]
    assert len(pages) >= 4
    undeclared = [path for path, route in pages if declared_level(route) is None]
    assert not undeclared, undeclared
    public = sorted(path for path, route in pages if declared_level(route) == "public")
    assert public == ["/", "/ui/api/session", "/ui/api/session/end", "/ui/login"], public


def test_ratchet_server_serves_the_dashboard_behind_sign_in(team_server: Any) -> None:
    """The live ``ratchet server --auth`` process: pages need the token, given once at
    sign-in and kept in the cookie."""
    import httpx

    with httpx.Client(base_url=team_server.url, timeout=30) as client:
        first = client.get("/ui/", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].startswith("/ui/login")
        assert client.get("/ui/login").status_code == 200
        signed = client.post("/ui/api/session", json={"token": team_server.token})
        assert signed.status_code == 200, signed.text
        page = client.get("/ui/")
        assert page.status_code == 200 and "<h1>Experiments</h1>" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
