"""The dashboard's pipelines pages: recent runs per pipeline, schedules, and one run as a
DAG (server-side SVG) with each step's status, duration, attempts, cache use, log, error
and outputs.

Data comes from the functions ``ratchet pipeline`` and ``ratchet schedule`` use
(``list_pipeline_runs``, ``get_pipeline_run``, ``list_schedules``). Pipelines have no
per-resource grants: reading them needs the read role.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request

from ratchet.server.permissions import declare
from ratchet.store.records import PIPELINE_STATUSES
from ratchet.ui.access import require
from ratchet.ui.templating import page_headers, render

if TYPE_CHECKING:
    from ratchet.store.records import StepRunRecord
    from ratchet.workspace import Workspace

RUNS_SHOWN = 200  # newest pipeline runs read for the listing
RUNS_PER_PIPELINE = 10
LOG_SHOWN = 64 * 1024  # bytes of a step's log shown in the page (its tail); the rest by link
# The DAG's geometry (px): a node box, the gaps between layers and rows, the margin.
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 190, 58, 60, 18, 10
LABEL_CHARS = 24


@dataclass(frozen=True)
class Node:
    step: StepRunRecord
    x: int
    y: int
    label: str  # the node name, shortened to fit its box (the full name is its title)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # SVG path data: a curve from the source's right side to the target's left


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layout(steps: Sequence[StepRunRecord]) -> Layout:
    """Steps layered left to right by dependency depth (a step sits one layer right of its
    deepest upstream step); within a layer, ordered by the mean row of their upstream
    steps (fewer crossings), then by position in the pipeline."""
    by_node = {s.node: s for s in steps}
    depth: dict[str, int] = {}
    for s in sorted(steps, key=lambda s: s.position):  # positions follow a topological order
        parents = [p for p in s.upstream if p in by_node]
        depth[s.node] = 0
        for p in parents:
            if p not in depth:  # a record out of order: settle the parent first
                depth[p] = _depth(p, by_node, depth)
            depth[s.node] = max(depth[s.node], depth[p] + 1)
    layers: dict[int, list[StepRunRecord]] = {}
    for s in steps:
        layers.setdefault(depth[s.node], []).append(s)
    row: dict[str, int] = {}
    for level in sorted(layers):
        def key(s: StepRunRecord) -> tuple[float, int]:
            parents = [row[p] for p in s.upstream if p in row]
            return (sum(parents) / len(parents) if parents else -1.0, s.position)
        for index, s in enumerate(sorted(layers[level], key=key)):
            row[s.node] = index
    nodes = [Node(s, PAD + depth[s.node] * (NODE_W + GAP_X), PAD + row[s.node] * (NODE_H + GAP_Y),
                  _short(s.node)) for s in sorted(steps, key=lambda s: s.position)]
    at = {n.step.node: n for n in nodes}
    edges = []
    for n in nodes:
        for p in n.step.upstream:
            if p not in at:
                continue
            a, b = at[p], n
            x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
            x2, y2 = b.x, b.y + NODE_H // 2
            bend = max((x2 - x1) // 2, 20)
            edges.append(Edge(p, n.step.node, f"M{x1},{y1} C{x1 + bend},{y1} "
                                              f"{x2 - bend},{y2} {x2 - 6},{y2}"))
    width = max((n.x + NODE_W for n in nodes), default=0) + PAD
    height = max((n.y + NODE_H for n in nodes), default=0) + PAD
    return Layout(nodes, edges, width, height)


def _depth(node: str, by_node: dict[str, StepRunRecord], depth: dict[str, int],
           seen: frozenset[str] = frozenset()) -> int:
    if node in depth:
        return depth[node]
    if node in seen:  # a cycle cannot be recorded, but never loop on a damaged record
        return 0
    parents = [p for p in by_node[node].upstream if p in by_node]
    value = max((_depth(p, by_node, depth, seen | {node}) + 1 for p in parents), default=0)
    depth[node] = value
    return value


def _short(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…"


def step_counts(steps: Sequence[StepRunRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.status] = counts.get(s.status, 0) + 1
    return dict(sorted(counts.items()))


def params_text(params: dict[str, Any]) -> str:
    """``k=value, ...`` with values as JSON (strings quoted), in key order as stored."""
    import json

    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}"
                     for k, v in params.items())


def routes(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/ui/pipelines", openapi_extra=declare("read"))
    def pipelines(request: Request, pipeline: str | None = Query(None),
                  status: str | None = Query(None)) -> Any:
        from ratchet.pipelines import list_pipeline_runs, list_schedules

        require(request, "read")
        runs = list_pipeline_runs(pipeline or None, status=status or None, limit=RUNS_SHOWN,
                                  workspace=workspace)
        grouped: dict[str, list[Any]] = {}
        for run in runs:
            grouped.setdefault(run.record.pipeline, []).append(run)
        groups = [(name, items[:RUNS_PER_PIPELINE], len(items))
                  for name, items in sorted(grouped.items())]
        return render(request, "pipelines/index.html", section="pipelines", groups=groups,
                      schedules=list_schedules(workspace=workspace), counts=step_counts,
                      pipeline=pipeline or "", status_filter=status or "", shown=RUNS_SHOWN,
                      total=len(runs), params=params_text, statuses=PIPELINE_STATUSES)

    @router.get("/ui/pipelines/runs/{run_id}", openapi_extra=declare("read"))
    def pipeline_run(request: Request, run_id: str) -> Any:
        from ratchet.pipelines import get_pipeline_run

        require(request, "read")
        result = get_pipeline_run(run_id, workspace=workspace)
        logs = {s.node: _log_tail(workspace, s.log_digest) for s in result.steps}
        schedule = None
        if result.record.schedule_id:
            from ratchet.errors import NotFound

            try:
                schedule = workspace.stores.schedules.get_schedule_by_id(
                    result.record.schedule_id).name
            except NotFound:  # deleted since: the id alone is still shown
                schedule = None
        return render(request, "pipelines/run.html", section="pipelines", run=result.record,
                      steps=result.steps, dag=layout(result.steps), logs=logs,
                      counts=step_counts(result.steps), schedule=schedule,
                      node_w=NODE_W, node_h=NODE_H, log_shown=LOG_SHOWN,
                      params=params_text)

    @router.get("/ui/pipelines/runs/{run_id}/logs/{node}", openapi_extra=declare("read"))
    def step_log(request: Request, run_id: str, node: str) -> Any:
        """A step's whole log as plain text (never interpreted as a page)."""
        from starlette.responses import Response

        from ratchet.pipelines import get_pipeline_run
        from ratchet.tracking.client import TrackingClient

        require(request, "read")
        record = get_pipeline_run(run_id, workspace=workspace).step(node)
        body = b"" if record.log_digest is None else \
            workspace.client(TrackingClient).blobs.read_bytes(record.log_digest)
        return Response(body, media_type="text/plain; charset=utf-8",
                        headers={**page_headers(), "X-Content-Type-Options": "nosniff"})

    return router


def _log_tail(workspace: Workspace, digest: str | None) -> tuple[str, bool] | None:
    """The end of a step's captured log as text, and whether it was cut (None: no log)."""
    if digest is None:
        return None
    from ratchet.tracking.client import TrackingClient

    data = workspace.client(TrackingClient).blobs.read_bytes(digest)
    cut = len(data) > LOG_SHOWN
    return data[-LOG_SHOWN:].decode("utf-8", errors="replace"), cut
