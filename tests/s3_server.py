"""A real S3 API over HTTP for the tests: ``moto_server`` on 127.0.0.1, one per session.

Tests reach it the way a user reaches S3 or MinIO: ``RATCHET_ARTIFACTS=s3://bucket/prefix``
and the standard AWS variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``), read by botocore under s3fs; nothing is mocked in-process.
The server is a subprocess started on a free loopback port and stopped by its PID.

A test module uses it with ``s3, s3_server = s3_fixtures.s3, s3_fixtures.s3_server`` after
``from tests import s3_server as s3_fixtures``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto_server_command(port: int) -> list[str]:
    # The console script installed beside this interpreter (the venv's), else the module.
    script = Path(sys.executable).with_name("moto_server")
    if script.is_file():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    found = shutil.which("moto_server")
    if found:
        return [found, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def requests(self) -> list[str]:
        """The request lines the server has logged so far ("PUT /bucket/key?... HTTP/1.1")."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [line.split('"')[1] for line in lines if line.count('"') >= 2]

    def env(self) -> dict[str, str]:
        """What a user sets to point ratchet (s3fs, botocore) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "ratchet-test",
            "AWS_SECRET_ACCESS_KEY": "ratchet-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            # Hermetic: no developer's ~/.aws files, no instance-metadata lookups.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


# One server per test session, however many modules use the fixture (each module's copy
# of a session fixture is a separate fixture to pytest): the first starts it, the last
# to finish stops it. s3fs caches its filesystem, endpoint included, for the process.
_running: list[S3Server] = []
_users = 0


def _start(log: Path) -> S3Server:
    port = _free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            _moto_server_command(port), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
        )
    server = S3Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"moto_server exited with {process.returncode}: "
                        f"{log.read_text(errors='replace')[-2000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=1):
                return server
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                _stop(process)
                pytest.fail(f"moto_server did not answer on {server.endpoint} within "
                            f"{_START_TIMEOUT_S:.0f} s: "
                            f"{log.read_text(errors='replace')[-2000:]}", pytrace=False)
            time.sleep(0.1)


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if the test process dies without stopping it."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    global _users
    if not _running:
        _running.append(_start(tmp_path_factory.mktemp("moto") / "moto_server.log"))
    _users += 1
    try:
        yield _running[0]
    finally:
        _users -= 1
        if _users == 0:
            _stop(_running.pop().process)


@dataclass
class S3Bucket:
    """A fresh bucket on the server, with the AWS variables set for the test."""

    server: S3Server
    name: str

    def url(self, prefix: str = "ratchet") -> str:
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"

    def fs(self) -> Any:
        """An s3fs filesystem configured from the environment, as ratchet's own is."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True)


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    bucket = S3Bucket(s3_server, f"ratchet-{uuid.uuid4().hex[:16]}")
    bucket.fs().mkdir(bucket.name)
    return bucket
