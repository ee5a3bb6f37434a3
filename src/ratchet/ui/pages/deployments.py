"""The dashboard's deployments pages: what each deployment serves, its plan history, live
traffic, latency and errors from the prediction log, and drift and performance over time
from the stored monitor results (each result rendered, and its stored HTML report served
with a policy that runs no script).

Data comes from what ``ratchet deploy`` and ``ratchet monitor`` use: the deployment client
(plans resolved to model versions), ``predictions`` (DuckDB over the Parquet log) and the
monitor store. Each page needs read on the deployment; the listing leaves out the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request

from ratchet.errors import InvalidInput, NotFound
from ratchet.server.permissions import declare
from ratchet.ui.access import require, visible
from ratchet.ui.templating import render

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.serving.deployments import DeploymentClient, DeploymentStatus
    from ratchet.store.deployment_store import PlanRevision
    from ratchet.store.monitor_store import StoredMonitorResult
    from ratchet.store.records import AliasEvent
    from ratchet.workspace import Workspace

# The traffic charts' time windows (the prediction log is read for the chosen one).
WINDOWS = ("1h", "6h", "24h", "7d")
DEFAULT_WINDOW = "1h"  # live traffic; a day or a week on request (they read more of the log)
# Bucket widths (ms) the traffic charts pick from: the narrowest that keeps the data span
# under TARGET_POINTS points, so a burst of a few seconds and a week both read well.
BUCKETS_MS = (1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000,
              21_600_000, 86_400_000)
TARGET_POINTS = 60
MONITOR_RESULTS = 100  # newest monitor results charted and listed
RECENT_ERRORS = 10  # newest failed requests listed under the traffic charts
REPORT_CSP = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; "
              "img-src data:; sandbox; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
CHARTED_METRICS = {"classification": ("accuracy", "roc_auc", "f1"),
                   "regression": ("rmse", "mae", "r2")}


# ---------------------------------------------------------------- traffic (pure)
def bucket_ms(span_ms: int) -> int:
    for width in BUCKETS_MS:
        if span_ms // width < TARGET_POINTS:
            return width
    return BUCKETS_MS[-1]


def traffic(frame: pd.DataFrame) -> dict[str, Any] | None:
    """Per time bucket of a prediction-log frame: predictions per variant, request latency
    p50/p95 and the share of failed requests (%); and per variant totals. None: no rows.
    Vectorized (integer codes, bincount): a page reads up to a day of traffic."""
    import numpy as np
    import pandas as pd

    if len(frame) == 0:
        return None
    stamps = ((frame["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(
        milliseconds=1)).to_numpy(dtype="int64")
    width = bucket_ms(int(stamps.max() - stamps.min()))
    start = int(stamps.min()) // width * width
    index = (stamps - start) // width
    n = int(index.max()) + 1
    x = [(start + i * width) / 1000 for i in range(n)]
    var_codes, variants = pd.factorize(frame["variant"].fillna(""), sort=True)
    k = len(variants)
    rows_per = np.bincount(var_codes * n + index, minlength=k * n).reshape(k, n)
    # A request's latency and status are logged on each of its rows: one per request
    # (and variant: a split routed per row logs each variant's part on its own).
    req_codes, _ = pd.factorize(frame["request_id"])
    _, first = np.unique(req_codes.astype(np.int64) * k + var_codes, return_index=True)
    r_bucket, r_variant = index[first], var_codes[first]
    r_failed = (frame["status"] != "ok").to_numpy()[first]
    r_latency = frame["latency_ms"].to_numpy(dtype=float)[first]
    requests = np.bincount(r_bucket, minlength=n)
    failed = np.bincount(r_bucket, weights=r_failed.astype(float), minlength=n)
    quantiles = pd.Series(r_latency).groupby(r_bucket).quantile([0.5, 0.95]).unstack()

    def at(column: float) -> list[float | None]:
        values = quantiles[column] if column in quantiles else pd.Series(dtype=float)
        return [None if i not in values.index or pd.isna(values[i]) else float(values[i])
                for i in range(n)]

    totals = []
    for code, name in enumerate(variants):
        mine = r_variant == code
        latency = r_latency[mine]
        latency = latency[~np.isnan(latency)]
        totals.append({
            "variant": str(name), "rows": int(rows_per[code].sum()),
            "requests": int(mine.sum()), "errors": int(r_failed[mine].sum()),
            "p50": float(np.percentile(latency, 50)) if len(latency) else None,
            "p95": float(np.percentile(latency, 95)) if len(latency) else None})
    return {"x": x, "bucket_ms": width,
            "traffic": [{"label": str(name), "values": rows_per[code].tolist()}
                        for code, name in enumerate(variants)],
            "latency": [{"label": "p50", "values": at(0.5)},
                        {"label": "p95", "values": at(0.95)}],
            "errors": [{"label": "failed requests (%)", "values": [
                None if requests[i] == 0 else float(100 * failed[i] / requests[i])
                for i in range(n)]}],
            "totals": totals}


def recent_errors(frame: pd.DataFrame, limit: int | None = None) -> list[dict[str, Any]]:
    """The newest failed requests of a prediction-log frame (one per request and variant):
    when, variant, model version and the error the server logged."""
    if len(frame) == 0:
        return []
    failed = frame[frame["status"] != "ok"].drop_duplicates(["request_id", "variant"])
    failed = failed.iloc[::-1][:limit or RECENT_ERRORS]
    return [{"at": int(t.value // 1_000_000), "request_id": rid, "variant": variant,
             "model": f"{model} v{version}", "error": error or ""}
            for t, rid, variant, model, version, error in zip(
                failed["timestamp"], failed["request_id"], failed["variant"],
                failed["model_name"], failed["model_version"], failed["error"], strict=True)]


# ---------------------------------------------------------------- monitor results (pure)
def monitor_charts(results: Sequence[StoredMonitorResult]) -> list[dict[str, Any]]:
    """Charts over the monitor results' window ends: each column's drift p-value, the
    share of drifted columns, and each metric realized (from feedback) and estimated."""
    evaluated = [r for r in results if r.result.get("drift")]
    charts: list[dict[str, Any]] = []
    if evaluated:
        x = [r.window_end / 1000 for r in evaluated]
        columns: dict[str, None] = {}
        for r in evaluated:
            for c in r.result["drift"].get("columns") or []:
                columns.setdefault(c["column"], None)
        p_values = []
        for name in columns:
            values = []
            for r in evaluated:
                found = [c for c in r.result["drift"].get("columns") or []
                         if c["column"] == name]
                values.append(found[0].get("p_value") if found else None)
            p_values.append({"label": name, "values": values})
        prediction = [(r.result["drift"].get("prediction") or {}).get("p_value")
                      for r in evaluated]
        if any(v is not None for v in prediction):
            p_values.append({"label": "prediction", "values": prediction})
        charts.append({"id": "drift-p", "title": "Drift test p-value per column "
                       "(below the threshold, usually 0.05: drifted)", "x": x,
                       "series": p_values})
        share = [{"label": "drifted columns (share)",
                  "values": [r.result["drift"].get("share") for r in evaluated]}]
        multivariate = [(r.result["drift"].get("multivariate") or {}).get("auc")
                        for r in evaluated]
        if any(v is not None for v in multivariate):
            share.append({"label": "multivariate classifier AUC", "values": multivariate})
        charts.append({"id": "drift-share", "title": "Share of drifted columns",
                       "x": x, "series": share})
    judged = [r for r in results if r.result.get("performance")]
    if judged:
        task = judged[-1].result["performance"].get("task", "classification")
        x = [r.window_end / 1000 for r in judged]
        for metric in CHARTED_METRICS.get(task, ()):
            realized = [((r.result["performance"].get("metrics") or {}).get(metric))
                        for r in judged]
            estimated = [((r.result["performance"].get("estimated") or {}).get(metric))
                         for r in judged]
            series = [{"label": "realized (feedback)", "values": realized}]
            if any(v is not None for v in estimated):
                series.append({"label": "estimated (no labels)", "values": estimated})
            if any(v is not None for s in series for v in s["values"]):
                charts.append({"id": f"perf-{metric}", "title": f"{metric}: realized and "
                               "estimated", "x": x, "series": series})
    return charts


def distribution_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """A column's reference and current histograms as rows of (label, shares, and bar
    lengths relative to the column's largest share)."""
    reference = [float(v) for v in entry.get("reference") or []]
    current = [float(v) for v in entry.get("current") or []]
    total_r, total_c = sum(reference) or 1.0, sum(current) or 1.0
    if entry.get("kind") == "numeric":
        edges = entry.get("edges") or []
        labels = [f"{a:.4g} to {b:.4g}" for a, b in pairwise(edges)]
    else:
        labels = [str(c) for c in entry.get("categories") or []]
    shares = [(label, r / total_r, c / total_c)
              for label, r, c in zip(labels, reference, current, strict=False)]
    top = max((max(r, c) for _, r, c in shares), default=0.0) or 1.0
    return [{"label": label, "reference": r, "current": c, "reference_bar": r / top,
             "current_bar": c / top} for label, r, c in shares]


