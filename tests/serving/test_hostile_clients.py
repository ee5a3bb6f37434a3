"""`ratchet serve` against hostile clients, over real loopback sockets: half-sent headers,
idle and slow partial requests, a huge header, DNS rebinding, cross-site simple POSTs,
missing and wrong bearer tokens."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from ratchet.config import Settings
from ratchet.workspace import Workspace
from tests.serving.conftest import ROW, register_churn, running_server

HALF_OPEN = 300
TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """One `ratchet serve` of the churn champion for the module (each hostile client
    leaves it as it found it: its sockets closed, nothing but predictions written), and
    the settings of its workspace."""
    root = tmp_path_factory.mktemp("hostile")
    home = root / "home"
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                        artifacts_uri=str(home / "artifacts"))
    register_churn(settings)
    tokens = root / "tokens"
    tokens.write_text(f"# serving tokens\n{TOKEN}\nsecond-token\n")
    with running_server(settings, root, "churn@champion", "--timeout-header", "2",
                        "--timeout-body", "2", "--token-file", str(tokens),
                        "--log-flush", "0.1") as url:
        yield url, settings


@pytest.fixture
def server(served: tuple[str, Settings]) -> str:
    return served[0]


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _closed_by_server(sock: socket.socket, within_s: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it stayed open."""
    sock.settimeout(within_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


@contextlib.contextmanager
def _half_sent(address: tuple[str, int], n: int) -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.create_connection(address, timeout=5)
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def test_half_sent_headers_do_not_lock_out_real_clients(server: str) -> None:
    address = _address(server)
    with _half_sent(address, HALF_OPEN) as socks, httpx.Client(base_url=server) as client:
        r = client.post("/predict", json={"inputs": [ROW]})
        assert r.status_code == 200, r.text
        assert client.get("/health/live").status_code == 200
        # ... and the server lets go of them once their headers are overdue (2 s here).
        assert _closed_by_server(socks[0], within_s=20) is not None
        assert all(_closed_by_server(s, within_s=5) is not None for s in socks[-5:])


def test_idle_and_slow_partial_requests_are_closed(server: str) -> None:
    address = _address(server)
    with socket.create_connection(address, timeout=5) as idle:
        answer = _closed_by_server(idle, within_s=20)  # connected, sent nothing
        assert answer is not None
    with socket.create_connection(address, timeout=5) as partial:
        partial.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answer = _closed_by_server(partial, within_s=20)
        assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
    with socket.create_connection(address, timeout=5) as slow:  # one header byte a second
        slow.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: ")
        deadline = time.monotonic() + 20
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                slow.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            slow.settimeout(1)
            with contextlib.suppress(TimeoutError):
                closed = slow.recv(65536) is not None  # the 408 (or EOF): it let go
        assert closed
    with socket.create_connection(address, timeout=5) as stalled_body:
        stalled_body.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        answer = _closed_by_server(stalled_body, within_s=20)
        assert answer is not None and b" 408 " in answer.split(b"\r\n")[0], answer


def test_a_huge_header_is_refused_not_buffered(server: str) -> None:
    with socket.create_connection(_address(server), timeout=10) as sock:
        try:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
                         + b"a" * (1024 * 1024) + b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return  # the server closed it while we were still sending: refused
        answer = _closed_by_server(sock, within_s=10)
    assert answer is not None
    assert answer == b"" or answer.split(b"\r\n")[0] in (b"HTTP/1.1 431 Request Header Fields "
                                                           b"Too Large", b"HTTP/1.1 400 Bad "
                                                           b"Request"), answer[:200]
    assert httpx.get(f"{server}/health/live").status_code == 200


def test_dns_rebinding_host_is_refused(server: str) -> None:
    evil = {"Host": "rebind.attacker.example:8000"}
    with httpx.Client(base_url=server) as client:
        r = client.post("/predict", json={"inputs": [ROW]}, headers=evil)
        assert r.status_code == 421 and "--allowed-host" in r.json()["error"]
        assert client.get("/v2/models/churn", headers=evil).status_code == 421
        assert client.get("/openapi.json", headers=evil).status_code == 421
        # Probes and scrapers (which send a pod IP as Host) still get through.
        assert client.get("/health/ready", headers=evil).status_code == 200
        for host in ("localhost", "127.0.0.1:1234", "[::1]:80"):
            assert client.get("/v2/models/churn", headers={"Host": host}).status_code == 200


def test_cross_site_posts_and_tokens(served: tuple[str, Settings]) -> None:
    from ratchet.serving.prediction_query import predictions

    server, serving_settings = served

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server) as client:
        request_id = client.post("/predict", json={"inputs": [ROW, ROW]}).json()["request_id"]
        feedback = f'{{"request_id": "{request_id}", "row": 0, "value": 1}}'
        # What a page on another origin can send without a preflight: text/plain, a form,
        # or no type at all. Refused before the token is even looked at.
        for headers in ({"Content-Type": "text/plain"}, {"Content-Type":
                         "application/x-www-form-urlencoded"}, {}):
            r = client.post("/feedback", content=feedback, headers={**headers, **auth})
            assert r.status_code == 415, r.text
            r = client.post("/predict", content='{"inputs": [{}]}', headers=headers)
            assert r.status_code == 415, r.text
        csv = client.post("/invocations", content="age,income,plan\n52,61.5,pro\n",
                          headers={"Content-Type": "text/csv"})
        assert csv.status_code == 200, csv.text
        # Tokens: none, wrong, right.
        json_type = {"Content-Type": "application/json"}
        none = client.post("/feedback", content=feedback, headers=json_type)
        assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
        wrong = client.post("/feedback", content=feedback,
                            headers={**json_type, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = client.post("/feedback", content=feedback.replace('"row": 0', '"row": 1'),
                            headers={**json_type, **auth})
        assert right.status_code == 200 and right.json() == {"recorded": 1}, right.text
        # Tokens guard state changes only (by default): predictions need none.
        assert client.post("/predict", json={"inputs": [ROW]}).status_code == 200
    time.sleep(0.5)  # the prediction log flushes every 0.1 s
    logged = predictions("churn", workspace=Workspace(serving_settings), with_feedback=True)
    labelled = logged.dropna(subset=["feedback"])
    assert list(zip(labelled.request_id, labelled.row, strict=True)) == [(request_id, 1)]


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    """`ratchet serve` calls this before uvicorn starts; a process started with the
    common soft limit of 256/1,024 ends up at its hard limit (workers inherit it)."""
    import subprocess
    import sys

    code = ("import resource\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
            "from ratchet.serving.connection_limits import raise_open_files_limit\n"
            "raise_open_files_limit()\n"
            "print(*resource.getrlimit(resource.RLIMIT_NOFILE))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    soft, hard = (int(v) for v in out)
    assert soft == hard or hard == -1
