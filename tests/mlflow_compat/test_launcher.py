"""The suite's client programs run forked from a launcher (client_processes.py): a program
ends there as it ends in a python of its own (exit status, output, atexit functions,
threads, argv, environment, working directory, a fresh mlflow), an overrun is killed
without losing the launcher, and a launcher that died is replaced."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mlflow_compat.client_processes import ClientProcesses
from tests.mlflow_compat.conftest import SKINNY_ENV, client_env, env_python

# Needs a client venv (make mlflow-envs), which `make test-fast` does not build.
pytestmark = pytest.mark.e2e

PROGRAMS = {
    "exit_status": "import sys; print('out'); sys.exit(3)",
    "uncaught": "raise ValueError('boom')",
    "exit_message": "import sys; sys.exit('a message')",
    "atexit": "import atexit; atexit.register(lambda: print('at exit ran'))",
    "thread": ("import threading, time\n"
               "def late():\n    time.sleep(0.3); print('thread done')\n"
               "threading.Thread(target=late).start()"),
    "argv_env_cwd": "import os, sys; print(sys.argv, os.environ.get('FOO'), os.getcwd(), "
                    "sys.path[:2], 'MLFLOW_TRACKING_URI' in os.environ)",
    "fresh_mlflow": "import mlflow; print(mlflow.get_tracking_uri(), mlflow.active_run()); "
                    "mlflow.set_tracking_uri('file:///elsewhere')",
}


@pytest.fixture(scope="module")
def python() -> str:
    return env_python(SKINNY_ENV[0], SKINNY_ENV[1])  # the quickest mlflow to import


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientProcesses]:
    clients = ClientProcesses(tmp_path_factory.mktemp("launcher"), {})
    yield clients
    clients.close()


@pytest.mark.parametrize("name", PROGRAMS)
def test_a_forked_program_ends_as_in_its_own_python(clients: ClientProcesses, python: str,
                                                     name: str, tmp_path: Path) -> None:
    env = client_env(FOO="bar", PYTHONPATH=str(tmp_path / "extra"))
    code = PROGRAMS[name]
    own = subprocess.run([python, "-c", code, "arg"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    for _ in range(2):  # the second time too: nothing of the first run stays behind
        forked = clients.run(python, ["-c", "arg"], code=code, cwd=tmp_path, env=env,
                             timeout=60)
        assert (forked.returncode, forked.stdout) == (own.returncode, own.stdout)
        assert forked.stderr.splitlines()[-1:] == own.stderr.splitlines()[-1:]
        assert "launcher.py" not in forked.stderr


def test_an_overrun_is_killed_and_a_dead_launcher_replaced(clients: ClientProcesses,
                                                           python: str, tmp_path: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        clients.run(python, ["-c"], code="import time; print('started'); time.sleep(60)",
                    cwd=tmp_path, env=client_env(), timeout=1)
    again = clients.run(python, ["-c"], code="print('next')", cwd=tmp_path, env=client_env(),
                        timeout=60)
    assert (again.returncode, again.stdout) == (0, "next\n")
    launcher = clients._launchers[python]
    os.kill(launcher.process.pid, signal.SIGKILL)
    launcher.process.wait()
    replaced = clients.run(python, ["-c"], code="print('replaced')", cwd=tmp_path,
                           env=client_env(), timeout=60)
    assert (replaced.returncode, replaced.stdout) == (0, "replaced\n")
    assert clients._launchers[python] is not launcher


def test_code_is_given_exactly_for_dash_c(clients: ClientProcesses, python: str,
                                          tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly when"):
        clients.run(python, ["-c"], cwd=tmp_path, env=client_env(), timeout=5)
    with pytest.raises(ValueError, match="exactly when"):
        clients.run(python, ["script.py"], code="pass", cwd=tmp_path, env=client_env(),
                    timeout=5)