def metric_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each performance metric of a result with its realized and estimated value."""
    performance = result.get("performance") or {}
    realized = performance.get("metrics") or {}
    estimated = performance.get("estimated") or {}
    names = [k for k in dict.fromkeys([*realized, *estimated])
             if k not in ("n", "unknown_labels", "estimated", "calibrated", "note")]
    return [{"name": k, "realized": realized.get(k), "estimated": estimated.get(k)}
            for k in names]


# ---------------------------------------------------------------- views
def _plan_view(status: DeploymentStatus) -> list[dict[str, Any]]:
    """The plan's variants: role, model reference, version served now, traffic share."""
    plan = status.plan
    total = sum(v.weight for v in plan.variants) or 1.0
    roles = {"single": "primary", "split": "split", "canary": "", "shadow": "primary"}
    out = []
    for i, v in enumerate(plan.variants):
        role = roles[plan.kind] if plan.kind != "canary" else ("canary" if i else "primary")
        out.append({"name": v.name, "model": v.model, "role": role,
                    "served": status.versions.get(v.name), "share": 100 * v.weight / total})
    if plan.shadow is not None:
        out.append({"name": plan.shadow.name, "model": plan.shadow.model, "role": "shadow",
                    "served": status.versions.get(plan.shadow.name), "share": None})
    return out


