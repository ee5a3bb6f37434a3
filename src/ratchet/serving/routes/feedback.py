"""``/feedback``: ground truth for predictions this deployment made.

The route parses the body and calls :meth:`DeploymentClient.record_feedback`, which holds
the rules (``ratchet.serving.feedback``). What belongs to the server process stays here:
one body's log lookup at a time (bodies queue, the event loop does not), a second look
after one flush interval for items a sibling worker may still hold in its buffer (``ratchet
serve --workers N``), and the ``ratchet_feedback_rejected`` counter.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ratchet.errors import BadRequest
from ratchet.ids import new_id
from ratchet.serving import api_schema
from ratchet.serving.feedback import FeedbackItem, FeedbackOutcome, FeedbackPolicy, parse_items
from ratchet.serving.request_formats import decode_json
from ratchet.serving.routes.answering import JSON, error_reply, failure, response

if TYPE_CHECKING:
    from ratchet.serving.deployments import DeploymentClient
    from ratchet.serving.routes.answering import Answering
    from ratchet.serving.server_state import ServerState


class FeedbackDesk:
    """Takes ``/feedback`` bodies for one served deployment."""

    def __init__(self, server: ServerState, policy: FeedbackPolicy | None = None) -> None:
        from prometheus_client import Counter

        from ratchet.serving.deployments import DeploymentClient

        assert server.workspace is not None
        self.server = server
        self.client: DeploymentClient = server.workspace.client(DeploymentClient)
        self.policy = policy or FeedbackPolicy()
        config = server.config
        interval = config.log_flush_interval_s if config.log_flush_interval_s > 0 else 1.0
        # ``ratchet serve --workers N`` (N > 1) shares metrics through this directory: the
        # sign that a sibling may hold the prediction in its buffer.
        siblings = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.recheck_after_s = min(interval, 5.0) + 0.25 if siblings else 0.0
        self._reading = asyncio.Lock()
        self.rejected_counter = Counter(
            "ratchet_feedback_rejected", "Feedback items not recorded, by reason "
            "(unknown: no such logged prediction of this deployment; label: not one of "
            "the model's classes).", ["deployment", "reason"],
            registry=server.metrics.registry)

    def classes(self) -> list[Any] | None:
        """The classes of every model served, when all are classifiers (else no check)."""
        table = self.server.watcher.table
        if table is None:
            return None
        found: list[Any] = []
        for route in table.all_routes:
            if route.model.classes is None:
                return None
            found += [c for c in route.model.classes if c not in found]
        return found

    async def take(self, payload: Any) -> FeedbackOutcome:
        """Record a decoded ``/feedback`` body; BadRequest if it is malformed."""
        items = parse_items(payload, self.policy)
        outcome = await self._record(items)
        if outcome.unknown and self.recheck_after_s > 0:
            await asyncio.sleep(self.recheck_after_s)  # a sibling worker's buffer
            again = outcome.unknown
            outcome = outcome.merged(await self._record(
                [item for item in items if item.index in again]))
        for r in outcome.rejected:
            self.rejected_counter.labels(self.server.deployment, r["reason"]).inc()
        return outcome

    async def _record(self, items: list[FeedbackItem]) -> FeedbackOutcome:
        async with self._reading:  # one log read at a time: bodies queue, the server not
            return await run_in_threadpool(
                lambda: self.client.record_feedback(
                    self.server.deployment, items, classes=self.classes(),
                    live_log=self.server.log, policy=self.policy))


def router(server: ServerState, answering: Answering) -> APIRouter:
    routes = APIRouter(tags=["feedback"])
    desks: list[FeedbackDesk] = []  # made on the first body

    @routes.post("/feedback", summary="Record ground truth for predictions",
                 openapi_extra=api_schema.body("FeedbackRequest"),
                 response_model=api_schema.FeedbackResponse,
                 responses={**api_schema.ERRORS, **api_schema.FEEDBACK_NOT_FOUND})
    async def feedback(request: Request) -> Response:
        request_id = new_id()
        if server.workspace is None:
            return response(failure(503, "this server has no metadata store for feedback",
                                    request_id))
        try:
            payload = decode_json(await answering.read_body(request))
            if not desks:
                desks.append(FeedbackDesk(server))
            outcome = await desks[0].take(payload)
        except BadRequest as exc:
            return response(error_reply(exc, request_id))
        status, content = outcome.status_and_body()
        if status != 200:
            return response(failure(status, content["error"], request_id,
                                    content.get("detail")))
        return Response(json.dumps(content), media_type=JSON)

    return routes
