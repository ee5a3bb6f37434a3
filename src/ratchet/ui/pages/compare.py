"""Compare runs: metric overlays, parallel coordinates of params vs a metric, and a
param/metric diff table.

``/ui/compare?run=ID&run=ID...`` (the runs table links here with the chosen runs). The
runs are read in one search (``run_id IN (...)``); each run's experiment must be
readable by the caller. The overlays are drawn by ``static/compare.js`` from
``/ui/api/compare/metric`` (one downsampled window per run, ``metric_window``); the
parallel coordinates are SVG drawn by the same script from the page's JSON.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request

from ratchet.errors import InvalidInput, NotFound
from ratchet.server.permissions import declare
from ratchet.ui.access import require
from ratchet.ui.pages.charts import integer
from ratchet.ui.templating import number, render

if TYPE_CHECKING:
    from ratchet.store.records import Run
    from ratchet.workspace import Workspace

MAX_RUNS = 500          # the URL carries the ids: ~400 fit in a 16 KiB request line
DEFAULT_OVERLAYS = 4    # metric charts shown before the reader picks others
MAX_OVERLAYS = 12
OVERLAY_POINTS = 300
_RUN_ID = re.compile(r"[0-9a-f]{32}")    # buckets per run and chart: hundreds of runs stay light
MAX_OVERLAY_POINTS = 2000


@dataclass(frozen=True)
class DiffRow:
    kind: str            # "param" | "metric"
    key: str
    cells: list[str]     # one per run, "" when the run has none
    differs: bool


def run_ids(values: list[str] | None) -> list[str]:
    """The asked run ids, de-duplicated in order; InvalidInput past ``MAX_RUNS``."""
    ids = list(dict.fromkeys(v.strip() for v in values or [] if v.strip()))
    if len(ids) > MAX_RUNS:
        raise InvalidInput(f"compare takes at most {MAX_RUNS} runs, got {len(ids)}: "
                           "pick fewer in the runs table")
    return ids


def load_runs(workspace: Workspace, request: Request, ids: list[str]) -> list[Run]:
    """The runs in the asked order, after checking the caller may read each one's
    experiment (one search for all of them, then one check per experiment)."""
    if not ids:
        return []
    tracking = workspace.stores.tracking
    for run_id in ids:
        if not _RUN_ID.fullmatch(run_id):
            raise NotFound(f"no run with id {run_id!r}")
    listed = ", ".join(f"'{run_id}'" for run_id in ids)  # hex only: checked above
    found, _ = tracking.search_runs(filter=f"attributes.run_id IN ({listed})",
                                    max_results=len(ids))
    by_id = {run.run_id: run for run in found}
    for run_id in ids:
        if run_id not in by_id:
            tracking.experiment_name_of_run(run_id)  # NotFound when there is no such run
            raise NotFound(f"run {run_id} is deleted: restore it with "
                           f"`ratchet runs restore {run_id}` to compare it")
    names = {e.experiment_id: e.name for e in tracking.list_experiments()}
    for experiment_id in {run.experiment_id for run in found}:
        require(request, "read", "experiment", names.get(experiment_id, experiment_id))
    return [by_id[run_id] for run_id in ids]


def diff_rows(runs: list[Run]) -> list[DiffRow]:
    """Rows = every param then every metric any run has; a row differs when its cells
    are not all equal (a missing value differs from any value)."""
    rows = []
    for key in sorted({k for run in runs for k in run.params}):
        cells = [run.params.get(key, "") for run in runs]
        rows.append(DiffRow("param", key, cells, len(set(cells)) > 1))
    for key in sorted({k for run in runs for k in run.metrics}):
        values = [run.metrics.get(key) for run in runs]
        cells = [number(v) for v in values]
        rows.append(DiffRow("metric", key, cells, len(set(cells)) > 1))
    return rows


def json_number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def page_data(runs: list[Run], names: dict[str, str], metric: str | None) -> dict[str, Any]:
    """What compare.js draws the parallel coordinates from (read as JSON, never markup)."""
    return {
        "runs": [{"id": run.run_id, "name": run.name, "experiment": names.get(run.experiment_id, ""),
                  "params": run.params,
                  "metrics": {k: json_number(v) for k, v in run.metrics.items()}}
                 for run in runs],
        "params": sorted({k for run in runs for k in run.params}),
        "metrics": sorted({k for run in runs for k in run.metrics}),
        "metric": metric,
    }


def routes(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/ui/compare", openapi_extra=declare("read"))
    def compare(request: Request, run: Annotated[list[str] | None, Query()] = None,
                key: Annotated[list[str] | None, Query()] = None,
                metric: str | None = None) -> Any:
        ids = run_ids(run)
        runs = load_runs(workspace, request, ids)
        experiments = {e.experiment_id: e.name
                       for e in workspace.stores.tracking.list_experiments()}
        metric_keys = sorted({k for r in runs for k in r.metrics})
        chosen = [k for k in dict.fromkeys(key or []) if k in metric_keys][:MAX_OVERLAYS] \
            or metric_keys[:DEFAULT_OVERLAYS]
        target = metric if metric in metric_keys else (chosen[0] if chosen else None)
        return render(
            request, "compare/page.html", section="experiments", runs=runs,
            experiments=experiments, rows=diff_rows(runs), metric_keys=metric_keys,
            chosen=chosen, target=target, data=page_data(runs, experiments, target),
            run_query="&".join(f"run={quote(r.run_id)}" for r in runs),
            run_href=lambda run_id: "/ui/runs/" + quote(run_id, safe=""),
            experiment_href=lambda name: "/ui/experiments/" + quote(name, safe=""),
            max_overlays=MAX_OVERLAYS, overlay_points=OVERLAY_POINTS)

    @router.get("/ui/api/compare/metric", openapi_extra=declare("read"))
    def overlay(request: Request, key: str | None = None,
                run: Annotated[list[str] | None, Query()] = None,
                points: str | None = None) -> Any:
        """One metric of each run, downsampled: the mean line of each bucket."""
        if not key:
            raise InvalidInput("give the metric as ?key=NAME")
        count = integer("points", points, OVERLAY_POINTS)
        assert count is not None
        if not 1 <= count <= MAX_OVERLAY_POINTS:
            raise InvalidInput(f"points must be from 1 to {MAX_OVERLAY_POINTS}, got {count}")
        tracking = workspace.stores.tracking
        series = []
        for found in load_runs(workspace, request, run_ids(run)):
            run_id = found.run_id
            window = tracking.metric_window(run_id, key, points=count)
            series.append({"run": run_id, "count": window.count,
                           "downsampled": window.downsampled,
                           "step": [b.step for b in window.buckets],
                           "value": [json_number(b.mean) for b in window.buckets]})
        return {"key": key, "series": series}

    return router