def _describe(plan: dict[str, Any]) -> str:
    from ratchet.serving.traffic_plan import TrafficPlan

    try:
        parsed = TrafficPlan.from_dict(plan)
    except InvalidInput:  # an old revision in a shape this version no longer reads
        return str(plan)
    return f"{parsed.kind}: {parsed.describe()}"


def plan_timeline(revisions: Sequence[PlanRevision],
                  moves: dict[str, list[AliasEvent]]) -> list[dict[str, Any]]:
    """Every change to what a deployment serves, newest first: its plan revisions, and
    the moves of an alias a plan named while that plan was current (``churn@champion``
    moved from v6 to v7 changes the served model without a new revision)."""
    from ratchet.registry.uris import parse_model_uri
    from ratchet.serving.traffic_plan import TrafficPlan

    rows: list[dict[str, Any]] = [
        {"kind": "plan", "at": r.created_at, "revision": r.revision, "actor": r.actor,
         "reason": r.reason, "what": _describe(r.plan)} for r in revisions]
    for i, r in enumerate(revisions):
        until = revisions[i + 1].created_at if i + 1 < len(revisions) else None
        try:
            refs = {v.model for v in TrafficPlan.from_dict(r.plan).all_variants}
        except InvalidInput:
            continue
        for ref in sorted(refs):
            parsed = parse_model_uri(ref)
            if parsed.name is None or parsed.alias is None:
                continue
            for e in moves.get(ref, []):
                if e.at > r.created_at and (until is None or e.at <= until):
                    before = "unset" if e.from_version is None else f"v{e.from_version}"
                    after = "unset" if e.to_version is None else f"v{e.to_version}"
                    rows.append({"kind": "alias", "at": e.at, "revision": r.revision,
                                 "actor": e.actor, "reason": e.reason,
                                 "what": f"{ref}: {before} → {after}"})
    return sorted(rows, key=lambda row: (row["at"], row["kind"] == "plan"), reverse=True)


def _window(value: str) -> str:
    if value not in WINDOWS:
        raise InvalidInput(f"window must be one of {', '.join(WINDOWS)}; got {value!r}")
    return value


