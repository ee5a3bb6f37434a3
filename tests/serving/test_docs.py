"""docs/serving.md runs: its python blocks and shell lines in page order, against a real
`ratchet serve` started on a free port (curl lines included)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.serving.conftest import wait_until

PAGE = Path(__file__).parents[2] / "docs" / "serving.md"


def _blocks() -> list[tuple[str, str]]:
    """(language, code) in page order: the shell lines depend on the Python before them."""
    return re.findall(r"```(\w*)\n(.*?)```", PAGE.read_text(), flags=re.S)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serving_page_runs(workspace: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ports = {"8000": str(_free_port()), "8001": str(_free_port())}
    servers: list[subprocess.Popen[bytes]] = []
    ratchet = [sys.executable, "-m", "ratchet.cli.main"]
    try:
        for language, block in _blocks():
            if language == "python":
                exec(compile(block, "serving.md", "exec"), namespace)
                continue
            if language != "bash":
                continue
            for line in block.strip().splitlines():
                for old, new in ports.items():
                    line = line.replace(f":{old}", f":{new}").replace(f"--port {old}",
                                                                       f"--port {new}")
                if line.startswith("ratchet serve"):
                    args = shlex.split(line.rstrip("& "))[1:]
                    servers.append(subprocess.Popen([*ratchet, *args], cwd=workspace,
                                                    start_new_session=True))
                    port = args[args.index("--port") + 1]
                    wait_until(lambda p=port: _ready(p), timeout=60, what=line)
                elif line.startswith("ratchet "):
                    done = subprocess.run([*ratchet, *shlex.split(line)[1:]], cwd=workspace,
                                          capture_output=True, text=True)
                    assert done.returncode == 0, f"{line}\n{done.stderr}"
                elif line.startswith("curl "):
                    if "…" in line:  # a placeholder request id: the page says so
                        continue
                    done = subprocess.run(shlex.split(line), capture_output=True, text=True)
                    assert (done.returncode == 0 and '"error"' not in done.stdout) or \
                        "does not match" in done.stdout, f"{line}\n{done.stdout}"
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def _ready(port: str) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200
    except httpx.TransportError:
        return False
