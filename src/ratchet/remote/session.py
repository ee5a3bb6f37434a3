"""One HTTP connection pool to a ratchet server: token, retries, errors as ratchet errors.

Calls that are safe to repeat (reads, and writes carrying an ``Idempotency-Key`` the
server remembers) are retried with exponential backoff on connection failures and on
502/503/504; anything else fails at once. A JSON error body
``{"error": {"type": "NotFound", "message": ...}}`` becomes the ratchet exception of that
name, so remote code handles errors exactly as local code does.
"""

from __future__ import annotations

import random
import threading
import time
from typing import TYPE_CHECKING, Any

from ratchet import errors
from ratchet.errors import ConfigError, RatchetError, StoreUnavailable
from ratchet.redaction import redact_url

if TYPE_CHECKING:
    import httpx2

API_PREFIX = "/api/v1"
RETRY_STATUSES = frozenset({502, 503, 504})
TOKEN_ENV = "RATCHET_TRACKING_TOKEN"


class RemoteSession:
    """A keep-alive connection pool to ``base_url`` (``http(s)://host:port``)."""

    def __init__(self, base_url: str, token: str | None, *, timeout_s: float = 60.0,
                 retries: int = 5, backoff_s: float = 0.2) -> None:
        import httpx2

        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"RATCHET_TRACKING_URI={redact_url(base_url)!r} must be an "
                              "http:// or https:// URL of a `ratchet server`")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        headers = {"User-Agent": "ratchet-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx2.Client(
            headers=headers, timeout=httpx2.Timeout(timeout_s, connect=10.0),
            limits=httpx2.Limits(max_connections=32, max_keepalive_connections=16))
        self._closed = threading.Event()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def call(self, method: str, path: str, *, json_body: bytes | None = None,
             idempotent: bool, headers: dict[str, str] | None = None,
             params: dict[str, Any] | None = None) -> httpx2.Response:
        """Send one request (``json_body`` already encoded); retried only if
        ``idempotent``. Returns the successful response, raises the mapped error."""
        import httpx2

        sent_headers = dict(headers or {})
        if json_body is not None:
            sent_headers["Content-Type"] = "application/json"
        attempts = self.retries + 1 if idempotent else 1
        for attempt in range(attempts):
            try:
                response = self.client.request(method, self.url(path), content=json_body,
                                               headers=sent_headers, params=params)
            except httpx2.TransportError as exc:
                if attempt + 1 < attempts:
                    self._pause(attempt)
                    continue
                raise StoreUnavailable(f"ratchet server {redact_url(self.base_url)} did not "
                                       f"answer {method} {path}: {exc}") from None
            if response.status_code in RETRY_STATUSES and attempt + 1 < attempts:
                self._pause(attempt, response.headers.get("retry-after"))
                continue
            if response.status_code >= 400:
                raise error_from_response(response, f"{method} {path}")
            return response
        raise AssertionError("unreachable")

    def raise_for_error(self, response: httpx2.Response) -> None:
        """Raise the ratchet error an error response stands for (no-op below 400)."""
        if response.status_code >= 400:
            raise error_from_response(response, f"{response.request.method} "
                                                f"{response.request.url.path}")

    def _pause(self, attempt: int, retry_after: str | None = None) -> None:
        delay = self.backoff_s * (2 ** attempt) * (0.5 + random.random())
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 30.0))
        time.sleep(min(delay, 10.0))

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self.client.close()

    def __repr__(self) -> str:
        return f"RemoteSession({redact_url(self.base_url)!r})"


def error_from_response(response: httpx2.Response, what: str) -> RatchetError:
    """The ratchet error a server's error response stands for."""
    message = None
    type_name = None
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            type_name = error.get("type")
            message = error.get("message")
        elif isinstance(body, dict) and isinstance(body.get("detail"), str):
            message = body["detail"]
    except ValueError:
        pass
    if not isinstance(message, str):
        message = f"{what}: HTTP {response.status_code} {response.reason_phrase}"
    cls = getattr(errors, type_name, None) if isinstance(type_name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, RatchetError)):
        cls = _BY_STATUS.get(response.status_code, RatchetError)
    try:
        if cls is errors.TooManyAttempts:
            retry = response.headers.get("retry-after", "60")
            return errors.TooManyAttempts(message, retry_after=int(retry) if retry.isdigit()
                                          else 60)
        if cls is errors.BadRequest:
            return errors.BadRequest(message, status=response.status_code)
        return cls(message)
    except TypeError:  # an error class with a richer constructor
        return RatchetError(message)


_BY_STATUS: dict[int, type[RatchetError]] = {
    400: errors.InvalidInput, 401: errors.Unauthorized, 403: errors.Forbidden,
    404: errors.NotFound, 409: errors.Conflict, 413: errors.InvalidInput,
    415: errors.InvalidInput, 422: errors.InvalidInput, 429: errors.TooManyAttempts,
    503: errors.StoreUnavailable,
}
