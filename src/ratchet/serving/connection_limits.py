"""Connection-level limits uvicorn's httptools protocol does not have: a cap on the size of
a request's line and headers, and deadlines for clients that send them (or the body) too
slowly.

uvicorn closes a keep-alive connection that stays silent, but a client that sends one byte
of a request and then nothing (or a byte every few seconds, "slowloris") holds its
connection, a file descriptor and a parser forever, and llhttp buffers headers without a
limit. :class:`GuardedHttpToolsProtocol` (passed to uvicorn as ``http=``) adds:

- ``max_header_bytes``: request line + headers larger than this get ``431`` and the
  connection is closed;
- ``header_timeout_s``: a connection must finish a request's line and headers within this
  many seconds of opening it (or of its previous response): else ``408`` and closed;
- ``body_timeout_s``: while a body is incomplete, a client silent this long is cut off
  (``408``).

The limits are process-wide (:func:`configure`), set before uvicorn starts serving: by
``ratchet serve`` in a single worker, by the app factory in each worker otherwise.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S


_limits = ConnectionLimits()


def configure(limits: ConnectionLimits) -> None:
    global _limits
    _limits = limits


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files to its hard limit (children inherit
    it): with the common default of 1,024, a thousand idle connections exhaust the server
    and it starts refusing everyone. Returns (soft, hard) after the change."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # e.g. a platform cap below the hard limit: serve with what we have
    return soft, hard


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _limits
        self._in_head = True          # between a request's first byte and its headers' end
        self._head_bytes = 0
        self._in_body = False
        self._deadline: Any = None    # asyncio.TimerHandle

    # ------------------------------------------------------------------ timers
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._in_body and self.flow is not None and self.flow.read_paused:
            self._arm(self.limits.body_timeout_s)  # we stopped reading, not the client
            return
        self._refuse(408, "request timeout: the request was not sent in time")

    def _refuse(self, status: int, message: str) -> None:
        self._disarm()
        body = message.encode("ascii")
        self.transport.write(b"".join([
            STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: ", str(len(body)).encode("ascii"), b"\r\n",
            b"connection: close\r\n\r\n", body]))
        self.transport.close()

    # ------------------------------------------------------------------ uvicorn hooks
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and self.parser is not None and not self.transport.is_closing():
            # Counted after parsing, so a chunk that also holds the body is not held
            # against the headers once they completed in it.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, f"request line and headers are over the limit of "
                                  f"{self.limits.max_header_bytes} bytes")
        elif self._in_body:
            self._arm(self.limits.body_timeout_s)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        if self._deadline is None:
            self._arm(self.limits.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._arm(self.limits.body_timeout_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        if self.cycle is not None and self.cycle.response_complete:
            # Answered before the body was read (e.g. refused): the next request's clock.
            self._in_head, self._head_bytes = True, 0
            self._arm(self.limits.header_timeout_s)
        else:
            self._disarm()  # the app has the request now; no deadline while it answers
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's headers are due within the header timeout; uvicorn's own
        # keep-alive timer (shorter) closes a silent connection before that.
        self._in_head, self._head_bytes = True, 0
        if not self.transport.is_closing():
            self._arm(self.limits.header_timeout_s)
