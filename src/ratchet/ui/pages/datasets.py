"""The dashboard's dataset pages: datasets, their versions, a version's schema, profile
and validation reports, and the diff between two versions.

Read through ``DataClient`` (what ``ratchet data`` uses); the diff is
``DataClient.diff`` (``ratchet.data.version_diff``) and the overlaid distributions are
re-binned with ``ratchet.data.profile_compare``'s own functions. Datasets are guarded by
the caller's role (there are no per-dataset grants); the runs a page links to are shown
only when the caller may read their experiment.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request

from ratchet.errors import InvalidInput, NotFound
from ratchet.server.permissions import declare
from ratchet.ui.access import can, require
from ratchet.ui.templating import number, render

if TYPE_CHECKING:
    from ratchet.data.catalog import DataClient
    from ratchet.data.profile_records import ColumnProfile
    from ratchet.data.version import DatasetVersion
    from ratchet.workspace import Workspace

COLUMNS_PER_PAGE = 100  # schema rows and profile cards per page (wide data pages)
MAX_USED_SHOWN = 200  # runs listed as readers of a version, newest first
MAX_REPORT_RUNS = 20  # runs searched for stored validation reports, newest first
CHART_WIDTH, BIN_HEIGHT, ROW_HEIGHT, LABEL_WIDTH = 320, 110, 18, 120
TOP_SHOWN = 12  # categories drawn per chart (the rest are pooled as "other")
DATETIME_BINS = 20


def routes(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def data() -> DataClient:
        from ratchet.data.catalog import DataClient

        return workspace.client(DataClient)

    def readable_runs(request: Request, run_ids: Sequence[str]) -> set[str]:
        """The runs among ``run_ids`` whose experiment the caller may read."""
        tracking = workspace.stores.tracking
        shown = set()
        for run_id in run_ids:
            try:
                experiment = tracking.experiment_name_of_run(run_id)
            except NotFound:
                continue
            if can(request, "read", "experiment", experiment):
                shown.add(run_id)
        return shown

    @router.get("/ui/datasets", openapi_extra=declare("read"))
    def datasets(request: Request) -> Any:
        require(request, "read")
        store = data().store
        rows = [(summary, store.get_version(summary.name, summary.latest_version))
                for summary in data().list_datasets()]
        return render(request, "datasets/list.html", section="datasets", rows=rows)

    @router.get("/ui/datasets/{name}/diff", openapi_extra=declare("read"))
    def diff(request: Request, name: str, a: str | None = None, b: str | None = None,
             key: list[str] | None = Query(default=None)) -> Any:
        """Schema and distribution changes from the two stored profiles (at once); the
        row comparison, which reads both snapshots, is fetched by the page from
        ``/ui/api/datasets/{name}/diff`` so a large dataset's page does not wait for it."""
        from ratchet.data.profile_compare import compare_profiles

        require(request, "read")
        client = data()
        versions = client.list_versions(name)
        if not versions:
            raise NotFound(f"dataset {name!r} has no versions")
        base_number = _version_number(a, "a") if a else (
            versions[-2].version if len(versions) > 1 else versions[-1].version)
        other_number = _version_number(b, "b") if b else versions[-1].version
        keys = _keys(key)
        base, other = client.get(f"{name}@{base_number}"), client.get(f"{name}@{other_number}")
        _check_keys(keys, base, other)
        distribution = compare_profiles(base.profile, other.profile)
        return render(request, "datasets/diff.html", section="datasets", name=name,
                      versions=versions, base=base, other=other, keys=keys,
                      distribution=distribution,
                      added=[c.column for c in distribution if c.status == "added"],
                      removed=[c.column for c in distribution if c.status == "removed"],
                      retyped=[c for c in distribution if c.status == "type_changed"],
                      columns=_column_changes(base, other))

    @router.get("/ui/api/datasets/{name}/diff", openapi_extra=declare("read"))
    def diff_rows(request: Request, name: str, a: str, b: str,
                  key: list[str] | None = Query(default=None)) -> Any:
        """Rows added, removed and changed: ``DataClient.diff`` (``ratchet data diff``)."""
        require(request, "read")
        result = data().diff(f"{name}@{_version_number(a, 'a')}",
                             f"{name}@{_version_number(b, 'b')}", _keys(key) or None)
        return {"base": result.base, "other": result.other, "rows_base": result.rows_base,
                "rows_other": result.rows_other, "key": list(result.key or ()),
                "rows_added": result.rows_added, "rows_removed": result.rows_removed,
                "rows_changed": result.rows_changed, "identical": result.identical}

    @router.get("/ui/datasets/{name}/{version}", openapi_extra=declare("read"))
    def version(request: Request, name: str, version: str, page: str = "1") -> Any:
        require(request, "read")
        client = data()
        found = client.get(f"{name}@{_version_number(version, 'version')}")
        pages = max(1, math.ceil(len(found.profile.columns) / COLUMNS_PER_PAGE))
        if not page.isdigit():
            raise InvalidInput(f"page must be a page number (1 to {pages}), got {page!r}")
        shown_page = min(max(int(page), 1), pages)
        shown = found.profile.columns[(shown_page - 1) * COLUMNS_PER_PAGE:
                                      shown_page * COLUMNS_PER_PAGE]
        everyone = client.used_by(found.ref)
        used = list(reversed(everyone))[:MAX_USED_SHOWN]  # newest first
        candidates = [r for r, _ in used]
        if found.created_by_run:
            candidates.insert(0, found.created_by_run)
        readable = readable_runs(request, list(dict.fromkeys(candidates)))
        reports = _validation_reports(client, [r for r in dict.fromkeys(candidates)
                                               if r in readable][:MAX_REPORT_RUNS])
        nullable = {c["name"]: c.get("nullable") for c in found.schema}
        return render(
            request, "datasets/version.html", section="datasets", v=found,
            schema=[_schema_row(c, nullable.get(c.name), rules) for c, rules in
                    zip(shown, _constraints(found, [c.name for c in shown]), strict=True)],
            profiles=[(c, _profile_chart(c)) for c in shown], page=shown_page, pages=pages,
            per_page=COLUMNS_PER_PAGE, used=[(r, role, r in readable) for r, role in used],
            used_total=len(everyone), reports=reports,
            creator_readable=found.created_by_run in readable)

    @router.get("/ui/datasets/{name}", openapi_extra=declare("read"))
    def dataset(request: Request, name: str) -> Any:
        require(request, "read")
        versions = data().list_versions(name)
        if not versions:
            raise NotFound(f"dataset {name!r} has no versions")
        runs = readable_runs(request, [v.created_by_run for v in versions if v.created_by_run])
        return render(request, "datasets/dataset.html", section="datasets", name=name,
                      versions=list(reversed(versions)), readable=runs)

    return router


