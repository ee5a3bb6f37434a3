"""docs/server.md runs as written: a `ratchet server` on a free port, the Python example in
remote mode against it, and the curl calls of its API section."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.docs_runner import run_page

DOCS = Path(__file__).parents[2] / "docs"


def test_the_server_page_runs(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = dict(os.environ)
    try:
        run_page(DOCS / "server.md", [sys.executable, "-m", "ratchet.cli.main"])
    finally:  # the page points this process at its server: undo it
        os.environ.clear()
        os.environ.update(saved)
    assert (workspace / ".ratchet" / "ratchet.db").exists()  # the server's own workspace
