"""The metric charts' data: one metric of one run, downsampled by the store.

``GET /ui/api/runs/{run_id}/metric?key=K&points=N[&start=S&end=E]`` answers a window of
the history (``TrackingStore.metric_window``) as columns the chart draws directly:
steps, min, max and a line value per bucket (the mean; the value itself when raw).
JSON has no NaN or infinity: those become ``null`` (a gap) and are counted, so the
chart can say what it did not draw.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from ratchet.errors import InvalidInput
from ratchet.server.permissions import declare
from ratchet.ui.access import require

if TYPE_CHECKING:
    from ratchet.store.metric_window import MetricWindow
    from ratchet.workspace import Workspace

DEFAULT_POINTS = 1000


def integer(name: str, text: str | None, default: int | None = None) -> int | None:
    """A query parameter as an integer; InvalidInput names it when it is not one."""
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {text!r}") from None


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def window_json(window: MetricWindow) -> dict[str, Any]:
    """A window as columns: ``step``, ``min``, ``max``, ``value`` (non-finite as null)."""
    buckets = window.buckets
    infinite = sum(1 for b in buckets if math.isinf(b.min) or math.isinf(b.max))
    return {
        "run": window.run_id, "key": window.key,
        "extent": None if window.first_step is None else [window.first_step,
                                                         window.last_step],
        "window": None if window.start is None else [window.start, window.end],
        "count": window.count, "downsampled": window.downsampled,
        "width": window.bucket_width,
        "step": [b.step for b in buckets],
        "min": [finite(b.min) for b in buckets],
        "max": [finite(b.max) for b in buckets],
        "value": [finite(b.mean) for b in buckets],
        "nan": sum(b.nan_count for b in buckets),
        "infinite": infinite,
    }


def read_window(workspace: Workspace, request: Request, run_id: str, key: str | None,
                points: str | None, start: str | None, end: str | None) -> MetricWindow:
    """The caller's window of ``key`` of ``run_id``, after checking they may read it."""
    tracking = workspace.stores.tracking
    require(request, "read", "experiment", tracking.experiment_name_of_run(run_id))
    if not key:
        raise InvalidInput("give the metric as ?key=NAME")
    count = integer("points", points, DEFAULT_POINTS)
    assert count is not None
    return tracking.metric_window(run_id, key, points=count,
                                  start_step=integer("start", start),
                                  end_step=integer("end", end))


def routes(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/ui/api/runs/{run_id}/metric", openapi_extra=declare("read"))
    def metric(request: Request, run_id: str, key: str | None = None,
               points: str | None = None, start: str | None = None,
               end: str | None = None) -> Any:
        return window_json(read_window(workspace, request, run_id, key, points, start, end))

    return router