def routes(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def client() -> DeploymentClient:
        from ratchet.serving.deployments import DeploymentClient

        return workspace.client(DeploymentClient)

    def results(name: str, limit: int | None = MONITOR_RESULTS) -> list[StoredMonitorResult]:
        from ratchet.monitoring.monitor import list_monitor_results

        return list_monitor_results(name, limit=limit, workspace=workspace)

    def one_result(request: Request, name: str, result_id: str) -> StoredMonitorResult:
        require(request, "read", "deployment", name)
        try:
            found = workspace.stores.monitor.get(result_id)
        except NotFound:
            found = None
        if found is None or found.deployment != name:
            raise NotFound(f"deployment {name!r} has no monitor result {result_id!r}")
        return found

    @router.get("/ui/deployments", openapi_extra=declare("read"))
    def deployments(request: Request) -> Any:
        shown = visible(request, "deployment", client().list_statuses(), lambda d: d.name)
        monitor = workspace.stores.monitor
        rows = [{"status": s, "plan": _plan_view(s), "latest": monitor.latest(s.name)}
                for s in shown]
        return render(request, "deployments/index.html", section="deployments", rows=rows)

    @router.get("/ui/deployments/{name}", openapi_extra=declare("read"))
    def deployment(request: Request, name: str,
                   window: str = Query(DEFAULT_WINDOW)) -> Any:
        import datetime as dt

        from ratchet.monitoring.performance import parse_window
        from ratchet.serving.prediction_query import predictions

        require(request, "read", "deployment", name)
        window = _window(window)
        deployments = client()
        status = deployments.status(name)
        since = dt.datetime.now(dt.UTC) - parse_window(window).to_pytimedelta()
        frame = predictions(name, since=since, workspace=workspace)
        seen = traffic(frame)
        errors = recent_errors(frame)
        revisions = deployments.history(name)
        moves = _alias_moves(request, deployments, revisions)
        latest = workspace.stores.monitor.latest(status.name)
        return render(request, "deployments/detail.html", section="deployments",
                      current=status, deployment=deployments.get(name),
                      plan=_plan_view(status), history=plan_timeline(revisions, moves),
                      traffic=seen, window=window, windows=WINDOWS, latest=latest,
                      errors=errors, errors_shown=RECENT_ERRORS,
                      charts=_traffic_charts(seen) if seen else [])

    @router.get("/ui/deployments/{name}/drift", openapi_extra=declare("read"))
    def drift(request: Request, name: str) -> Any:
        require(request, "read", "deployment", name)
        status = client().status(name)
        found = results(status.name)
        return render(request, "deployments/drift.html", section="deployments",
                      current=status, results=list(reversed(found)),
                      charts=monitor_charts(found), limit=MONITOR_RESULTS)

    @router.get("/ui/deployments/{name}/monitor/{result_id}", openapi_extra=declare("read"))
    def monitor_result(request: Request, name: str, result_id: str) -> Any:
        found = one_result(request, name, result_id)
        result = found.result
        distributions = {column: {"kind": entry.get("kind"), "rows": distribution_rows(entry)}
                         for column, entry in (result.get("distributions") or {}).items()}
        return render(request, "deployments/result.html", section="deployments",
                      name=found.deployment, stored=found, result=result,
                      distributions=distributions, metrics=metric_rows(result),
                      has_report=_report_file(workspace, found) is not None)

    @router.get("/ui/deployments/{name}/monitor/{result_id}/report.html",
                openapi_extra=declare("read"))
    def monitor_report(request: Request, name: str, result_id: str) -> Any:
        """The stored HTML report as written by the monitor, under a policy that runs
        none of its scripts (its tables show; its plots are drawn on the result page)."""
        from starlette.responses import FileResponse

        found = one_result(request, name, result_id)
        path = _report_file(workspace, found)
        if path is None:
            raise NotFound(f"the HTML report of monitor result {result_id!r} is not in this "
                           "server's reports folder (written elsewhere, or removed); the "
                           "result page shows the same data")
        return FileResponse(path, media_type="text/html; charset=utf-8", headers={
            "Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store"})

    return router


def _alias_moves(request: Request, deployments: DeploymentClient,
                 revisions: Sequence[PlanRevision]) -> dict[str, list[AliasEvent]]:
    """The alias history of each ``name@alias`` the plans named, for models the caller
    may read (another model's history is not shown through a deployment)."""
    from ratchet.registry.uris import parse_model_uri
    from ratchet.serving.traffic_plan import TrafficPlan
    from ratchet.ui.access import can

    refs: set[str] = set()
    for r in revisions:
        try:
            refs |= {v.model for v in TrafficPlan.from_dict(r.plan).all_variants}
        except InvalidInput:
            continue
    found: dict[str, list[AliasEvent]] = {}
    for ref in sorted(refs):
        parsed = parse_model_uri(ref)
        if parsed.name is None or parsed.alias is None or \
                not can(request, "read", "model", parsed.name):
            continue
        try:
            found[ref] = deployments.registry.alias_history(parsed.name, parsed.alias)
        except NotFound:  # the model was deleted: its moves are gone with it
            continue
    return found


def _report_file(workspace: Workspace, found: StoredMonitorResult) -> Path | None:
    """The result's HTML report if it is in this server's reports folder of its deployment
    (``<home>/reports/<deployment>/``, where the monitor writes by default). A path
    elsewhere is not served: report paths are stored by whoever ran the monitor (through
    the team server, any writer), so serving any path would read any ``.html`` file of the
    server's disk; a report written with ``--out``, on another machine, or removed is
    reported as not here."""
    if not found.report_path or not found.report_path.endswith(".html"):
        return None
    folder = (workspace.settings.home / "reports" / found.deployment).resolve()
    path = Path(found.report_path).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        return None
    return path


def _traffic_charts(seen: dict[str, Any]) -> list[dict[str, Any]]:
    from ratchet.ui.templating import duration

    per = duration(seen["bucket_ms"])
    return [{"id": "traffic", "title": f"Predictions per variant (per {per})",
             "x": seen["x"], "series": seen["traffic"]},
            {"id": "latency", "title": "Request latency (ms)", "x": seen["x"],
             "series": seen["latency"]},
            {"id": "errors", "title": "Error rate (% of requests)", "x": seen["x"],
             "series": seen["errors"]}]
