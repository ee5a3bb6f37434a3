"""Capture where a run's code came from, without the user asking.

git commit, branch, dirty flag and a hash of the uncommitted diff (so two dirty runs can
be told apart), the entry point, Python and key package versions, host and user. Every
probe is best-effort: a run outside a git checkout simply records no commit.
"""

from __future__ import annotations

import getpass
import os
import platform
import re
import socket
import subprocess
import sys
from functools import lru_cache
from importlib import metadata

from ratchet import user_code
from ratchet.hashing import hash_bytes
from ratchet.store.records import CodeVersion

KEY_PACKAGES = (
    "ratchet-mlops", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "lightgbm",
    "xgboost", "xgboost-cpu", "torch", "skops", "sqlalchemy",
)
GIT_TIMEOUT_S = 5
# Reading a repository must not run programs its config names: a checkout from elsewhere
# may set core.fsmonitor (run by every index read), hooks, or diff/filter drivers.
# safe.directory is left to git: a repository owned by someone else is still refused.
_NO_PROGRAMS = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null",
                "-c", "core.untrackedCache=false")
_FILTER_KEY = re.compile(rb"^(filter\.\S+\.(?:clean|smudge|process))\s", re.MULTILINE)


def _git(args: list[str], cwd: str, overrides: tuple[str, ...] = ()) -> bytes | None:
    try:
        done = subprocess.run(
            ["git", *_NO_PROGRAMS, *overrides, *args], cwd=cwd, capture_output=True,
            stdin=subprocess.DEVNULL, timeout=GIT_TIMEOUT_S, check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0",  # never take the index lock
                 "GIT_TERMINAL_PROMPT": "0", "GIT_EXTERNAL_DIFF": ""},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _no_filters(cwd: str) -> tuple[str, ...]:
    """``-c filter.<x>.clean=`` for every configured filter driver: git diff would run
    them on changed files (an empty command is no filter). Reading config runs nothing."""
    listed = _git(["config", "--get-regexp", r"^filter\..*\.(clean|smudge|process)$"], cwd)
    keys = {m.decode(errors="replace") for m in _FILTER_KEY.findall(listed or b"")}
    keys |= {key.rsplit(".", 1)[0] + ".required" for key in keys}
    return tuple(part for key in sorted(keys)
                 for part in ("-c", f"{key}={'false' if key.endswith('.required') else ''}"))


def git_state(cwd: str) -> tuple[str | None, str | None, bool | None, str | None]:
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return None, None, None, None
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    # Tracked changes (staged and not) plus the names of untracked files; no textconv,
    # external diff or filter program runs.
    safe = _no_filters(cwd)
    diff = _git(["diff", "HEAD", "--no-ext-diff", "--no-textconv", "--binary"], cwd,
                safe) or b""
    untracked = _git(["ls-files", "--others", "--exclude-standard"], cwd, safe) or b""
    dirty = bool(diff or untracked)
    return (
        commit.decode().strip(),
        (branch or b"").decode().strip() or None,
        dirty,
        hash_bytes(diff + b"\0" + untracked) if dirty else None,
    )


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    found = {}
    for name in KEY_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def entry_point() -> str:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path:
        return os.path.relpath(path) if not os.path.isabs(sys.argv[0] or "") else path
    return " ".join(sys.argv) if sys.argv and sys.argv[0] else "<interactive>"


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def capture(cwd: str | None = None) -> CodeVersion:
    cwd = cwd or os.getcwd()
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    repo_dir = os.path.dirname(os.path.abspath(script)) if script else cwd
    entry = entry_point()
    launcher = user_code.location()  # the ratchet CLI: the user's code is not __main__
    if launcher is not None:
        repo_dir, entry = launcher
    commit, branch, dirty, diff_hash = git_state(repo_dir)
    return CodeVersion(
        git_commit=commit, git_branch=branch, git_dirty=dirty, git_diff_hash=diff_hash,
        entry_point=entry, python_version=platform.python_version(),
        host=socket.gethostname(), user=_user(), packages=package_versions(),
    )
