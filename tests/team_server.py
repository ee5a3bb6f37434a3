"""A real ``ratchet server`` for the tests: a subprocess on a free loopback port.

``start_team_server(db_url, artifacts, home)`` creates an admin user and token in the
server's workspace (as an operator would, with the CLI's stores), starts
``ratchet server --auth`` over it, and waits for ``/health``; ``stop()`` ends it by PID.
Clients reach it the way users do: ``RATCHET_TRACKING_URI`` and ``RATCHET_TRACKING_TOKEN``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_START_TIMEOUT_S = 30.0
ADMIN = "test-admin"
# Tables the tests' reset leaves alone: the server's users and tokens.
AUTH_TABLES = frozenset({"users", "api_tokens", "grants"})


_running: list[TeamServer] = []


def database_of(store: object) -> Any:
    """The database behind a store: its own, or the live test server's (a remote store
    has none of its own; tests that set a row up by hand reach the server's)."""
    db = getattr(store, "db", None)
    if db is not None:
        return db
    from ratchet.store import open_database

    return open_database(_running[-1].db_url)


def acted(actor: str | None, name: str) -> bool:
    """Whether ``actor`` records ``name`` acting: as given locally, or through the test
    server, which records the authenticated caller with the name the client gave."""
    return actor in (name, f"{ADMIN} ({name})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment(db_url: str, artifacts: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RATCHET_") or k == "RATCHET_TEST_PG_ADMIN"}
    env.update(RATCHET_HOME=str(home), RATCHET_DB=db_url, RATCHET_ARTIFACTS=str(artifacts))
    return env


@dataclass
class TeamServer:
    url: str
    token: str
    db_url: str
    process: subprocess.Popen[bytes]
    log: Path
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client_env(self) -> dict[str, str]:
        return {"RATCHET_TRACKING_URI": self.url, "RATCHET_TRACKING_TOKEN": self.token}

    def reset(self) -> None:
        """Empty every table but the server's users and tokens (between tests): only the
        tables the last test filled (tests/db_reset.py)."""
        from tests.db_reset import empty_tables

        empty_tables(self.db_url, keep=AUTH_TABLES)

    def stop(self) -> None:
        if self in _running:
            _running.remove(self)
        for process in (*self.extra, self.process):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def issue_admin_token(db_url: str, name: str = ADMIN) -> str:
    from ratchet.errors import AlreadyExists
    from ratchet.store import open_database
    from ratchet.store.auth_store import AuthStore

    store = AuthStore(open_database(db_url))
    with contextlib.suppress(AlreadyExists):
        store.create_user(name, "admin")
    return store.create_token(name, label="tests").token


def spawn(env: dict[str, str], log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-c", "from ratchet.cli.main import main; main()", "server",
               "--host", "127.0.0.1", "--port", str(port), *args]
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"ratchet server exited ({process.returncode}):\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"ratchet server did not start:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def start_team_server(db_url: str, artifacts: Path, home: Path, *args: str) -> TeamServer:
    home.mkdir(parents=True, exist_ok=True)
    env = server_environment(db_url, artifacts, home)
    token = issue_admin_token(db_url)
    log = home / "server.log"
    process, url = spawn(env, log, "--auth", *args)
    server = TeamServer(url, token, db_url, process, log)
    _running.append(server)
    return server
