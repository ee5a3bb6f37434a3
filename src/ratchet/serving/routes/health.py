"""Liveness, readiness (ours, the Open Inference Protocol's, MLflow's ``/ping``) and
Prometheus ``/metrics``: open to probes and scrapers (``access.OPEN_PATHS``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

if TYPE_CHECKING:
    from ratchet.serving.server_state import ServerState


def ready_body(server: ServerState) -> tuple[int, dict[str, Any]]:
    """(status, body) of a readiness probe: 200 with the models served, or 503 with why."""
    table = server.watcher.table
    if table is None:
        # "retrying": false when the load failed in a way retrying cannot fix.
        return 503, {"ready": False, "error": server.watcher.last_error,
                     "retrying": not server.watcher.permanent_error}
    return 200, {"ready": True, "revision": table.revision, "models": [
        {"variant": r.variant, "model": r.model.ref.name, "version": r.model.ref.version}
        for r in table.all_routes]}


def router(server: ServerState) -> APIRouter:
    routes = APIRouter(tags=["health"])

    @routes.get("/health/live", summary="Liveness")
    @routes.get("/v2/health/live", summary="Liveness (Open Inference Protocol)")
    async def live() -> dict[str, bool]:
        return {"live": True}

    not_ready: dict[int | str, dict[str, Any]] = {503: {"description": "No model loaded yet"}}

    @routes.get("/health/ready", summary="Readiness: a model is loaded", responses=not_ready)
    @routes.get("/v2/health/ready", summary="Readiness (Open Inference Protocol)",
                responses=not_ready)
    @routes.get("/ping", summary="Readiness (MLflow)", responses=not_ready)
    async def ready() -> Response:
        status, body = ready_body(server)
        return JSONResponse(body, status)

    @routes.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        data, content_type = server.metrics.exposition()
        return Response(data, media_type=content_type)

    return routes
