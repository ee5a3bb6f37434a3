"""Client programs run in an MLflow client venv, each in a process of its own, forked from
one server per venv (launcher.py) that imported mlflow once: ``ClientProcesses.run``
answers as ``subprocess.run(..., capture_output=True, text=True)`` does.

``import mlflow`` (with scikit-learn and pandas in a full client venv) costs 1-4 s of CPU;
the suite runs ~30 client programs per worker, so paying it once per venv is most of what
starting them cost. A server that dies or a program that overruns its timeout is a clear
failure; the next program gets a new server.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

LAUNCHER = Path(__file__).resolve().parent / "launcher.py"

# What a launcher imports before it forks: what the programs import, and in full client
# venvs the heavy parts of mlflow (pyfunc, the sklearn flavor, the SQL stores), pandas and
# scikit-learn. The skinny client has mlflow alone.
FULL_CLIENT_MODULES: tuple[str, ...] = (
    "mlflow", "mlflow.pyfunc", "mlflow.sklearn", "mlflow.artifacts",
    "mlflow.store.tracking.sqlalchemy_store", "pandas", "sklearn.linear_model",
    "sklearn.datasets")
SKINNY_CLIENT_MODULES: tuple[str, ...] = ("mlflow",)
# Importing the modules above takes ~3-5 s alone; on the loaded 2-core machine, allow more.
READY_TIMEOUT_S = 180


def _base_environment() -> dict[str, str]:
    """The launcher's own environment: none of the suite's RATCHET_*/MLFLOW_* (each program
    is given its whole environment), and the interpreter settings the programs ran with."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RATCHET_", "MLFLOW_", "PYTEST_", "COV_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", PYTHONUNBUFFERED="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    return env


class Launcher:
    """One fork server (launcher.py) in one client venv."""

    def __init__(self, python: str, modules: tuple[str, ...], log: Path) -> None:
        self.python = python
        self.log = log
        self._buffer = b""
        with log.open("ab") as err:
            self.process = subprocess.Popen(
                [python, str(LAUNCHER), *modules], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, env=_base_environment(), bufsize=0)
        try:
            self.ready = self._read(READY_TIMEOUT_S, "import its modules")
        except BaseException:
            self.close()
            raise

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, argv: list[str], code: str | None, cwd: Path, env: dict[str, str],
            timeout: float, outputs: Path) -> subprocess.CompletedProcess[str]:
        outputs.mkdir(parents=True, exist_ok=True)
        stamp = f"{time.monotonic_ns()}"
        stdout, stderr = outputs / f"{stamp}.out", outputs / f"{stamp}.err"
        request = {"argv": argv, "code": code, "cwd": str(cwd), "env": env,
                   "stdout": str(stdout), "stderr": str(stderr)}
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self.process.wait()
            raise RuntimeError(
                f"the MLflow client launcher ({self.python}) exited "
                f"({self.process.returncode}) before it was given {argv[0]}:\n"
                f"{self.log.read_text(errors='replace')[-4000:]}") from None
        child = int(self._read(30, "fork the program")["pid"])
        try:
            returncode = int(self._read(timeout, "run the program")["returncode"])
        except subprocess.TimeoutExpired:
            os.kill(child, signal.SIGKILL)
            self._read(30, "reap the killed program")
            raise subprocess.TimeoutExpired(argv, timeout, output=_text(stdout),
                                            stderr=_text(stderr)) from None
        command = [self.python, *(argv if code is None else ["-c", code, *argv[1:]])]
        return subprocess.CompletedProcess(command, returncode, _text(stdout), _text(stderr))

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # it has exited already
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def _read(self, timeout: float, doing: str) -> dict[str, Any]:
        """The launcher's next line, within ``timeout`` seconds."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired([self.python, str(LAUNCHER)], timeout)
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.process.wait()
                raise RuntimeError(
                    f"the MLflow client launcher ({self.python}) exited "
                    f"({self.process.returncode}) while it was to {doing}:\n"
                    f"{self.log.read_text(errors='replace')[-4000:]}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        document: dict[str, Any] = json.loads(line)
        return document


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


class ClientProcesses:
    """A launcher per client venv, started when first needed; ``close()`` ends them."""

    def __init__(self, root: Path, modules: dict[str, tuple[str, ...]]) -> None:
        self.root = root
        self.modules = modules  # python -> what its launcher imports first
        self._launchers: dict[str, Launcher] = {}

    def run(self, python: str, argv: list[str], *, cwd: Path, env: dict[str, str],
            timeout: float, code: str | None = None) -> subprocess.CompletedProcess[str]:
        """``python ARGV`` (``argv[0]`` a script, or ``-c`` with ``code``) in ``cwd`` with
        exactly ``env``; its exit status and output. Raises ``subprocess.TimeoutExpired``
        after ``timeout`` seconds (the program killed)."""
        if (argv[0] == "-c") != (code is not None):
            raise ValueError("give code exactly when argv[0] is '-c'")
        launcher = self._launchers.get(python)
        if launcher is None or not launcher.alive():
            name = Path(python).parents[1].name
            launcher = Launcher(python, self.modules.get(python, ("mlflow",)),
                                self.root / f"launcher-{name}.log")
            self._launchers[python] = launcher
        return launcher.run(argv, code, cwd, env, timeout, self.root / "outputs")

    def close(self) -> None:
        for launcher in self._launchers.values():
            launcher.close()
        self._launchers.clear()
