"""A real Ray cluster for the executor tests: one for this package's tests, loopback only.

``ray start --head --block`` runs in its own session (``start_new_session``), and every
process Ray starts for it (GCS, raylet, agents, workers) stays in that session, so the
teardown kills exactly those processes, by pid, and never another cluster on the machine
(no ``ray stop``). The cluster is never skipped: if it cannot start, the tests fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

RAY_START_TIMEOUT_S = 120.0
RAY_STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ray_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # On Linux `ray start` replaces --node-ip-address=127.0.0.1 by the machine's network
    # address and binds its servers there; Ray's single-machine mode keeps 127.0.0.1.
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    # `ray start` turns token authentication on whenever ~/.ray/auth_token exists, while a
    # driver given an explicit address does not: pin it so the machine's state is moot.
    env["RAY_AUTH_MODE"] = "disabled"
    return env


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited child its parent has not reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def session_pids(sid: int) -> set[int]:
    """Every running process of session ``sid`` (the cluster's ``ray start`` and its tree)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid and running(int(entry)):
                    found.add(int(entry))
            except OSError:  # exited while we looked
                pass
    return found


def descendant_pids(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def listening_addresses(pids: set[int]) -> set[str]:
    """The IP addresses that ``pids`` accept TCP connections on (from /proc/net)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    addresses: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.add(_decode_ip(fields[1].split(":")[0], width))
    return addresses


def _decode_ip(hex_ip: str, width: int) -> str:
    raw = bytes.fromhex(hex_ip)
    if width == 8:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def is_loopback(ip: str) -> bool:
    return ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def kill_all(pids_of: Callable[[], set[int]], timeout: float = RAY_STOP_TIMEOUT_S) -> set[int]:
    """SIGKILL every pid ``pids_of()`` returns until none is left; returns survivors.

    SIGKILL, not SIGTERM: on SIGTERM `ray start --block` drains the node for up to 30 s.
    Nothing is lost: the cluster's state lives in its temp dir, which is deleted."""
    deadline = time.monotonic() + timeout
    while True:
        left: set[int] = pids_of()
        if not left or time.monotonic() > deadline:
            return left
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


@dataclass(frozen=True)
class RayHead:
    address: str
    session_id: int  # of `ray start`; every process of the cluster is in it

    def pids(self) -> set[int]:
        return session_pids(self.session_id)


@pytest.fixture(scope="package")
def ray_cluster(ray_head: RayHead) -> str:
    """The address of the package's Ray cluster (2 CPUs, 127.0.0.1)."""
    return ray_head.address


@pytest.fixture(scope="package")
def ray_head() -> Iterator[RayHead]:
    """Starts a 2-CPU head node on 127.0.0.1 for this package's tests and stops it by pid
    when they are done (under ``make test`` they run together on one worker: the cluster,
    ~0.7 GB and a few processes, does not idle through the rest of the session)."""
    port = free_port()
    # A short root: Ray's unix socket paths under it must stay below 108 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="rt-ray-"))
    ray_bin = Path(sys.executable).parent / "ray"
    command = [
        str(ray_bin), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
        f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
        "--disable-usage-stats", f"--temp-dir={temp_dir}",
        "--object-store-memory=200000000",
    ]
    log_path = temp_dir / "ray-start.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=ray_environment(),
                                start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        _wait_until_started(proc, log_path, address)
        yield RayHead(address, proc.pid)
    finally:
        survivors = kill_all(lambda: session_pids(proc.pid))
        proc.wait(timeout=10)
        shutil.rmtree(temp_dir, ignore_errors=True)
        if survivors:
            pytest.fail(f"Ray processes {sorted(survivors)} outlived the test cluster")


def _wait_until_started(proc: subprocess.Popen[bytes], log_path: Path, address: str) -> None:
    deadline = time.monotonic() + RAY_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`ray start` exited with {proc.returncode}:\n"
                        f"{log_path.read_text(errors='replace')[-4000:]}", pytrace=False)
        if "Ray runtime started" in log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    pytest.fail(f"the Ray cluster at {address} did not start within {RAY_START_TIMEOUT_S:g} s:"
                f"\n{log_path.read_text(errors='replace')[-4000:]}", pytrace=False)
