"""A run launched by the ``ratchet`` command records the user's code (the pipeline's file
and its git checkout, or none), never ratchet's own console script and checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

FLOW = '''
import ratchet

@ratchet.step
def double(n: int) -> int:
    return n * 2

@ratchet.pipeline
def training(n: int = 2):
    return double(n)
'''
RATCHET = str(Path(sys.executable).parent / "ratchet")  # the installed console script


def _ratchet(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RATCHET_HOME": str(cwd / ".ratchet")}
    env.pop("RATCHET_DB", None)
    return subprocess.run([RATCHET, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def _pipeline_code(cwd: Path) -> dict[str, Any]:
    done = _ratchet(cwd, "pipeline", "run", "flow.py:training", "--json")
    assert done.returncode == 0, done.stderr
    runs = json.loads(_ratchet(cwd, "runs", "list", "--json").stdout)
    (pipeline_run,) = [r for r in runs if r["tags"].get("ratchet.pipeline") == "training"]
    shown = json.loads(_ratchet(cwd, "runs", "show", pipeline_run["run_id"], "--json").stdout)
    return dict(shown["code"])


def test_outside_a_git_checkout_no_commit_is_recorded(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    code = _pipeline_code(tmp_path)
    assert code["git_commit"] is None, code  # not ratchet's own checkout's commit
    assert code["entry_point"] == "flow.py:training", code
    assert "bin/ratchet" not in json.dumps(code)


def test_inside_a_git_checkout_its_commit_is_recorded(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "flow.py"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "flow"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, check=True,
                          capture_output=True, text=True).stdout.strip()
    code = _pipeline_code(tmp_path)
    assert code["git_commit"] == head, code
