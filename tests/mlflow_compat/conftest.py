"""The MLflow compatibility suite: the real ``mlflow`` client, in its own pinned venv, against
a real ``ratchet server`` process.

- ``mlflow_python``: the python of each pinned client venv (``make mlflow-envs`` makes them;
  a missing one FAILS the test, it is never skipped). Each version's tests form one xdist
  group, so under ``make test`` the 2.x and 3.x clients run side by side on the two workers.
- ``mlflow_clients``: how a client program runs in its venv (``ClientProcesses.run``): a
  fresh child forked from one server per venv and worker that imported mlflow once
  (launcher.py), instead of a new interpreter paying ``import mlflow`` each time.
- ``ratchet_server``: one ``ratchet server --auth`` per worker (the session), on a free
  loopback port over a temp workspace, shared by the modules (their names are their own:
  ``compat-<version>-...``); its admin and reader tokens are made with the CLI, as an
  operator would. Stopped by PID at teardown. test_access.py has a server of its own.
- ``ratchet_server.run_client(python, script, *args)``: runs ``scripts/<script>`` in a client
  venv with ``MLFLOW_TRACKING_URI``/``MLFLOW_TRACKING_TOKEN`` set and returns the JSON
  document it prints last; ``ratchet_server.cli(*args)`` runs the ``ratchet`` CLI against
  the server (remote mode) and ``ratchet_server.workspace`` opens its workspace in-process.

The scripts import no ratchet code: they are programs a user of MLflow would write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from ratchet.config import Settings
from ratchet.workspace import Workspace
from tests.mlflow_compat.client_processes import (
    FULL_CLIENT_MODULES,
    SKINNY_CLIENT_MODULES,
    ClientProcesses,
)
from tests.team_server import server_environment, spawn

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"

# Pinned client venvs, made by `make mlflow-envs` from tests/mlflow_compat/pins/*.txt.
MLFLOW_ENVS = {"2.22.5": ROOT / ".venv-mlflow2", "3.17.2": ROOT / ".venv-mlflow3"}
SKINNY_ENV = ("3.17.2-skinny", ROOT / ".venv-mlflow3-skinny")

# Each client script imports mlflow (1-3 s) and does a lot; the slowest (the registry's,
# which trains, logs, registers and loads models) takes ~20 s on the shared 2 cores.
SCRIPT_TIMEOUT_S = 240

# A failed write is retried by the client with exponential backoff (up to minutes by
# default): a few quick retries keep a server error a quick failure here.
CLIENT_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


def env_python(version: str, venv: Path) -> str:
    python = venv / "bin" / "python"
    if not python.exists():
        pytest.fail(f"the MLflow {version} client venv is missing ({venv}): run "
                    "`make mlflow-envs` (make test does)", pytrace=False)
    return str(python)


def _version_param(version: str) -> Any:
    return pytest.param(version, id=f"mlflow{version}",
                        marks=pytest.mark.xdist_group(f"mlflow{version.split('.')[0]}"))


@pytest.fixture(scope="module", params=[_version_param(v) for v in MLFLOW_ENVS])
def mlflow_python(request: pytest.FixtureRequest) -> str:
    """The python of a pinned MLflow client venv (with scikit-learn and this checkout)."""
    version: str = request.param
    return env_python(version, MLFLOW_ENVS[version])


@pytest.fixture(scope="session")
def mlflow_clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientProcesses]:
    """Runs client programs in the client venvs (a fork server per venv, this worker's)."""
    modules: dict[str, tuple[str, ...]] = {str(venv / "bin" / "python"): FULL_CLIENT_MODULES
                                          for venv in MLFLOW_ENVS.values()}
    modules[str(SKINNY_ENV[1] / "bin" / "python")] = SKINNY_CLIENT_MODULES
    clients = ClientProcesses(tmp_path_factory.mktemp("mlflow-clients"), modules)
    try:
        yield clients
    finally:
        clients.close()


def client_env(**extra: str) -> dict[str, str]:
    """A client program's environment: none of the suite's RATCHET_*, MLFLOW_*, PYTEST_*."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RATCHET_", "MLFLOW_", "PYTEST_", "COV_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", PYTHONUNBUFFERED="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def mlflow_version(mlflow_python: str) -> str:
    return next(v for v, venv in MLFLOW_ENVS.items() if mlflow_python.startswith(str(venv)))


class ClientScriptFailed(AssertionError):
    pass


@dataclass
class RatchetServer:
    url: str
    root: Path
    env: dict[str, str]  # the server's own workspace variables (local mode)
    admin_token: str
    process: subprocess.Popen[bytes]
    log: Path
    clients: ClientProcesses
    tokens: dict[str, str] = field(default_factory=dict)

    # -- the MLflow side -------------------------------------------------------------------

    def client_env(self, token: str | None = None, **extra: str) -> dict[str, str]:
        """A client process's environment: no RATCHET_* or MLFLOW_* of ours leak in."""
        env = client_env(**CLIENT_RETRIES, MLFLOW_TRACKING_URI=self.url)
        token = self.admin_token if token is None else token
        if token:
            env["MLFLOW_TRACKING_TOKEN"] = token
        env.update(extra)
        return env

    def run_client(self, python: str, script: str, *args: str, token: str | None = None,
                   cwd: Path | None = None, **extra_env: str) -> dict[str, Any]:
        """Run ``scripts/<script>`` with ``python`` and return the JSON object it printed
        last. A script that exits non-zero or prints no JSON fails the test with its
        output (and the server log's tail)."""
        workdir = cwd or self.root / "client"
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            done = self.clients.run(python, [str(SCRIPTS / script), *args], cwd=workdir,
                                    env=self.client_env(token, **extra_env),
                                    timeout=SCRIPT_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise ClientScriptFailed(f"{script} timed out after {SCRIPT_TIMEOUT_S} s:\n"
                                     f"{exc.stderr!r}\n{self.log_tail()}") from None
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise ClientScriptFailed(
                f"{script} {' '.join(args)} exited {done.returncode}\n--- stdout\n"
                f"{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-6000:]}\n{self.log_tail()}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    # -- ratchet's side --------------------------------------------------------------------

    def remote_env(self, token: str | None = None) -> dict[str, str]:
        """The environment of a ratchet client in remote mode (pointed at this server)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}
        env.update(RATCHET_TRACKING_URI=self.url,
                   RATCHET_TRACKING_TOKEN=self.admin_token if token is None else token,
                   RATCHET_HOME=str(self.root / "client-home"))
        return env

    def cli(self, *args: str, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``ratchet ARGS`` as a user of the team server runs it (remote mode)."""
        done = subprocess.run([sys.executable, "-c", "from ratchet.cli.main import main; main()",
                               *args], env=self.remote_env(), cwd=self.root, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"ratchet {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    @cached_property
    def workspace(self) -> Workspace:
        """The server's own workspace, opened in this process (its SQLite and artifacts)."""
        return Workspace(Settings(home=Path(self.env["RATCHET_HOME"]),
                                  db_url=self.env["RATCHET_DB"],
                                  artifacts_uri=self.env["RATCHET_ARTIFACTS"]))

    def token_for(self, user: str, role: str) -> str:
        """A token of a new user with ``role``, made with the CLI on the server's host."""
        if user not in self.tokens:
            local_cli(self.env, "users", "create", user, "--role", role)
            self.tokens[user] = json.loads(
                local_cli(self.env, "tokens", "create", "--user", user, "--json").stdout)["token"]
        return self.tokens[user]

    def log_tail(self, chars: int = 3000) -> str:
        return f"--- ratchet server log (tail)\n{self.log.read_text(errors='replace')[-chars:]}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def local_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``ratchet ARGS`` on the server's host, over its workspace (an operator's commands)."""
    done = subprocess.run([sys.executable, "-c", "from ratchet.cli.main import main; main()",
                           *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        raise AssertionError(f"ratchet {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def start_ratchet_server(root: Path, clients: ClientProcesses) -> RatchetServer:
    """``ratchet server --auth`` on 127.0.0.1 over a fresh workspace in ``root``; an admin
    user and token made with ``ratchet users create`` / ``ratchet tokens create``."""
    home = root / "home"
    home.mkdir()
    env = server_environment(f"sqlite:///{root / 'server.db'}", root / "artifacts", home)
    local_cli(env, "users", "create", "compat-admin", "--role", "admin")
    token = json.loads(local_cli(env, "tokens", "create", "--user", "compat-admin",
                                 "--label", "mlflow compat suite", "--json").stdout)["token"]
    log = root / "server.log"
    process, url = spawn(env, log, "--auth")
    return RatchetServer(url, root, env, token, process, log, clients)


@pytest.fixture(scope="session")
def ratchet_server(tmp_path_factory: pytest.TempPathFactory,
                   mlflow_clients: ClientProcesses) -> Iterator[RatchetServer]:
    """A real ``ratchet server --auth`` over a fresh workspace, one per worker, shared by
    the modules (each names what it makes after its module and client version)."""
    server = start_ratchet_server(tmp_path_factory.mktemp("mlflow-compat"), mlflow_clients)
    try:
        yield server
    finally:
        server.stop()
