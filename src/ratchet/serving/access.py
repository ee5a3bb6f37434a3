"""Who may talk to the model server: Host allowlist, content types, bearer tokens, and a
cap on requests in flight. A pure ASGI middleware (no per-request objects), in front of
every route.

- **Host allowlist** (DNS rebinding): a page on ``evil.example`` whose name is re-pointed
  at 127.0.0.1 reaches a loopback server with ``Host: evil.example``; only the names in
  the allowlist are answered (421 otherwise). Default: the loopback names. Health and
  metrics routes are exempt: Kubernetes probes and Prometheus send the pod's IP as Host,
  and what they answer is harmless to read.
- **Content types** (cross-site requests): a browser sends a cross-origin POST without a
  CORS preflight only as ``text/plain``, form-encoded, multipart, or with no type at all.
  Every POST must say ``application/json`` (``/invocations``: or ``text/csv``), else 415,
  so a page can neither write feedback nor fill the prediction log. The Open Inference
  Protocol's infer routes also take ``application/octet-stream`` (the binary data
  extension, which needs a CORS preflight), and no Content-Type from a caller that sends
  no ``Origin`` (not a browser: every browser sends one on a POST), as the official
  Triton client does.
- **Bearer tokens**: when tokens are configured, ``/feedback`` (the state-changing route)
  needs ``Authorization: Bearer <token>`` (401 otherwise); with ``protect="predict"``
  every route but health and metrics does. Tokens are compared in constant time.
- **Requests in flight**: past ``max_in_flight`` concurrent requests the server answers
  503 at once (with ``Retry-After``) instead of queueing without bound.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratchet.errors import InvalidInput

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
TOKEN_ENV = "RATCHET_SERVE_TOKEN"
# Open to anyone who can reach the port, whatever the Host, token or load: probes and
# scrapers must work, and these routes neither change state nor reveal inputs.
OPEN_PATHS = frozenset({"/health/live", "/health/ready", "/v2/health/live",
                        "/v2/health/ready", "/ping", "/metrics"})
STATE_CHANGING_PATHS = frozenset({"/feedback"})
_JSON = b"application/json"
_CSV = b"text/csv"
_OCTET = b"application/octet-stream"
TOKEN_RECHECK_S = 1.0


@dataclass(frozen=True)
class AccessPolicy:
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS  # "*" allows any Host
    token_file: str | None = None      # one token a line; re-read when it changes
    protect: str = "feedback"          # "feedback" or "predict" (all but health/metrics)
    max_in_flight: int = 1024

    def __post_init__(self) -> None:
        if self.protect not in ("feedback", "predict"):
            raise InvalidInput(f"auth scope must be 'feedback' or 'predict', not "
                               f"{self.protect!r}")
        if self.max_in_flight < 1:
            raise InvalidInput("the limit of requests in flight must be at least 1")


def normalize_host(host: str) -> str:
    """``Host``-header form of a name or address: lower case, IPv6 in brackets, no port."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[:host.index("]") + 1] if "]" in host else host
    if host.count(":") > 1:  # a bare IPv6 address
        return f"[{host}]"
    return host.split(":", 1)[0]