def _keys(given: list[str] | None) -> list[str]:
    return [k for k in (given or []) if k.strip()]


def _check_keys(keys: list[str], *versions: DatasetVersion) -> None:
    """A key column must be in both versions (checked before the page, not in its
    background request, so a typo is an error page that says which columns there are)."""
    for version in versions:
        missing = [k for k in keys if k not in version.columns]
        if missing:
            raise InvalidInput(f"key column {missing[0]!r} is not in {version.ref} (its "
                               f"columns: {', '.join(version.columns)})")


def _version_number(text: str, what: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"{what} must be a version number (1, 2, ...), got {text!r}")
    return int(text)


# ----------------------------------------------------------------------------- schema
def _schema_row(column: ColumnProfile, arrow_nullable: bool | None,
                rules: list[str]) -> dict[str, Any]:
    return {"name": column.name, "type": column.arrow_type, "kind": column.semantic_type,
            "family": column.family, "arrow_nullable": arrow_nullable, "nulls": column.nulls,
            "null_rate": column.null_rate, "constraints": rules}


def _constraints(version: DatasetVersion, names: list[str]) -> list[list[str]]:
    """Per column, the checks ``ratchet data infer-schema`` proposes from the stored
    profile (dtype aside): the constraints the data met when it was logged."""
    from ratchet.data.schema import infer_schema

    try:
        schema = infer_schema(version.profile, name=version.name)
    except InvalidInput as e:
        return [[f"none inferred: {e}"] for _ in names]
    out: list[list[str]] = []
    for name in names:
        column = schema.columns.get(name)
        if column is None:
            out.append([])
            continue
        rules = [] if column.nullable else ["no nulls"]
        if column.unique:
            rules.append("unique")
        rules.extend(_check_text(check) for check in column.checks)
        out.append(rules)
    return out


