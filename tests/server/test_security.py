"""ServerGuard: Host allowlist, content types and Origin on state changes, body limits,
security headers. Fine-grained cases through Starlette's TestClient; the ones that depend
on the wire (Host as sent, chunked bodies, Content-Length before the body) also through a
real uvicorn server on 127.0.0.1, stopped by its handle."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.testclient import TestClient

from ratchet.errors import InvalidInput
from ratchet.server.security import (
    DEFAULT_MAX_BODY_BYTES,
    ServerGuard,
    json_error,
    security_headers,
)
from ratchet.serving.access import default_allowed_hosts

LIMIT = 4096


def _inner_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/things")
    def list_things() -> dict[str, Any]:
        return {"things": []}

    @app.post("/api/v1/things")
    def create_thing(thing: dict[str, Any]) -> dict[str, Any]:
        return {"created": thing}

    @app.delete("/api/v1/things/{name}")
    def delete_thing(name: str) -> dict[str, Any]:
        return {"deleted": name}

    @app.post("/api/v1/raw")
    async def raw(request: Request) -> JSONResponse:
        try:  # a route that swallows every error of its own: the guard's 413 still wins
            size = len(await request.body())
        except Exception:
            return JSONResponse({"swallowed": True}, status_code=400)
        return JSONResponse({"size": size})

    @app.put("/api/v1/blobs/{path:path}")
    async def upload(path: str, request: Request) -> dict[str, Any]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"path": path, "size": size}

    @app.api_route("/api/2.0/mlflow-artifacts/artifacts/{path:path}", methods=["PUT", "POST",
                                                                              "DELETE"])
    async def mlflow_artifact(path: str, request: Request) -> dict[str, Any]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"path": path, "size": size}

    @app.get("/api/v1/cached")
    def cached() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"Cache-Control": "max-age=60"})

    @app.get("/page")
    def page() -> PlainTextResponse:
        return PlainTextResponse("hello")

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text("hi")
        await socket.close()

    return app


def _guarded(**options: Any) -> ServerGuard:
    options.setdefault("allowed_hosts", default_allowed_hosts("127.0.0.1"))
    options.setdefault("max_body_bytes", LIMIT)
    return ServerGuard(_inner_app(), **options)


@pytest.fixture
def client() -> TestClient:
    return TestClient(_guarded(allowed_origins=("https://dash.example",)),
                      base_url="http://127.0.0.1:8765")


def _error(response: Any, status: int, type_name: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and body["error"]["type"] == type_name
    message: str = body["error"]["message"]
    return message


# --- Host ----------------------------------------------------------------------------------

def test_a_host_not_on_the_list_is_421(client: TestClient) -> None:
    message = _error(client.get("/api/v1/things", headers={"Host": "evil.example"}), 421,
                     "MisdirectedRequest")
    assert "'evil.example'" in message and "--allowed-host evil.example" in message
    for host in ("127.0.0.1:8765", "localhost", "LOCALHOST:1", "[::1]:8765"):
        assert client.get("/api/v1/things", headers={"Host": host}).status_code == 200, host
    # Starlette's in-process client and its default Host: no browser can be behind it
    assert TestClient(_guarded()).get("/api/v1/things").status_code == 200


def test_star_allows_any_host_and_suffixes_match() -> None:
    star = TestClient(_guarded(allowed_hosts=("*",)))
    assert star.get("/api/v1/things", headers={"Host": "anything.example"}).status_code == 200
    suffix = TestClient(_guarded(allowed_hosts=("*.team.example",)))
    assert suffix.get("/page", headers={"Host": "ml.team.example"}).status_code == 200
    assert suffix.get("/page", headers={"Host": "team.example.evil"}).status_code == 421


# --- content types -------------------------------------------------------------------------

@pytest.mark.parametrize("content_type, body", [
    ("text/plain", b'{"a": 1}'),                                  # the classic JSON CSRF
    ("application/x-www-form-urlencoded", b"a=1"),
    ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--\r\n"),
    ("text/plain; charset=application/json", b"{}"),              # the type is what counts
    (None, b'{"a": 1}'),
    (None, b""),                                                  # a bodyless no-cors POST
])
def test_state_changes_need_json(client: TestClient, content_type: str | None,
                                 body: bytes) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/v1/things", content=body, headers=headers)
    message = _error(response, 415, "UnsupportedMediaType")
    assert message.startswith("POST /api/v1/things takes Content-Type application/json")


def test_json_state_changes_pass(client: TestClient) -> None:
    response = client.post("/api/v1/things", json={"a": 1})
    assert response.status_code == 200 and response.json() == {"created": {"a": 1}}
    response = client.post("/api/v1/things", content=b'{"b": 2}',
                           headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert response.status_code == 200
    assert client.delete("/api/v1/things/x").json() == {"deleted": "x"}  # no body, no type
    # a DELETE with a body is a state change like any other
    response = client.request("DELETE", "/api/v1/things/x", content=b"a=1",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415


def test_streaming_routes_take_octet_stream_only(client: TestClient) -> None:
    response = client.put("/api/v1/blobs/a/b", content=b"x" * 100,
                          headers={"Content-Type": "application/octet-stream"})
    assert response.json() == {"path": "a/b", "size": 100}
    for content_type in ("text/plain", "application/json", "multipart/form-data; boundary=x"):
        response = client.put("/api/v1/blobs/a/b", content=b"x",
                              headers={"Content-Type": content_type})
        message = _error(response, 415, "UnsupportedMediaType")
        assert "takes Content-Type application/octet-stream" in message
    # a path with dot segments is not a streaming route's (neither the type nor the limit)
    response = client.put("/api/v1/blobs/%2e%2e/blobs/x", content=b"x",
                          headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 415


def test_mlflow_artifact_puts_and_deletes_take_any_type(client: TestClient) -> None:
    """MLflow's client uploads with the file's guessed type; a PUT or DELETE is preflighted
    by any browser whatever its type, so only those two methods are let through."""
    where = "/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/a.png"
    for content_type in ("image/png", "text/plain", "application/octet-stream"):
        response = client.put(where, content=b"x" * (LIMIT + 10),  # streamed: no limit
                              headers={"Content-Type": content_type})
        assert response.json() == {"path": "0/r/artifacts/a.png", "size": LIMIT + 10}
    response = client.request("DELETE", where, content=b"{}",
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    response = client.post(where, content=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415  # a simple request a page could send
    assert response.json()["error_code"] == "BAD_REQUEST"
    response = client.put(where, content=b"x", headers={"Content-Type": "text/plain",
                                                        "Origin": "http://evil.example"})
    assert response.status_code == 403  # Origin still judged; MLflow's error shape there
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert "Origin 'http://evil.example'" in response.json()["message"]


# --- Origin and Sec-Fetch-Site -------------------------------------------------------------

@pytest.mark.parametrize("origin", [
    "http://evil.example", "null", "http://127.0.0.1:9999", "http://localhost:8765",
    "https://dash.example.evil", "http://dash.example", "http://127.0.0.1:8765/path",
    "http://user@127.0.0.1:8765",
])
def test_a_cross_origin_state_change_is_403(client: TestClient, origin: str) -> None:
    response = client.post("/api/v1/things", json={"a": 1}, headers={"Origin": origin})
    message = _error(response, 403, "Forbidden")
    assert message.startswith(f"POST /api/v1/things: Origin {origin!r} is not this server's")


@pytest.mark.parametrize("origin", [
    "http://127.0.0.1:8765",           # the request's own origin
    "HTTP://127.0.0.1:8765",
    "https://dash.example",            # on allowed_origins
    "https://dash.example:443",
])
def test_same_and_allowed_origins_pass(client: TestClient, origin: str) -> None:
    response = client.post("/api/v1/things", json={"a": 1}, headers={"Origin": origin})
    assert response.status_code == 200, response.text


def test_origin_through_a_tls_proxy() -> None:
    """Behind a proxy that ends TLS, the page is https://team.example and the request
    arrives over http with Host team.example: the same site. The reverse (an http page
    posting to an https server) is not."""
    plain = TestClient(_guarded(allowed_hosts=("team.example",)),
                       base_url="http://team.example")
    assert plain.post("/api/v1/things", json={},
                      headers={"Origin": "https://team.example"}).status_code == 200
    secure = TestClient(_guarded(allowed_hosts=("team.example",)),
                        base_url="https://team.example")
    assert secure.post("/api/v1/things", json={},
                       headers={"Origin": "http://team.example"}).status_code == 403


def test_no_origin_is_a_non_browser_client(client: TestClient) -> None:
    assert client.post("/api/v1/things", json={"a": 1}).status_code == 200
    # and reads are not state changes: a cross-origin GET is the browser's same-origin
    # policy's business (the answer is unreadable without CORS)
    assert client.get("/api/v1/things", headers={"Origin": "http://evil.example"}
                      ).status_code == 200


def test_sec_fetch_site_cross_site_is_refused(client: TestClient) -> None:
    response = client.post("/api/v1/things", json={},
                           headers={"Sec-Fetch-Site": "cross-site"})
    assert "Sec-Fetch-Site: cross-site" in _error(response, 403, "Forbidden")
    for site in ("same-origin", "none"):
        assert client.post("/api/v1/things", json={},
                           headers={"Sec-Fetch-Site": site}).status_code == 200
    assert client.get("/api/v1/things", headers={"Sec-Fetch-Site": "cross-site"}
                      ).status_code == 200


def test_websockets_check_host_and_origin(client: TestClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "hi"
    for headers in ({"Origin": "http://evil.example"}, {"Host": "evil.example"}):
        with pytest.raises(WebSocketDisconnect) as exc, \
                client.websocket_connect("/ws", headers=headers):
            pass
        assert exc.value.code == 1008


# --- body limits ---------------------------------------------------------------------------

def test_content_length_over_the_limit_is_413_before_the_body(client: TestClient) -> None:
    response = client.post("/api/v1/things", content=b"[" + b"0," * LIMIT + b"0]",
                           headers={"Content-Type": "application/json"})
    message = _error(response, 413, "ContentTooLarge")
    assert f"limit of {LIMIT:,} bytes for /api/v1/things" in message
    assert response.headers["connection"] == "close"
    ok = client.post("/api/v1/raw", content=b"1" * LIMIT,
                     headers={"Content-Type": "application/json"})
    assert ok.json() == {"size": LIMIT}


@pytest.mark.parametrize("path", ["/api/v1/things", "/api/v1/raw"])
def test_a_chunked_body_is_cut_off_at_the_limit(client: TestClient, path: str) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(100):
            sent.append(i)
            yield b" " * 1000

    response = client.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert "over the server's limit" in _error(response, 413, "ContentTooLarge")


def test_streaming_routes_are_exempt_from_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * LIMIT

    response = client.put("/api/v1/blobs/big", content=chunks(),
                          headers={"Content-Type": "application/octet-stream"})
    assert response.json() == {"path": "big", "size": 20 * LIMIT}


# --- headers and errors --------------------------------------------------------------------

def test_security_headers_on_every_answer(client: TestClient) -> None:
    answers = [client.get("/api/v1/things"), client.get("/page"), client.get("/api/v1/nope"),
               client.post("/api/v1/things", content=b"x", headers={"Content-Type": "text/plain"}),
               client.get("/page", headers={"Host": "evil.example"})]
    for response in answers:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "access-control-allow-origin" not in response.headers
    api = [answers[0], answers[2], answers[3]]
    assert all(r.headers["cache-control"] == "no-store" for r in api)
    assert all("default-src 'none'" in r.headers["content-security-policy"] for r in api)
    assert "cache-control" not in answers[1].headers  # not an API answer
    assert client.get("/api/v1/cached").headers["cache-control"] == "max-age=60"  # kept


def test_json_error_shape() -> None:
    assert json.loads(json_error(403, "Forbidden", "no")) == {
        "error": {"type": "Forbidden", "message": "no"}}
    assert json.loads(json_error(404, "", "gone"))["error"]["type"] == "NotFound"
    with pytest.raises(InvalidInput, match="4xx or 5xx"):
        json_error(200, "Ok", "fine")
    assert dict(security_headers("/api/v1/x"))[b"cache-control"] == b"no-store"
    assert b"cache-control" not in dict(security_headers("/"))


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(InvalidInput, match="allowed_hosts"):
        ServerGuard(_inner_app(), allowed_hosts=())
    with pytest.raises(InvalidInput, match="allowed origin"):
        ServerGuard(_inner_app(), allowed_hosts=("*",), allowed_origins=("*",))
    with pytest.raises(InvalidInput, match="allowed origin"):
        ServerGuard(_inner_app(), allowed_hosts=("*",), allowed_origins=("dash.example",))
    with pytest.raises(InvalidInput, match="max_body_bytes"):
        ServerGuard(_inner_app(), allowed_hosts=("*",), max_body_bytes=0)
    guard = ServerGuard.for_bind(_inner_app(), "10.0.0.5", ["team.example"])
    assert guard.allowed_hosts == ("localhost", "127.0.0.1", "[::1]", "10.0.0.5",
                                   "team.example")
    assert guard.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 8 * 1024 * 1024


# --- a real server -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(_guarded(), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")
    handle = uvicorn.Server(config)
    thread = threading.Thread(target=handle.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not handle.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    handle.should_exit = True
    thread.join(timeout=30)
    assert not thread.is_alive()


def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` bytes as they are; the status, headers and body of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        while len(body) < int(headers.get("content-length", 0)):
            body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def test_live_host_check(server: str) -> None:
    with httpx2.Client(base_url=server) as http:
        assert http.get("/api/v1/things").status_code == 200
        response = http.get("/api/v1/things", headers={"Host": "evil.example"})
        assert _error(response, 421, "MisdirectedRequest")
        assert http.get("/page", headers={"Host": "testserver"}).status_code == 421


def test_live_browser_rules(server: str) -> None:
    with httpx2.Client(base_url=server) as http:
        assert http.post("/api/v1/things", content=b'{"a": 1}',
                         headers={"Content-Type": "text/plain"}).status_code == 415
        assert http.post("/api/v1/things", data={"a": "1"}).status_code == 415
        assert http.post("/api/v1/things", json={"a": 1},
                         headers={"Origin": "http://evil.example"}).status_code == 403
        same = http.post("/api/v1/things", json={"a": 1}, headers={"Origin": server})
        assert same.status_code == 200 and same.json() == {"created": {"a": 1}}
        assert http.post("/api/v1/things", json={"a": 1}).status_code == 200  # no Origin
        upload = http.put("/api/v1/blobs/x", content=b"abc",
                          headers={"Content-Type": "application/octet-stream"})
        assert upload.json() == {"path": "x", "size": 3}
        assert http.put("/api/v1/blobs/x", content=b"abc",
                        headers={"Content-Type": "text/plain"}).status_code == 415
        answer = http.get("/api/v1/things")
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"


def test_live_content_length_is_refused_before_the_body(server: str) -> None:
    """Headers only, a body announced as 1 GB: the answer comes without a byte sent."""
    status, headers, body = _raw(server, (
        b"POST /api/v1/things HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"))
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body)["error"]["type"] == "ContentTooLarge"


def test_live_chunked_body_is_cut_off(server: str) -> None:
    chunk = b"%x\r\n%s\r\n" % (1000, b" " * 1000)
    # 10 chunks (10,000 bytes) without the final zero chunk: the server answers without
    # waiting for the rest of a body it will not take.
    status, headers, body = _raw(server, (
        b"POST /api/v1/raw HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 10))
    assert status == 413 and json.loads(body)["error"]["type"] == "ContentTooLarge"
    assert headers["x-content-type-options"] == "nosniff"

    def chunks() -> Iterator[bytes]:
        yield b" " * 1000

    with httpx2.Client(base_url=server) as http:  # under the limit, chunked: answered
        ok = http.post("/api/v1/raw", content=chunks(),
                       headers={"Content-Type": "application/json"})
        assert ok.json() == {"size": 1000}


def test_it_mounts_as_starlette_middleware_too() -> None:
    app = _inner_app()
    app.add_middleware(ServerGuard, allowed_hosts=("127.0.0.1",), max_body_bytes=LIMIT)
    client = TestClient(app, base_url="http://127.0.0.1")
    assert client.get("/api/v1/things").headers["x-frame-options"] == "DENY"
    assert client.post("/api/v1/things", content=b"{}",
                       headers={"Content-Type": "text/plain"}).status_code == 415

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = client.post("/api/v1/things", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert _error(response, 413, "ContentTooLarge")


def test_a_cut_body_is_a_quiet_ratchet_error_for_the_apps_handlers(
        caplog: pytest.LogCaptureFixture) -> None:
    """An app that logs every unexpected exception (as the server's does) sees the cut
    body as a RatchetError: answered (and replaced by the guard's 413), never logged as a
    crash."""
    import logging

    from ratchet.errors import RatchetError
    from ratchet.server.security import ContentTooLarge

    app = _inner_app()
    seen: list[BaseException] = []

    @app.exception_handler(RatchetError)
    async def ratchet_error(_request: Request, exc: RatchetError) -> JSONResponse:
        seen.append(exc)
        return JSONResponse({"error": {"type": type(exc).__name__, "message": str(exc)}},
                            status_code=exc.http_status)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logging.getLogger("test").error("unexpected error")
        return JSONResponse({}, status_code=500)

    @app.post("/api/v1/parsed")
    async def parsed(request: Request) -> dict[str, Any]:
        return {"keys": len(await request.json())}

    client = TestClient(ServerGuard(app, allowed_hosts=("*",), max_body_bytes=LIMIT))

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    with caplog.at_level(logging.ERROR):
        for path in ("/api/v1/parsed", "/api/v1/things"):  # (FastAPI's own body reading
            response = client.post(path, content=chunks(),  # turns it into a 400)
                                   headers={"Content-Type": "application/json"})
            assert _error(response, 413, "ContentTooLarge")
    assert [type(e) for e in seen] == [ContentTooLarge] and "unexpected" not in caplog.text
