"""/docs works offline: Swagger UI's files come from the server, not from a CDN."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.serving import create_app
from ratchet.workspace import Workspace
from tests.serving.conftest import running_server


def test_docs_page_loads_only_files_the_server_serves(churn_registry: RegistryClient,
                                                      serving_settings: Settings) -> None:
    with TestClient(create_app("churn@champion", workspace=Workspace(serving_settings))) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        links = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
        assert {"/openapi.json", "/docs/static/swagger-ui-bundle.js",
                "/docs/static/swagger-ui.css"} <= set(links), links
        for link in links:
            assert link.startswith("/") and not link.startswith("//"), link
            got = client.get(link)
            assert got.status_code == 200 and len(got.content) > 200, link
        assert "SwaggerUIBundle" in client.get("/docs/static/swagger-ui-bundle.js").text
        assert client.get("/docs/static/../../app.py").status_code == 404


def test_docs_page_renders_operations_in_a_browser_without_internet(
        churn_registry: RegistryClient, serving_settings: Settings, tmp_path: Path) -> None:
    """Chromium, with every host name but 127.0.0.1 made unresolvable (no internet), opens
    /docs; Swagger UI must have rendered the operations (an ``opblock`` per route)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: `make tools` installs it"
    with running_server(serving_settings, tmp_path, "churn@champion") as url:
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             "--virtual-time-budget=15000", "--dump-dom", f"{url}/docs"],
            capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert 'class="swagger-ui"' in dom, f"Swagger UI did not start:\n{dom[:2000]}"
    operations = re.findall(r'class="opblock opblock-(\w+)[^"]*".*?data-path="([^"]+)"',
                            dom, flags=re.S)
    assert ("post", "/predict") in operations, operations
    assert ("get", "/health/ready") in operations, operations
