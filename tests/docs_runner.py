"""Run one docs page's examples in page order: python blocks in one namespace, then each
shell line of the bash blocks that follow them (`ratchet ...`, `ratchet serve ... &` on a
free port, `curl ...` against it).

Standard library only: tests/test_plain_install.py runs it with the python of a fresh venv
that has nothing but the ratchet wheel (`python tests/docs_runner.py PAGE` in an empty
project directory), so a page that needs more than a plain install fails there.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SKIP_COMMANDS = ("export ", "ratchet db upgrade")  # need a PostgreSQL/S3 target


def blocks(path: Path, language: str | None = None) -> list[tuple[str, str]]:
    """(language, code) of the fenced blocks in page order, optionally of one language."""
    found = re.findall(r"```(\w*)\n(.*?)```", path.read_text(), flags=re.S)
    return [(lang, code) for lang, code in found if language is None or lang == language]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def run_page(page: Path, ratchet: list[str]) -> None:
    """Run ``page``'s examples in the current directory; ``ratchet`` is the command line
    that starts the CLI. Raises AssertionError naming the first line that failed."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ports: dict[str, str] = {}
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for language, block in blocks(page):
            if language == "python":
                for old, new in ports.items():  # a server the page started on a free port
                    block = block.replace(f":{old}", f":{new}")
                exec(compile(block, page.name, "exec"), namespace)
            elif language == "bash":
                for line in block.strip().splitlines():
                    _run_line(line, ratchet, ports, servers)
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def _run_line(line: str, ratchet: list[str], ports: dict[str, str],
              servers: list[subprocess.Popen[bytes]]) -> None:
    line = line.split("  #")[0].strip()
    for old, new in ports.items():
        line = line.replace(f":{old}/", f":{new}/").replace(f"--port {old}", f"--port {new}")
    if line.startswith(("ratchet serve", "ratchet ui ")):  # a server: in the background
        args = shlex.split(line.rstrip("& "))[1:]
        port = args[args.index("--port") + 1]
        ports[port] = str(_free_port())
        args[args.index("--port") + 1] = ports[port]
        servers.append(subprocess.Popen([*ratchet, *args], start_new_session=True))
        deadline = time.monotonic() + 60
        while not _ready(ports[port]):
            assert time.monotonic() < deadline, f"{line}: not ready after 60 s"
            assert servers[-1].poll() is None, f"{line}: exited {servers[-1].returncode}"
            time.sleep(0.1)
    elif line.startswith("ratchet ") and not line.startswith(SKIP_COMMANDS):
        done = subprocess.run([*ratchet, *shlex.split(line)[1:]], capture_output=True,
                              text=True)
        assert done.returncode == 0, f"{line}\n{done.stderr}"
    elif line.startswith("curl ") and "…" not in line:  # "…": a placeholder the page names
        done = subprocess.run(shlex.split(line), capture_output=True, text=True)
        failed = '"error"' in done.stdout and '"error":null' not in done.stdout.replace(" ", "")
        assert (done.returncode == 0 and not failed) or \
            "does not match" in done.stdout, f"{line}\n{done.stdout}"


if __name__ == "__main__":
    # The venv's own `ratchet` entry point: the console script is part of what installs.
    run_page(Path(sys.argv[1]), [str(Path(sys.executable).parent / "ratchet")])
