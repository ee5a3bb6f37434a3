"""The request pipeline every inference route shares, and the server's error replies.

``Answering.handle`` takes a request from its headers and a way to read its body, and
returns (status, body, headers): a request id (the client's ``X-Request-ID`` when it is
well-formed, else a new one), a wait for the first model (up to ``startup_wait_s``), the
body read within ``max_body_bytes``, parsed (in a thread when large), answered through the
micro-batcher and rendered. A :class:`~ratchet.errors.RatchetError` that ends a request is
answered with its ``http_status`` and ``{"error", "request_id", "detail"}``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ratchet.errors import (
    BadRequest,
    ModelFailed,
    RatchetError,
    RequestInvalid,
    StoreUnavailable,
)
from ratchet.ids import new_id
from ratchet.serving.response_formats import encode

if TYPE_CHECKING:
    from ratchet.serving.deployment_watcher import RoutingTable
    from ratchet.serving.request_formats import ParsedRequest
    from ratchet.serving.server_state import ServerState

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
THREAD_FROM_ROWS = 64
THREAD_FROM_BYTES = 64 * 1024
JSON = "application/json"

Reply = tuple[int, bytes, dict[str, str]]
Header = Callable[[str], str | None]
# parse(body, content type, the model's input names, *, limits) -> ParsedRequest
Parse = Callable[..., "ParsedRequest"]
# render(answer, parsed) -> a JSON-able dict, or an OIP BinaryReply
Render = Callable[..., Any]
# pin(routing table) -> that table narrowed to one version, or None when it is gone
Pin = Callable[["RoutingTable"], "RoutingTable | None"]


def failure(status: int, message: str, request_id: str,
            problems: list[dict[str, Any]] | None = None) -> Reply:
    body: dict[str, Any] = {"error": message, "request_id": request_id}
    if problems is not None:
        body["detail"] = problems
    return status, json.dumps(body).encode(), {"x-request-id": request_id}


def error_reply(exc: RatchetError, request_id: str) -> Reply:
    """The reply to an error that ended a request: its ``http_status``, its message and,
    for a body that could not be taken, each problem found."""
    return failure(exc.http_status, str(exc), request_id,
                   exc.problems if isinstance(exc, BadRequest) else None)


def response(reply: Reply) -> Response:
    status, body, headers = reply
    return Response(body, status, media_type=JSON, headers=headers)


def check_length(length: str | None, limit: int) -> None:
    """413 at once for a declared Content-Length over ``limit``."""
    if length is not None and length.isdigit() and int(length) > limit:
        raise BadRequest(f"the body is {length} bytes; the limit is {limit}", status=413)


def over_limit(limit: int) -> BadRequest:
    return BadRequest(f"the body is over the limit of {limit} bytes", status=413)


class Answering:
    """The inference pipeline of one running server."""

    def __init__(self, server: ServerState) -> None:
        self.server = server

    async def read_body(self, request: Request) -> bytes:
        """The body, refused (413) as soon as it passes the limit: a client that sends no
        Content-Length, or a false one, cannot make the server buffer more than that."""
        limit = self.server.config.max_body_bytes
        check_length(request.headers.get("content-length"), limit)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise over_limit(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def first_table(self) -> RoutingTable | None:
        """While the first model loads, a request waits for it (up to startup_wait_s);
        a load that failed for good is answered at once."""
        watcher = self.server.watcher
        deadline = time.monotonic() + self.server.config.startup_wait_s
        while (watcher.table is None and not watcher.permanent_error
               and time.monotonic() < deadline):
            await asyncio.sleep(0.02)
        return watcher.table

    async def handle(self, header: Header, read: Callable[[], Awaitable[bytes]],
                     parse: Parse, render: Render, pin: Pin | None = None) -> Reply:
        server = self.server
        metrics = server.metrics
        started = time.perf_counter()
        arrival_ms = time.time_ns() // 1_000_000
        supplied = header("x-request-id")
        request_id = supplied if supplied and REQUEST_ID.match(supplied) else new_id()
        table = server.watcher.table or await self.first_table()
        if table is None:
            watcher = server.watcher
            if watcher.permanent_error:
                return failure(503, f"the model cannot be loaded: {watcher.permanent_error}",
                               request_id)
            return failure(503, "the model is not loaded yet; retry shortly"
                           + (f" ({watcher.last_error})" if watcher.last_error else ""),
                           request_id)
        if pin is not None and (table := pin(table)) is None:  # OIP: a version gone since
            return failure(404, "that model version is no longer served here", request_id)
        metrics.inflight_now.inc()
        try:
            try:
                body = await read()
                content_type = header("content-type") or JSON
                # Parsing is bounded by the primary's limits while it runs (columns, rows).
                validator = table.routes[0].model.validator
                names, limits = validator.names, validator.parse_limits
                parsed = (await run_in_threadpool(parse, body, content_type, names,
                                                  limits=limits)
                          if len(body) > THREAD_FROM_BYTES
                          else parse(body, content_type, names, limits=limits))
                answer = await server.service.answer_async(
                    table, parsed, request_id, arrival_ms, started, server.batcher.predict,
                    offload=parsed.n_rows >= THREAD_FROM_ROWS or table.reads_features)
            except BadRequest as exc:
                if not isinstance(exc, RequestInvalid):  # those the service counted
                    metrics.rejected(exc.problems)
                    metrics.observe(table.routes[0].model, "invalid", 0.0)
                return error_reply(exc, request_id)
            except (ModelFailed, StoreUnavailable) as exc:  # 500; 503 (online features)
                return error_reply(exc, request_id)
            if parsed.n_rows >= THREAD_FROM_ROWS:
                out, extra = await run_in_threadpool(lambda: encode(render(answer, parsed)))
            else:
                out, extra = encode(render(answer, parsed))
            metrics.observe(answer.model, "ok", time.perf_counter() - started)
            ref = answer.model.ref
            return 200, out, {**extra, "x-request-id": request_id, "x-model-name": ref.name,
                              "x-model-version": str(ref.version)}
        finally:
            metrics.inflight_now.dec()

    async def route(self, request: Request, parse: Parse, render: Render,
                    pin: Pin | None = None) -> Response:
        """``handle`` for a Starlette request (the routes behind the fast path)."""
        return response(await self.handle(request.headers.get,
                                          lambda: self.read_body(request),
                                          parse, render, pin))