def _check_text(check: Any) -> str:
    stats = getattr(check, "statistics", None) or {}
    if check.name == "in_range" and "min_value" in stats:
        return f"between {_value(stats['min_value'])} and {_value(stats['max_value'])}"
    if check.name == "isin" and "allowed_values" in stats:
        values = [str(v) for v in stats["allowed_values"]]
        shown = ", ".join(values[:8]) + (f" (+{len(values) - 8} more)" if len(values) > 8 else "")
        return f"one of {shown}"
    text = str(getattr(check, "error", None) or check.name)
    return text if len(text) <= 120 else text[:119] + "…"


def _value(v: Any) -> str:
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    return number(v) if isinstance(v, int | float) else str(v)


# ----------------------------------------------------------------------------- charts
def _profile_chart(column: ColumnProfile) -> dict[str, Any] | None:
    """A small chart of one column's stored distribution, or None when none is stored."""
    categorical = column.semantic_type in ("categorical", "boolean")
    if not (categorical and column.top) and column.histogram is not None \
            and len(column.histogram["counts"]) > 0:
        h = column.histogram
        return _bins_chart(h["edges"], [[float(c) for c in h["counts"]]], counts=True,
                           label=number)
    if column.top:
        labels = [v for v, _ in column.top[:TOP_SHOWN]]
        counts = [float(c) for _, c in column.top[:TOP_SHOWN]]
        rest = sum(c for _, c in column.top[TOP_SHOWN:]) + (column.other_count or 0)
        if rest:
            labels, counts = [*labels, "(other)"], [*counts, float(rest)]
        return _bars_chart(labels, [counts], counts=True)
    if column.family == "datetime" and column.quantiles:
        return _quantile_chart([column.quantiles])
    return None


def _quantile_chart(quantiles: list[Sequence[float]]) -> dict[str, Any] | None:
    """Equal-width bins over the quantiles' range (epoch seconds), each series' mass in
    them from its quantiles (``bin_masses_from_quantiles``): datetimes store no histogram."""
    import numpy as np

    from ratchet.data.profile_compare import bin_masses_from_quantiles

    low = min(q[0] for q in quantiles)
    high = max(q[-1] for q in quantiles)
    if not high > low:
        return None
    edges = list(np.linspace(low, high, DATETIME_BINS + 1))
    series = [list(bin_masses_from_quantiles(q, edges)) for q in quantiles]
    return _bins_chart(edges, series, counts=False, label=_epoch_text)


