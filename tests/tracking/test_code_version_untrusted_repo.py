"""``start_run`` reads git state without running programs the repository's config names."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ratchet.workspace import Workspace


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def _marker_script(path: Path, marker: Path, body: str = "") -> str:
    path.write_text(f"#!/bin/sh\necho ran >> {marker}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "train.py").write_text(textwrap.dedent("""
        import ratchet
        with ratchet.start_run(experiment="git") as run:
            pass
        print(run.id)
    """))
    (repo / "data.txt").write_text("one\n")
    (repo / ".gitattributes").write_text("*.txt filter=evil diff=evil\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "init")
    return repo


def test_start_run_runs_no_fsmonitor_hook_filter_or_textconv(repo: Path,
                                                             tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    monitor = _marker_script(tmp_path / "fsmonitor.sh", marker)
    filt = _marker_script(tmp_path / "filter.sh", marker, "cat\n")
    textconv = _marker_script(tmp_path / "textconv.sh", marker, 'cat "$1"\n')
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for hook in ("post-index-change", "reference-transaction", "post-checkout"):
        _marker_script(hooks / hook, marker)
    # Set after the commit so setting up the repository itself triggers nothing.
    _git(repo, "config", "core.fsmonitor", monitor)
    _git(repo, "config", "core.hooksPath", str(hooks))
    _git(repo, "config", "filter.evil.clean", filt)
    _git(repo, "config", "filter.evil.required", "true")
    _git(repo, "config", "diff.evil.textconv", textconv)
    (repo / "data.txt").write_text("two\n")  # a dirty tracked file: git diff looks at it

    env = {**os.environ, "RATCHET_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "train.py"], cwd=repo, capture_output=True,
                          text=True, check=True, env=env)
    run_id = done.stdout.strip()

    assert not marker.exists(), marker.read_text()

    from ratchet.config import load_settings
    from ratchet.tracking import TrackingClient

    client = TrackingClient(Workspace(load_settings(cwd=repo, env={"RATCHET_HOME": env["RATCHET_HOME"]})))
    code = client.get_run(run_id).code
    assert code.git_commit == _git(repo, "rev-parse", "HEAD")
    assert code.git_dirty is True and code.git_diff_hash  # still measured, just safely


def test_a_plain_git_command_would_have_run_the_fsmonitor(repo: Path, tmp_path: Path) -> None:
    """The premise of the test above: the hook is real and git runs it."""
    marker = tmp_path / "marker"
    _git(repo, "config", "core.fsmonitor", _marker_script(tmp_path / "fsmonitor.sh", marker))
    (repo / "data.txt").write_text("two\n")
    _git(repo, "diff", "HEAD")
    assert marker.exists()
