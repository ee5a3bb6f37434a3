"""The dashboard's runs pages: an experiment's runs table and a run's detail page.

The runs table is one ``search_runs`` page (the store's own filter grammar, order and
page tokens: what ``ratchet runs search`` asks for), so it costs the same at 100 runs
as at 100,000. Its state (filter, sort, columns, page size, page) lives in the URL: a
table is a link to share. Columns are chosen, never "all keys": a run set with 12,000
metric keys shows a capped default and a chooser that searches the keys.

The run page reads what ``ratchet runs show`` reads (``TrackingClient.get_run``,
``child_runs``, ``list_artifacts``) plus the model versions registered from the run.
Artifacts are streamed through ``/ui/runs/{id}/artifact`` as downloads; only raster
images are ever served for inline display, and text is shown escaped in the page, so
an HTML or SVG artifact can never run in the dashboard's origin.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request

from ratchet.errors import InvalidInput
from ratchet.server.permissions import declare
from ratchet.ui.access import require, visible
from ratchet.ui.templating import STATIC, render

if TYPE_CHECKING:
    from starlette.responses import Response

    from ratchet.store.records import ArtifactEntry, Run
    from ratchet.tracking.client import TrackingClient
    from ratchet.workspace import Workspace

PAGE_SIZES = (50, 100, 200)
# Default columns: every metric up to this many, then a few params; wider run sets get
# the chooser. An explicit ``columns=`` may name up to MAX_COLUMNS.
DEFAULT_METRICS = 20
DEFAULT_PARAMS = 4
MAX_COLUMNS = 100
# How many page tokens the URL keeps for "Previous" (each is ~100-400 characters).
MAX_TRAIL = 20
# Keys offered to the chooser (the keys of the runs on the page plus the chosen ones).
MAX_CHOOSER_KEYS = 20_000
# The run page: charts drawn at once, metric rows listed, preview sizes.
DEFAULT_CHARTS = 12
MAX_METRIC_ROWS = 2_000
TEXT_PREVIEW_BYTES = 256 * 1024
IMAGE_PREVIEW_BYTES = 10 * 1024 * 1024

_ENTITY_PREFIX = {"metric": "metrics", "param": "params", "tag": "tags"}
_PREFIX_ENTITY = {"metrics": "metric", "metric": "metric", "params": "param",
                  "param": "param", "tags": "tag", "tag": "tag"}
# Attributes the table shows and may sort by (the filter grammar's names).
_ATTRIBUTE_SORTS = {"run_name": "Run", "status": "Status", "start_time": "Started",
                    "user": "User"}
# Raster images only: an SVG is a document that can run script, so it is text here.
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".gif": "image/gif", ".webp": "image/webp", ".bmp": "image/bmp"}


@dataclass(frozen=True)
class Column:
    """A metric, param or tag column of the runs table."""

    entity: str  # metric | param | tag
    key: str

    @property
    def spec(self) -> str:
        """How the column is named in the URL: ``metrics.auc``."""
        return f"{_ENTITY_PREFIX[self.entity]}.{self.key}"

    def value(self, run: Run) -> Any:
        if self.entity == "metric":
            return run.metrics.get(self.key)
        return (run.params if self.entity == "param" else run.tags).get(self.key)


@dataclass
class TableState:
    """The runs table's query, read from the URL (and written back into links)."""

    filter: str = ""
    columns_text: str | None = None  # None: the default columns
    sort: str = ""  # a column spec or ``attributes.<name>``; "" = newest first
    descending: bool = True
    size: int = PAGE_SIZES[0]
    page: str | None = None
    trail: list[str] = field(default_factory=list)
    start: int = 0
    problems: list[str] = field(default_factory=list)

    def query(self, **changes: Any) -> str:
        """The URL query of this state with ``changes`` (a new search drops the page)."""
        values: dict[str, Any] = {"filter": self.filter, "columns": self.columns_text,
                                  "sort": self.sort, "dir": "desc" if self.descending else "asc",
                                  "size": self.size, "page": self.page,
                                  "trail": ",".join(self.trail), "start": self.start}
        values.update(changes)
        if not values["sort"]:
            values.pop("dir")
        if values["size"] == PAGE_SIZES[0]:
            values.pop("size")
        pairs = [(k, v) for k, v in values.items() if v not in (None, "", 0)]
        return urlencode(pairs, quote_via=quote) if pairs else ""


def experiment_url(name: str) -> str:
    """The runs table of an experiment: the name is the last path segment, with every
    character that has a meaning in a URL (``/`` too) percent-encoded."""
    return "/ui/experiments/" + quote(name, safe="")