def _epoch_text(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _share(value: float, total: float) -> str:
    return f"{100 * value / total:.1f}%" if total else "0%"


def _bins_chart(edges: Sequence[float], series: list[list[float]], *, counts: bool,
                label: Any) -> dict[str, Any]:
    """Vertical bars, one slot per bin, one bar per series in each slot."""
    n = len(series[0])
    top = max(max(s) for s in series) or 1.0
    totals = [sum(s) for s in series]
    slot = CHART_WIDTH / n
    width = slot / len(series)
    rects = []
    for i in range(n):
        span = f"[{label(edges[i])}, {label(edges[i + 1])}{']' if i == n - 1 else ')'}"
        for k, values in enumerate(series):
            height = BIN_HEIGHT * values[i] / top
            amount = (f"{int(values[i]):,} rows ({_share(values[i], totals[k])})" if counts
                      else _share(values[i], totals[k]))
            rects.append({"x": round(i * slot + k * width, 2), "y": round(BIN_HEIGHT - height, 2),
                          "w": round(max(width - 1, 0.5), 2), "h": round(height, 2),
                          "series": k, "title": f"{_series_name(k, len(series))}{span}: {amount}"})
    return {"width": CHART_WIDTH, "height": BIN_HEIGHT + 16, "rects": rects, "labels": [
        {"x": 0, "y": BIN_HEIGHT + 13, "text": label(edges[0]), "anchor": "start",
         "title": ""},
        {"x": CHART_WIDTH, "y": BIN_HEIGHT + 13, "text": label(edges[-1]), "anchor": "end",
         "title": ""}]}


def _bars_chart(labels: list[str], series: list[list[float]], *,
                counts: bool) -> dict[str, Any]:
    """Horizontal bars, one row per category, one bar per series in each row."""
    top = max(max(s) for s in series) or 1.0
    totals = [sum(s) for s in series]
    room = CHART_WIDTH - LABEL_WIDTH - (48 if len(series) == 1 else 92)  # shares at the end
    thickness = (ROW_HEIGHT - 4) / len(series)
    rects, texts = [], []
    for i, name in enumerate(labels):
        y = i * ROW_HEIGHT
        shown = name if len(name) <= 18 else name[:17] + "…"
        texts.append({"x": LABEL_WIDTH - 4, "y": y + 13, "text": shown, "anchor": "end",
                      "title": name})
        for k, values in enumerate(series):
            length = room * values[i] / top
            amount = (f"{int(values[i]):,} rows ({_share(values[i], totals[k])})" if counts
                      else _share(values[i], totals[k]))
            rects.append({"x": LABEL_WIDTH, "y": round(y + 2 + k * thickness, 2),
                          "w": round(max(length, 0.5), 2), "h": round(thickness, 2),
                          "series": k, "title": f"{_series_name(k, len(series))}{name}: {amount}"})
        texts.append({"x": CHART_WIDTH, "y": y + 13, "anchor": "end", "title": "",
                      "text": " / ".join(_share(s[i], totals[k]) for k, s in enumerate(series))})
    return {"width": CHART_WIDTH, "height": len(labels) * ROW_HEIGHT + 2, "rects": rects,
            "labels": texts}


def _series_name(k: int, count: int) -> str:
    return "" if count == 1 else ("a: " if k == 0 else "b: ")


# ----------------------------------------------------------------------------- diff
def _column_changes(base: DatasetVersion, other: DatasetVersion) -> list[dict[str, Any]]:
    """Per column in both versions: the profile side by side and both distributions on
    one chart (the second re-binned onto the first's bins, as the drift statistics are)."""
    theirs = {c.name: c for c in other.profile.columns}
    out = []
    for ours in base.profile.columns:
        new = theirs.get(ours.name)
        if new is not None:
            out.append({"name": ours.name, "a": ours, "b": new, "chart": _overlay(ours, new)})
    return out


def _overlay(a: ColumnProfile, b: ColumnProfile) -> dict[str, Any] | None:
    from ratchet.data.profile_compare import (
        OTHER_BUCKET,
        bin_masses_from_quantiles,
        category_distributions,
    )

    if a.top is not None and b.top is not None:
        labels, r, c = category_distributions(a.top, a.other_count or 0, b.top,
                                              b.other_count or 0)
        order = sorted(range(len(labels)), key=lambda i: -(r[i] + c[i]))
        kept = [i for i in order if labels[i] != OTHER_BUCKET][:TOP_SHOWN]
        rest = [i for i in range(len(labels)) if i not in kept]
        names = [labels[i] for i in kept]
        ra, cb = [float(r[i]) for i in kept], [float(c[i]) for i in kept]
        if rest:
            names.append("(other)")
            ra.append(float(sum(r[i] for i in rest)))
            cb.append(float(sum(c[i] for i in rest)))
        return _bars_chart(names, [ra, cb], counts=False) if names else None
    h = a.histogram
    if h is not None and b.quantiles and len(h["counts"]) > 1:
        total = sum(h["counts"]) or 1
        mine = [c / total for c in h["counts"]]
        bh = b.histogram
        if bh is not None and list(bh["edges"]) == list(h["edges"]):
            other_total = sum(bh["counts"]) or 1
            yours = [c / other_total for c in bh["counts"]]
        else:
            yours = [float(m) for m in bin_masses_from_quantiles(b.quantiles, h["edges"])]
        return _bins_chart(h["edges"], [mine, yours], counts=False, label=number)
    if a.family == b.family == "datetime" and a.quantiles and b.quantiles:
        return _quantile_chart([a.quantiles, b.quantiles])
    return None


def _validation_reports(client: DataClient, run_ids: list[str]) -> list[dict[str, Any]]:
    """The validation reports stored with these runs (``validation/*.json``, written by
    ``ratchet.data.validate`` inside a run), newest run first."""
    from ratchet.data.validation import ValidationReport

    found: list[dict[str, Any]] = []
    for run_id in run_ids:
        for entry in client.tracking.list_artifacts(run_id, "validation"):
            if not entry.path.endswith(".json"):
                continue
            try:
                report = ValidationReport.from_json(
                    client.tracking.read_artifact(run_id, entry.path).decode("utf-8"))
            except (InvalidInput, UnicodeDecodeError) as e:
                found.append({"run_id": run_id, "path": entry.path, "report": None,
                              "error": str(e)})
                continue
            found.append({"run_id": run_id, "path": entry.path, "report": report,
                          "error": None})
    return found
