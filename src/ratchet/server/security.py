"""What a browser page may not do to the team server, and how big a request may be. A pure
ASGI middleware in front of every route of ``ratchet server``.

A page on any site the user visits can send requests to the server (the user's browser
is inside the network, with its cookies); the defences:

- **Host allowlist** (DNS rebinding): a page on ``evil.example`` whose name is re-pointed
  at the server's address reaches it with ``Host: evil.example``; only the names in the
  allowlist are answered (421 otherwise). Default: the loopback names and the bound
  address (``ratchet.serving.access.default_allowed_hosts``, shared with the model server).
- **Content types** (CSRF): a browser sends a cross-site request without a CORS preflight
  only as a GET/HEAD/POST with ``text/plain``, a form type, multipart or no type. Every
  state change (POST, PUT, PATCH; DELETE with a body) must say ``application/json`` (415
  otherwise), so a page cannot make one without a preflight, which the server never
  grants (it sends no CORS headers). Routes under ``streaming_prefixes`` (blob upload) take
  ``application/octet-stream`` only, which needs a preflight just the same. A DELETE without
  a body needs no type: a browser preflights every cross-site DELETE.
  MLflow's artifact routes (``ANY_TYPE_PREFIXES``) take any type on PUT and DELETE: no
  browser sends a cross-site PUT or DELETE without a preflight.
- **Origin** on state changes: if present it must be the request's own
  ``scheme://host[:port]`` or one of ``allowed_origins`` (403). A page behind a TLS
  proxy (``Origin: https://…`` arriving over plain http) counts as the same origin; the
  reverse does not. ``Sec-Fetch-Site: cross-site`` on a state change is refused as well.
  A request with neither header is a non-browser client (the Python client, curl) and is
  judged by authentication alone.
- **Body limit**: a ``Content-Length`` over ``max_body_bytes`` is a 413 before the body is
  read; a chunked body is counted as it arrives and cut off with a 413 once it passes the
  limit. Streaming routes are exempt (they stream to disk, never into memory).
- **Response headers** on every answer: ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``; on ``/api/`` also
  ``Cache-Control: no-store`` and a ``Content-Security-Policy`` that runs nothing, so an
  answer opened in a tab cannot become a page. A route's own value of a header is kept.

Errors are JSON ``{"error": {"type": ..., "message": ...}}``, the shape of the API's
other errors (``json_error``); under MLflow's paths, MLflow's ``{"error_code", "message"}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ratchet.errors import ContentTooLarge, InvalidInput
from ratchet.server.mlflow.protocol import is_mlflow_path
from ratchet.serving.access import default_allowed_hosts, normalize_host

MiB = 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 8 * MiB
STREAMING_PREFIXES = ("/api/v1/blobs/", "/api/2.0/mlflow-artifacts/artifacts/")
# MLflow's client uploads an artifact with the file's guessed type (text/plain, image/png,
# ...). A PUT or DELETE is never a simple request: a browser preflights it cross-site
# whatever its type, so under these prefixes a PUT or DELETE may carry any type.
ANY_TYPE_PREFIXES = ("/api/2.0/mlflow-artifacts/artifacts/",)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON = b"application/json"
_OCTET = b"application/octet-stream"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Starlette's in-process TestClient: client ("testclient", ...) and Host "testserver";
# no socket, so no browser, can be behind it.
_TEST_CLIENT, _TEST_HOST = "testclient", "testserver"

_ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer"))
_API = ((b"cache-control", b"no-store"),
        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; sandbox"))


def json_error(status: int, type_name: str, message: str) -> bytes:
    """The body of an error answer: ``{"error": {"type": ..., "message": ...}}``.
    ``type_name`` is the error's class name ("Forbidden"); empty, it is derived from
    ``status`` (403 -> "Forbidden", 413 -> "ContentTooLarge")."""
    if not 400 <= status <= 599:
        raise InvalidInput(f"an error answer needs a 4xx or 5xx status, not {status}")
    name = type_name or HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    return json.dumps({"error": {"type": name, "message": message}}).encode()


def mlflow_json_error(status: int, message: str) -> bytes:
    """A refusal in MLflow's shape, for MLflow's clients (``server/mlflow``):
    ``{"error_code": ..., "message": ...}``; the status stays the guard's."""
    code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
            429: "REQUEST_LIMIT_EXCEEDED"}.get(status, "BAD_REQUEST")
    return json.dumps({"error_code": code, "message": message}).encode()


def security_headers(path: str) -> tuple[tuple[bytes, bytes], ...]:
    """The headers every answer on ``path`` carries (unless the route set its own)."""
    return _ALWAYS + _API if path.startswith("/api/") else _ALWAYS