def default_allowed_hosts(bound_host: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The loopback names, the bound address unless it is a wildcard, and ``extra``."""
    hosts = list(LOOPBACK_HOSTS)
    if bound_host not in ("0.0.0.0", "::", ""):
        hosts.append(bound_host)
    hosts.extend(extra)
    return tuple(dict.fromkeys(h if h == "*" else normalize_host(h) for h in hosts))


class TokenSet:
    """The tokens in a file (one a line; blank lines and ``#`` comments skipped), or in
    ``RATCHET_SERVE_TOKEN`` (comma-separated). The file is re-read when it changes, so a
    rotated Kubernetes Secret takes effect without a restart."""

    def __init__(self, path: str | None, env_value: str | None = None) -> None:
        self.path = Path(path) if path else None
        self._env = [t.strip().encode() for t in (env_value or "").split(",") if t.strip()]
        self._tokens: list[bytes] = list(self._env)
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        if self.path is not None:
            self._reload()
            if not self._tokens:
                raise InvalidInput(f"token file {self.path} has no token; put one token a "
                                   f"line (e.g. `openssl rand -hex 32 > {self.path}`)")

    @classmethod
    def from_environment(cls, path: str | None) -> TokenSet | None:
        env_value = os.environ.get(TOKEN_ENV)
        if not path and not (env_value and env_value.strip()):
            return None
        return cls(path, env_value)

    def _reload(self) -> None:
        assert self.path is not None
        try:
            stat = self.path.stat()
            text = self.path.read_text()
        except OSError as exc:
            if self._stamp is None:
                raise InvalidInput(f"cannot read token file {self.path}: {exc}") from None
            return  # keep the tokens we have (e.g. a Secret being swapped)
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        tokens = [line.strip().encode() for line in text.splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
        if tokens:
            self._tokens = tokens + self._env

    def _fresh(self) -> list[bytes]:
        now = time.monotonic()
        if self.path is not None and now - self._checked >= TOKEN_RECHECK_S:
            self._checked = now
            try:
                stat = self.path.stat()
                if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                    self._reload()
            except OSError:
                pass
        return self._tokens

    def accepts(self, authorization: bytes | None) -> bool:
        if not authorization or authorization[:7].lower() != b"bearer ":
            return False
        given = authorization[7:].strip()
        ok = False
        for token in self._fresh():  # every token compared: no early exit on a match
            ok |= hmac.compare_digest(given, token)
        return ok


class AccessGuard:
    """The middleware: ``AccessGuard(app, policy, tokens)``."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy, tokens: TokenSet | None) -> None:
        self.app = app
        self.policy = policy
        self.tokens = tokens
        self.any_host = "*" in policy.allowed_hosts
        self.hosts = frozenset(h for h in policy.allowed_hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:] for h in policy.allowed_hosts if h.startswith("*."))
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        host = authorization = content_type = origin = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"host":
                host = value
            elif name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
        # Starlette's TestClient calls the app in-process (client "testclient", never an
        # address a socket gives): no browser can be behind it.
        client = scope.get("client")
        if client is not None and client[0] == "testclient":
            host = None
        refusal = (self._host_refusal(host)
                   or self._type_refusal(scope, path, content_type, origin)
                   or self._auth_refusal(path, authorization))
        if refusal is not None:
            await _respond(send, *refusal)
            return
        if self.in_flight >= self.policy.max_in_flight:
            await _respond(send, 503, f"the server is at its limit of "
                           f"{self.policy.max_in_flight} requests in flight; retry shortly",
                           [(b"retry-after", b"1")])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _host_refusal(self, raw: bytes | None) -> tuple[int, str] | None:
        if self.any_host or raw is None:  # no Host at all: not a browser
            return None
        host = normalize_host(raw.decode("latin-1"))
        if host in self.hosts or (self.suffixes and host.endswith(self.suffixes)):
            return None
        return 421, (f"this server does not answer for host {host!r} (allowed: "
                     f"{', '.join(self.policy.allowed_hosts)}); start it with "
                     f"--allowed-host {host} to allow it")

    @staticmethod
    def _type_refusal(scope: Scope, path: str, raw: bytes | None,
                      origin: bytes | None = None) -> tuple[int, str] | None:
        if scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            return None
        media = (raw or b"").split(b";", 1)[0].strip().lower()
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            allowed: tuple[bytes, ...] = (_JSON, _OCTET)
            if not media and origin is None:  # not from a browser
                return None
        else:
            allowed = (_JSON, _CSV) if path == "/invocations" else (_JSON,)
        if media in allowed:
            return None
        what = f"Content-Type {media.decode('latin-1')!r}" if media else "no Content-Type"
        return 415, (f"{path} takes Content-Type "
                     f"{' or '.join(a.decode() for a in allowed)}, not {what}")

    def _auth_refusal(self, path: str, authorization: bytes | None
                      ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        if self.tokens is None:
            return None
        if path not in STATE_CHANGING_PATHS and self.policy.protect != "predict":
            return None
        if self.tokens.accepts(authorization):
            return None
        return 401, (f"{path} needs a bearer token: send Authorization: Bearer <token>"
                     if authorization is None else "the bearer token is not valid"), [
            (b"www-authenticate", b'Bearer realm="ratchet"')]


async def _respond(send: Send, status: int, message: str,
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