def run_url(run_id: str) -> str:
    return "/ui/runs/" + quote(run_id, safe="")


def parse_column(text: str) -> Column:
    """``metrics.auc`` -> Column("metric", "auc"); InvalidInput says what is wrong."""
    from ratchet.names import check_key

    prefix, dot, key = text.strip().partition(".")
    entity = _PREFIX_ENTITY.get(prefix.lower())
    if not dot or entity is None:
        raise InvalidInput(f"column {text!r} is not metrics.<key>, params.<key> or tags.<key>")
    return Column(entity, check_key(entity, key))


def read_state(params: Any) -> TableState:
    """The table's state from the query string; what cannot be used is reported in
    ``problems`` and left out (the page still shows)."""
    state = TableState(filter=(params.get("filter") or "").strip())
    columns = params.get("columns")
    state.columns_text = columns.strip() if columns is not None else None
    sort = (params.get("sort") or "").strip()
    if sort:
        try:
            sort_order(sort, True)
            state.sort = sort
        except InvalidInput as exc:
            state.problems.append(str(exc))
    state.descending = (params.get("dir") or "desc").lower() != "asc"
    size = params.get("size")
    if size:
        if size.isdigit() and int(size) in PAGE_SIZES:
            state.size = int(size)
        else:
            state.problems.append(f"page size {size[:20]!r} is not one of "
                                  f"{', '.join(map(str, PAGE_SIZES))}; showing {PAGE_SIZES[0]}")
    state.page = params.get("page") or None
    if state.page:
        state.trail = [t for t in (params.get("trail") or "").split(",") if t][-MAX_TRAIL:]
        start = params.get("start") or ""
        state.start = int(start) if start.isdigit() and len(start) < 10 else 0
    return state


def sort_order(sort: str, descending: bool) -> list[str]:
    """``order_by`` for a column spec or ``attributes.<name>``."""
    from ratchet.store.run_filter import format_identifier

    direction = "DESC" if descending else "ASC"
    prefix, _, key = sort.partition(".")
    if prefix == "attributes":
        if key not in _ATTRIBUTE_SORTS:
            raise InvalidInput(f"cannot sort by {sort!r}: sortable attributes are "
                               f"{', '.join(_ATTRIBUTE_SORTS)}")
        return [f"attributes.{key} {direction}"]
    column = parse_column(sort)
    return [f"{format_identifier(column.entity, column.key)} {direction}"]


def choose_columns(state: TableState, runs: list[Run]) -> tuple[list[Column], list[str]]:
    """The columns to show and every key the chooser offers (``metrics.<key>`` ...)."""
    metric_keys: set[str] = set()
    param_keys: set[str] = set()
    tag_keys: set[str] = set()
    for run in runs:
        metric_keys.update(run.metrics)
        param_keys.update(run.params)
        tag_keys.update(k for k in run.tags if not k.startswith("ratchet."))
    chosen: list[Column] = []
    if state.columns_text is None:
        chosen = [Column("metric", k) for k in sorted(metric_keys)[:DEFAULT_METRICS]]
        chosen += [Column("param", k) for k in sorted(param_keys)[:DEFAULT_PARAMS]]
    else:
        seen: set[Column] = set()
        for text in state.columns_text.split(","):
            if not text.strip():
                continue
            try:
                column = parse_column(text)
            except InvalidInput as exc:
                state.problems.append(str(exc))
                continue
            if column not in seen:
                seen.add(column)
                chosen.append(column)
        if len(chosen) > MAX_COLUMNS:
            state.problems.append(f"{len(chosen)} columns asked for; showing the first "
                                  f"{MAX_COLUMNS}")
            chosen = chosen[:MAX_COLUMNS]
    offered = [f"metrics.{k}" for k in sorted(metric_keys)]
    offered += [f"params.{k}" for k in sorted(param_keys)]
    offered += [f"tags.{k}" for k in sorted(tag_keys)]
    known = set(offered)
    offered += [c.spec for c in chosen if c.spec not in known]
    return chosen, offered[:MAX_CHOOSER_KEYS]


def tracking_client(workspace: Workspace) -> TrackingClient:
    from ratchet.tracking.client import TrackingClient

    return workspace.client(TrackingClient)


# ------------------------------------------------------------------------- artifacts
@dataclass(frozen=True)
class Listing:
    """One folder of a run's artifacts: its sub-folders (name, files, bytes) and files."""

    folders: list[tuple[str, int, int]]
    files: list[ArtifactEntry]


