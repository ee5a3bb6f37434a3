"""The inference POSTs, answered in front of Starlette's router.

Starlette's routing, request objects and exception layers cost about as much as a
one-row prediction, so ``/predict``, ``/invocations`` and OIP infer (for a served name)
are answered by this pure ASGI middleware; everything else passes through to the routes,
which document the same paths in OpenAPI and answer them when the app is mounted. Both
run the same :meth:`Answering.handle`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ratchet.errors import BadRequest
from ratchet.serving.routes import predict
from ratchet.serving.routes.answering import JSON, check_length, over_limit
from ratchet.serving.routes.oip import infer_path

if TYPE_CHECKING:
    from ratchet.serving.routes.answering import Answering
    from ratchet.serving.routes.oip import OipModels


class FastPath:
    def __init__(self, app: Any, *, answering: Answering, oip: OipModels) -> None:
        self.app = app
        self.answering = answering
        self.oip = oip
        self.limit = answering.server.config.max_body_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        found: Any = None
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            found = predict.ROUTES.get(path)
            if found is None and (named := infer_path(path)) is not None \
                    and self.oip.served(*named) is not None:
                # ``header`` is bound below, before the body is parsed.
                found = self.oip.infer(*named, lambda n: header(n))
        if found is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self.limit

        def header(name: str) -> str | None:
            value = headers.get(name.encode())
            return None if value is None else value.decode("latin-1")

        async def read() -> bytes:
            check_length(header("content-length"), limit)
            chunks, size, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise BadRequest("the client went away", status=400)
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise over_limit(limit)
                chunks.append(chunk)
                more = message.get("more_body", False)
            return b"".join(chunks)

        status, body, extra = await self.answering.handle(header, read, *found)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", extra.pop("content-type", JSON).encode()),
            (b"content-length", str(len(body)).encode()),
            *((k.encode(), v.encode("latin-1")) for k, v in extra.items())]})
        await send({"type": "http.response.body", "body": body})
