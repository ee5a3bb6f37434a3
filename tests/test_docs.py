"""The docs' examples run: every python block in order, then every `ratchet` line."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_runner import SKIP_COMMANDS, blocks

DOCS = Path(__file__).parents[1] / "docs"


@pytest.mark.parametrize("page", ["quickstart.md", "data.md", "pipelines.md", "monitoring.md",
                                  "continuous-training.md", "deleting.md", "api.md",
                                  "features.md"])
def test_doc_page_runs(page: str, workspace: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for _, code in blocks(DOCS / page, "python"):
        exec(compile(code, f"{page}", "exec"), namespace)
    for _, block in blocks(DOCS / page, "bash"):
        for line in block.strip().splitlines():
            if not line.startswith("ratchet ") or line.startswith(SKIP_COMMANDS):
                continue
            args = shlex.split(line.split("  #")[0])[1:]
            done = subprocess.run([sys.executable, "-m", "ratchet.cli.main", *args],
                                  cwd=workspace, capture_output=True, text=True)
            assert done.returncode == 0, f"{line}\n{done.stderr}"