def folder_listing(entries: list[ArtifactEntry], folder: str) -> Listing:
    base = folder + "/" if folder else ""
    folders: dict[str, list[int]] = {}
    files = []
    for entry in entries:
        if not entry.path.startswith(base):
            continue
        rest = entry.path[len(base):]
        head, slash, _ = rest.partition("/")
        if slash:
            counted = folders.setdefault(head, [0, 0])
            counted[0] += 1
            counted[1] += entry.size
        else:
            files.append(entry)
    return Listing([(name, n, size) for name, (n, size) in sorted(folders.items())], files)


def image_type(path: str) -> str | None:
    return _IMAGE_TYPES.get(PurePosixPath(path).suffix.lower())


def text_preview(data: bytes) -> str | None:
    """The bytes as text if they look like text (UTF-8, no NUL), else None. A cut in
    the middle of a character at the end of a capped read is not an error."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:
            return data[:exc.start].decode("utf-8", errors="replace")
        return None


def read_head(workspace: Workspace, digest: str, size: int, limit: int) -> bytes:
    """The first ``limit`` bytes of a blob (all of it, verified, when it is that small)."""
    if size <= limit:
        return workspace.blobs.read_bytes(digest)
    with workspace.blobs.open(digest) as f:
        return f.read(limit)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


# ---------------------------------------------------------------------------- routes
def routes(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/ui/experiments/{experiment:path}", openapi_extra=declare("read"))
    def runs_table(request: Request, experiment: str) -> Any:
        tracking = workspace.stores.tracking
        found = tracking.get_experiment(experiment)
        require(request, "read", "experiment", found.name)
        state = read_state(request.query_params)
        order = sort_order(state.sort, state.descending) if state.sort else None
        # The experiment's run count (a scan of the runs table at 100k runs, ~as long as
        # the search) is read on another thread while this one searches.
        counting = _background().submit(tracking.run_counts)
        runs: list[Run] = []
        next_token = None
        error = None
        try:
            runs, next_token = tracking.search_runs(
                [found.experiment_id], state.filter or None, order, state.size, state.page)
        except InvalidInput as exc:  # the filter's message, with its caret
            error = str(exc)
        columns, offered = choose_columns(state, runs)
        total = counting.result().get(found.experiment_id, 0)
        base = experiment_url(found.name)
        pager = {
            "first": f"{base}?{state.query(page=None, trail='', start=0)}" if state.page else None,
            "previous": None,
            "next": None,
            "from": state.start + 1 if runs else 0,
            "to": state.start + len(runs),
            # Exact when this is the last page; otherwise at least what was seen so far.
            "matched": state.start + len(runs) if next_token is None else None,
        }
        if state.page:
            earlier = state.trail[:-1]
            pager["previous"] = f"{base}?" + state.query(
                page=state.trail[-1] if state.trail else None, trail=",".join(earlier),
                start=max(0, state.start - state.size) if state.trail else 0)
        if next_token:
            trail = [*state.trail, state.page] if state.page else []
            pager["next"] = f"{base}?" + state.query(
                page=next_token, trail=",".join(trail[-MAX_TRAIL:]),
                start=state.start + len(runs))
        headers = [_header(base, state, f"attributes.{key}", label)
                   for key, label in _ATTRIBUTE_SORTS.items()]
        headers.insert(3, {"label": "Duration", "href": None, "sort": None, "spec": ""})
        headers += [_header(base, state, c.spec, c.spec) for c in columns]
        rows = [_row(run, columns) for run in runs]
        return render(
            request, "runs/table.html", section="experiments", experiment=found,
            base=base, state=state, error=error, columns=columns, headers=headers, rows=rows,
            total=total, pager=pager, page_sizes=PAGE_SIZES,
            columns_value=state.columns_text if state.columns_text is not None
            else ",".join(c.spec for c in columns),
            chooser={"keys": offered, "columns": [c.spec for c in columns]})

    @router.get("/ui/runs/{run_id}", openapi_extra=declare("read"))
    def run_page(request: Request, run_id: str, path: str = "",
                 chart: Annotated[list[str] | None, Query()] = None) -> Any:
        from ratchet.artifacts import normalize_artifact_path

        stores = workspace.stores
        require(request, "read", "experiment", stores.tracking.experiment_name_of_run(run_id))
        client = tracking_client(workspace)
        run = client.get_run(run_id)
        experiment = stores.tracking.get_experiment(run.experiment_id)
        parent = client.get_run(run.parent_run_id) if run.parent_run_id else None
        children = client.child_runs(run_id)
        versions = visible(request, "model", stores.registry.versions_for_run(run_id),
                           lambda v: v.name)
        entries = client.list_artifacts(run_id)
        artifacts = _artifact_view(workspace, run_id, entries,
                                   normalize_artifact_path(path) if path else "")
        keys = sorted(run.metrics)
        charted = [k for k in (chart or []) if k in run.metrics] or keys[:DEFAULT_CHARTS]
        error_line = None
        if run.error:
            lines = [line for line in run.error.strip().splitlines() if line.strip()]
            error_line = lines[-1] if lines else run.error
        return render(
            request, "runs/detail.html", section="experiments", run=run,
            experiment=experiment, experiment_href=experiment_url(experiment.name),
            parent=parent, children=children, versions=versions, artifacts=artifacts,
            metric_keys=keys[:MAX_METRIC_ROWS], metric_count=len(keys), charted=charted,
            chart_more=len(keys) > len(charted), error_line=error_line,
            charts_ready=(STATIC / "chart.js").is_file(),
            run_href=run_url(run_id), quote=quote, human_size=human_size, isnan=_isnan)

    @router.get("/ui/runs/{run_id}/artifact", openapi_extra=declare("read"))
    def artifact(request: Request, run_id: str, path: str, preview: bool = False) -> Response:
        from ratchet.artifacts import normalize_artifact_path
        from ratchet.errors import NotFound
        from ratchet.server.artifact_routes import blob_response, content_disposition

        tracking = workspace.stores.tracking
        require(request, "read", "experiment", tracking.experiment_name_of_run(run_id))
        tracking.get_run(run_id)  # a deleted run's files are gone from the dashboard too
        name = normalize_artifact_path(path)
        entry = next((e for e in tracking.list_artifacts(run_id, name) if e.path == name), None)
        if entry is None:
            raise NotFound(f"run {run_id} has no artifact file {name!r}")
        filename = name.rsplit("/", 1)[-1]
        answer = blob_response(workspace.blobs, entry.digest, request.headers.get("range"),
                               filename=filename)
        kind = image_type(name)
        if preview and kind is not None and entry.size <= IMAGE_PREVIEW_BYTES:
            # A raster image for an <img>: its own type, inline; still nosniff + sandbox.
            answer.headers["content-type"] = kind
            answer.headers["content-disposition"] = content_disposition(filename).replace(
                "attachment", "inline", 1)
        return answer

    return router


@cache
def _background() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="ratchet-ui-runs")


def _header(base: str, state: TableState, spec: str, label: str) -> dict[str, Any]:
    """A sortable column header: its link flips the direction when it is the sort."""
    current = state.sort == spec
    if current:
        descending = not state.descending
    else:  # numbers and times are most often wanted largest/newest first
        descending = spec.startswith("metrics.") or spec == "attributes.start_time"
    sort = "" if spec == "attributes.start_time" and current and not state.descending else spec
    href = f"{base}?" + state.query(sort=sort, dir="desc" if descending else "asc",
                                    page=None, trail="", start=0)
    aria = None
    if current or (not state.sort and spec == "attributes.start_time"):
        aria = "descending" if (state.descending or not state.sort) else "ascending"
    return {"label": label, "href": href, "sort": aria, "spec": spec}


def _row(run: Run, columns: list[Column]) -> dict[str, Any]:
    return {"run": run, "href": run_url(run.run_id),
            "cells": [(c.entity, c.value(run)) for c in columns]}


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _artifact_view(workspace: Workspace, run_id: str, entries: list[ArtifactEntry],
                   path: str) -> dict[str, Any]:
    """What the artifacts section shows for ``path``: a folder's listing, or one file
    with its preview (text, escaped; a raster image; or none)."""
    from ratchet.errors import NotFound

    crumbs = []
    parts = path.split("/") if path else []
    for i, part in enumerate(parts):
        crumbs.append((part, "/".join(parts[:i + 1])))
    view: dict[str, Any] = {"path": path, "crumbs": crumbs, "count": len(entries),
                            "file": None, "listing": None, "text": None, "image": False,
                            "truncated": False}
    exact = next((e for e in entries if e.path == path), None) if path else None
    if exact is not None:
        view["file"] = exact
        if image_type(exact.path) and exact.size <= IMAGE_PREVIEW_BYTES:
            view["image"] = True
        else:
            head = read_head(workspace, exact.digest, exact.size, TEXT_PREVIEW_BYTES)
            view["text"] = text_preview(head)
            view["truncated"] = exact.size > TEXT_PREVIEW_BYTES
        return view
    listing = folder_listing(entries, path)
    if path and not listing.folders and not listing.files:
        raise NotFound(f"run {run_id} has no artifact {path!r}")
    view["listing"] = listing
    return view