async def respond_error(send: Send, status: int, type_name: str, message: str, *,
                        path: str = "/api/", headers: Iterable[tuple[bytes, bytes]] = ()
                        ) -> None:
    """Send a complete JSON error answer (``json_error``) with the security headers."""
    body = mlflow_json_error(status, message) if is_mlflow_path(path) \
        else json_error(status, type_name, message)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *headers, *security_headers(path)]})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class Refusal:
    status: int
    type_name: str
    message: str
    close: bool = False  # the body may be unread: do not reuse the connection


def _origin_parts(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of ``scheme://host[:port]``; None if it is not one
    (``null``, a path, userinfo)."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/")
            or parts.query or parts.fragment or "@" in parts.netloc):
        return None
    return scheme, normalize_host(parts.netloc), port or _DEFAULT_PORTS[scheme]


def _host_port(raw: str) -> tuple[str, int | None]:
    host = normalize_host(raw)
    rest = raw.strip()[len(host):] if raw.strip().lower().startswith(host) else ""
    if rest.startswith(":") and rest[1:].isdigit():
        return host, int(rest[1:])
    return host, None


class ServerGuard:
    """The middleware: ``ServerGuard(app, allowed_hosts=..., ...)``; see the module doc.

    ``allowed_hosts``: names (``team.example``), addresses, ``*.example.com`` suffixes, or
    ``"*"`` for any Host. ``allowed_origins``: further ``scheme://host[:port]`` origins
    whose pages may make state changes (a dashboard served elsewhere)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: tuple[str, ...],
                 allowed_origins: tuple[str, ...] = (),
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 streaming_prefixes: tuple[str, ...] = STREAMING_PREFIXES) -> None:
        if isinstance(allowed_hosts, str) or not allowed_hosts:
            raise InvalidInput("allowed_hosts: give at least one host name (or '*' for any), "
                               "e.g. default_allowed_hosts('127.0.0.1')")
        if max_body_bytes < 1:
            raise InvalidInput(f"max_body_bytes must be at least 1, not {max_body_bytes}")
        self.app = app
        self.allowed_hosts = tuple(h if h == "*" else normalize_host(h)
                                   for h in allowed_hosts)
        self.any_host = "*" in self.allowed_hosts
        self.hosts = frozenset(h for h in self.allowed_hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:] for h in self.allowed_hosts if h.startswith("*."))
        origins = []
        for origin in allowed_origins:
            parts = _origin_parts(origin.strip())
            if parts is None or origin.strip() == "*":
                raise InvalidInput(f"allowed origin {origin!r}: give scheme://host[:port], "
                                   "e.g. https://dashboard.example (no path, no wildcard)")
            origins.append(parts)
        self.allowed_origins = frozenset(origins)
        self.max_body_bytes = max_body_bytes
        self.streaming_prefixes = tuple(streaming_prefixes)

    @classmethod
    def for_bind(cls, app: ASGIApp, bound_host: str, extra_hosts: Iterable[str] = (),
                 **options: Any) -> ServerGuard:
        """The guard for a server bound to ``bound_host``: the default Host allowlist
        (loopback names, the bound address unless a wildcard) plus ``extra_hosts``."""
        return cls(app, allowed_hosts=default_allowed_hosts(bound_host, extra_hosts),
                   **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = _first_headers(scope)
        refusal = self._host_refusal(scope, headers.get(b"host"))
        if refusal is None and kind == "websocket":  # cross-site WebSocket hijacking
            refusal = self._origin_refusal(scope, headers)
        if kind == "websocket":
            if refusal is not None:
                await send({"type": "websocket.close", "code": 1008,
                            "reason": refusal.message[:120]})
                return
            await self.app(scope, receive, send)
            return
        streaming = self._streaming(path)
        if refusal is None and scope["method"] in STATE_CHANGING:
            refusal = (self._origin_refusal(scope, headers)
                       or self._type_refusal(scope, path, headers, streaming))
        if refusal is None and not streaming:
            refusal = self._length_refusal(path, headers.get(b"content-length"))
        if refusal is not None:
            await respond_error(send, refusal.status, refusal.type_name, refusal.message,
                                path=path, headers=[(b"connection", b"close")]
                                if refusal.close else [])
            return
        await self._forward(scope, receive, send, path, limit=None if streaming
                            else self.max_body_bytes)

    def _streaming(self, path: str) -> bool:
        # Only a path without dot segments: "/api/v1/blobs/../x" is not a blob route's.
        return (path.startswith(self.streaming_prefixes)
                and not any(part in (".", "..") for part in path.split("/")))

    def _host_refusal(self, scope: Scope, raw: bytes | None) -> Refusal | None:
        if self.any_host or raw is None:  # no Host at all (HTTP/1.0): not a browser
            return None
        host = normalize_host(raw.decode("latin-1"))
        if host in self.hosts or (self.suffixes and host.endswith(self.suffixes)):
            return None
        client = scope.get("client")
        if host == _TEST_HOST and client is not None and client[0] == _TEST_CLIENT:
            return None
        return Refusal(421, "MisdirectedRequest",
                       f"this server does not answer for Host {host!r} (allowed: "
                       f"{', '.join(self.allowed_hosts)}); start it with --allowed-host "
                       f"{host} if that is its name")

    def _origin_refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> Refusal | None:
        method = scope.get("method", "GET")
        where = f"{method} {scope.get('path', '')}"
        site = headers.get(b"sec-fetch-site", b"").strip().lower()
        if site == b"cross-site":
            return Refusal(403, "Forbidden", f"{where}: a state change from another site's "
                           "page (Sec-Fetch-Site: cross-site) is refused")
        raw = headers.get(b"origin")
        if raw is None:
            return None  # not a browser (every browser sends Origin on these requests)
        origin = raw.decode("latin-1").strip()
        parts = _origin_parts(origin)
        if parts is not None and (parts in self.allowed_origins
                                  or self._same_origin(scope, parts, headers.get(b"host"))):
            return None
        return Refusal(403, "Forbidden", f"{where}: Origin {origin!r} is not this server's "
                       "origin; a page from another origin cannot change state here (add it "
                       "with --allowed-origin if it is yours)")

    @staticmethod
    def _same_origin(scope: Scope, origin: tuple[str, str, int], raw_host: bytes | None
                     ) -> bool:
        if raw_host is None:
            return False
        o_scheme, o_host, o_port = origin
        scheme = str(scope.get("scheme", "http"))
        scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)  # a page's WebSocket
        # The page's scheme is the request's, or https over an http hop (a TLS proxy).
        if o_scheme != scheme and not (o_scheme == "https" and scheme == "http"):
            return False
        host, port = _host_port(raw_host.decode("latin-1"))
        return o_host == host and o_port == (port or _DEFAULT_PORTS[o_scheme])

    @staticmethod
    def _type_refusal(scope: Scope, path: str, headers: dict[bytes, bytes],
                      streaming: bool) -> Refusal | None:
        media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if scope["method"] == "DELETE" and not media and _no_body(headers):
            return None  # browsers preflight every cross-site DELETE
        if scope["method"] in ("PUT", "DELETE") and streaming \
                and path.startswith(ANY_TYPE_PREFIXES):
            return None
        allowed = _OCTET if streaming else _JSON
        if media == allowed:
            return None
        what = f"Content-Type {media.decode('latin-1')!r}" if media else "no Content-Type"
        return Refusal(415, "UnsupportedMediaType",
                       f"{scope['method']} {path} takes Content-Type {allowed.decode()}, not "
                       f"{what}")

    def _length_refusal(self, path: str, raw: bytes | None) -> Refusal | None:
        if raw is None:
            return None
        text = raw.decode("latin-1").strip()
        if not text.isdigit():
            return Refusal(400, "BadRequest", f"Content-Length {text!r} is not a number",
                           close=True)
        if int(text) > self.max_body_bytes:
            return Refusal(413, "ContentTooLarge", self._too_large(path, int(text)),
                           close=True)
        return None

    def _too_large(self, path: str, size: int | None = None) -> str:
        said = f" ({size:,} bytes)" if size is not None else ""
        return (f"the request body{said} is over the server's limit of "
                f"{self.max_body_bytes:,} bytes for {path}; send less per request (batch "
                "the call) or upload files as artifacts")

    async def _forward(self, scope: Scope, receive: Receive, send: Send, path: str,
                       limit: int | None) -> None:
        added = security_headers(path)
        started = over = False
        received = 0

        async def counted_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if limit is not None and message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise ContentTooLarge(self._too_large(path))
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a cut body (often a 500): ours is sent instead
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", ())}
                missing = [(n, v) for n, v in added if n not in present]
                if missing:
                    message = {**message, "headers": [*message.get("headers", ()), *missing]}
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except ContentTooLarge:
            pass
        except Exception:
            if not over:
                raise
        if over and not started:
            await respond_error(send, 413, "ContentTooLarge", self._too_large(path),
                                path=path, headers=[(b"connection", b"close")])


def _first_headers(scope: Scope) -> dict[bytes, bytes]:
    """Each header's first value (what Starlette's ``request.headers[...]`` returns, so the
    guard judges the value the route will use)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", ()):
        found.setdefault(name.lower(), value)
    return found


def _no_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length", b"0").strip()
    return b"transfer-encoding" not in headers and length in (b"", b"0")


__all__ = ["DEFAULT_MAX_BODY_BYTES", "STREAMING_PREFIXES", "ContentTooLarge", "Refusal",
           "ServerGuard",
           "json_error", "respond_error", "security_headers"]
