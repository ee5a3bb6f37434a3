"""Load a model in a child process before the caller does, for formats parsed natively.

LightGBM and XGBoost parse their model files in C++: a malformed file (or a skops file
holding such a Booster) can abort or segfault the loading process instead of raising,
which in ``ratchet serve`` kills the server during a hot swap. So before the parent loads
one, a child (``python -m ratchet.packaging.probe_child DIR``, minimal environment,
timeout)
loads it and predicts on the manifest's input example. A child killed by a signal,
exiting non-zero or timing out makes the load fail with :class:`InvalidInput`; the
verdict is kept per content hash for the life of the process, so repeated loads of the
same files pay once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    from ratchet.packaging.manifest import Manifest

# Seconds a probe may take (import, load, a few predictions). Env override for big models.
DEFAULT_TIMEOUT_S = 120.0
TIMEOUT_ENV = "RATCHET_PROBE_TIMEOUT_S"
# Exit codes of the child, besides 0: a Python error while loading / while predicting.
EXIT_LOAD_FAILED = 3
EXIT_PREDICT_FAILED = 4
_STDERR_TAIL = 600

_verdicts: dict[str, str | None] = {}  # content hash -> None (passed) or the refusal
_lock = threading.Lock()
_in_child = False  # set in the probe child (probe_child.py): it loads for real


def probe_in_child(directory: Path, manifest: Manifest, *, trust: bool = False) -> None:
    """Raise InvalidInput unless a child process loads and runs the model cleanly."""
    if _in_child:
        return
    key = f"{_content_hash(directory)}:{int(trust)}"
    with _lock:
        verdict = _verdicts.get(key, "")
    if verdict is None:
        return
    if verdict:
        raise InvalidInput(verdict)
    refusal = _run_child(directory, manifest, trust)
    with _lock:
        _verdicts[key] = refusal
    if refusal:
        raise InvalidInput(refusal)


def _run_child(directory: Path, manifest: Manifest, trust: bool) -> str | None:
    timeout = _timeout()
    what = f"model {directory} ({manifest.flavor}, {manifest.model_file})"
    # -P: the working directory is not put on sys.path (a model directory could hold
    # a module named like a library).
    command = [sys.executable, "-P", "-m", "ratchet.packaging.probe_child",
               str(directory.resolve())]
    if trust:
        command.append("--trust")
    try:
        done = subprocess.run(
            command,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            cwd=os.path.abspath(os.sep),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return (
            f"{what} is refused: loading it in a probe process did not finish within "
            f"{timeout:g}s. If the model is just big, raise {TIMEOUT_ENV}."
        )
    if done.returncode == 0:
        return None
    tail = done.stderr.decode("utf-8", errors="replace").strip()[-_STDERR_TAIL:]
    if done.returncode < 0:
        name = _signal_name(-done.returncode)
        return (
            f"{what} is refused: loading and running it killed a probe process with "
            f"{name}; the file is malformed or hostile. Re-save the model from its "
            f"training run. {tail}".strip()
        )
    step = {EXIT_LOAD_FAILED: "loading", EXIT_PREDICT_FAILED: "predicting on its input example"}
    return (
        f"{what} is refused: {step.get(done.returncode, 'probing')} failed in a probe "
        f"process (exit {done.returncode}): {tail}"
    )


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise InvalidInput(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    return value if value > 0 else DEFAULT_TIMEOUT_S


def _child_env() -> dict[str, str]:
    # Only what Python needs to find ratchet and its libraries; no credentials.
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
    }
    for name in ("SYSTEMROOT", "TMPDIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _content_hash(directory: Path) -> str:
    from ratchet.hashing import hash_file, hash_tree

    return hash_tree(
        (p.relative_to(directory).as_posix(), hash_file(str(p)))
        for p in directory.rglob("*")
        if p.is_file()
    )


__all__ = ["DEFAULT_TIMEOUT_S", "TIMEOUT_ENV", "probe_in_child"]
