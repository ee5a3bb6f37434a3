"""A store the CLI cannot reach or read is one ``error:`` line, never a traceback, and the
line never shows the password in the database URL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Invoke, assert_user_error


def _closed_port() -> int:
    """A loopback port nobody listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["runs", "list"], ["db", "upgrade"], ["db", "current"]])
def test_postgres_down_is_one_line_without_password(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    port = _closed_port()
    monkeypatch.setenv("RATCHET_DB", f"postgresql+psycopg://bob:hunter2@127.0.0.1:{port}/ml")
    lines = assert_user_error(cli(*command), f"bob:***@127.0.0.1:{port}/ml", "refused")
    assert len(lines) == 1
    assert "hunter2" not in lines[0]


def test_postgres_database_that_does_not_exist(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "RATCHET_DB", "postgresql+psycopg://postgres:pw@127.0.0.1:5432/ratchet_no_such_db"
    )
    lines = assert_user_error(cli("experiments", "list"), "ratchet_no_such_db", "does not exist")
    assert len(lines) == 1 and ":pw@" not in lines[0]


def test_corrupt_sqlite_file(cli: Invoke, project: Path) -> None:
    (project / ".ratchet").mkdir()
    (project / ".ratchet" / "ratchet.db").write_text("garbage\n")
    lines = assert_user_error(cli("runs", "list"), "ratchet.db", "not a database")
    assert len(lines) == 1


def test_home_that_is_a_file(cli: Invoke, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "home").write_text("not a folder\n")
    monkeypatch.setenv("RATCHET_HOME", str(project / "home"))
    assert_user_error(cli("runs", "list"), "is a file, not a folder", "RATCHET_HOME")


def test_home_that_cannot_be_created(
    cli: Invoke, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "blocker").write_text("a file where a folder should be\n")
    monkeypatch.setenv("RATCHET_HOME", str(project / "blocker" / "home"))
    assert_user_error(cli("models", "list"), "cannot create the ratchet home", "RATCHET_HOME")


def test_sqlite_folder_that_cannot_be_created(
    cli: Invoke, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "blocker").write_text("x\n")
    monkeypatch.setenv("RATCHET_DB", f"sqlite:///{project}/blocker/sub/r.db")
    assert_user_error(cli("db", "upgrade"), "cannot create the folder of the store")


def test_quickstart_placeholder_host_as_a_real_process(tmp_path: Path) -> None:
    """The installed entry point, as a user runs it: exit 1, one line on stderr."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RATCHET_HOME": str(tmp_path / ".ratchet"),
        "RATCHET_DB": "postgresql+psycopg://ratchet:secret@db.invalid/ratchet",
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }
    done = subprocess.run(
        [sys.executable, "-m", "ratchet.cli.main", "db", "upgrade"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot use the store"), done.stderr
    assert "ratchet:***@db.invalid" in lines[0] and "secret" not in lines[0]
