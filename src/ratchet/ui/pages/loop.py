"""The dashboard's continuous-training pages: each controller's state, a model's timeline
with every decision's evidence laid out (the trigger's statistic, the gate's confidence
interval, each rollout guard, the rollback's reason), approve/reject for a challenger that
waits, and the backtests recorded for the model.

Reads go through ``ratchet.ct`` (``get_controller_state``/``list_events``: what ``ratchet
ct status`` and ``ratchet ct history`` show); an approval or rejection goes through
``ratchet.ct.approval.request`` (what ``ratchet ct approve/reject`` calls), with the
signed-in user as the actor.

A backtest is recorded as a run tagged ``ratchet.ct.backtest`` = the model, holding the
result as ``backtest/result.json`` (``BacktestResult.to_dict()``) and, optionally, its HTML
report as ``backtest/report.html``. The dashboard draws the result itself (no script runs
from stored data); the stored HTML is offered as a download whose CSP forbids scripts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ratchet.ct.backtest_record import BACKTEST_REPORT, BACKTEST_RESULT, BACKTEST_TAG
from ratchet.errors import InvalidInput, NotFound
from ratchet.server.permissions import declare
from ratchet.ui.access import caller, can, require, visible
from ratchet.ui.templating import number, render

if TYPE_CHECKING:
    from ratchet.store.ct_event_store import CTEvent
    from ratchet.store.ct_state_store import ControllerState
    from ratchet.store.records import Run
    from ratchet.workspace import Workspace

CHAMPION = "champion"
AWAITING = "awaiting_approval"
MAX_BACKTESTS = 200
PAGE_EVENTS = 100  # a timeline page, newest first
MAX_RESULT_BYTES = 20 * 1024 * 1024
# A stored HTML report is a download: even opened in place, nothing in it may run.
REPORT_CSP = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; "
              "img-src data:; sandbox; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
GOOD = {"promoted", "approved", "shadow-passed", "canary-passed"}
BAD = {"rejected", "rolled-back", "shadow-failed", "canary-failed", "retrain-failed",
       "disapproved"}
WARN = {"trigger", "trigger-blocked", "retrain-skipped", "retrain-requested",
        "approve-requested", "reject-requested"}


class Answer(BaseModel):
    """An approval or a rejection from the page; the reason goes on the record."""

    reason: str | None = Field(default=None, max_length=2000)


def routes(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/ui/loop", openapi_extra=declare("read"))
    def overview(request: Request) -> Any:
        states = visible(request, "model", workspace.stores.ct_state.list_states(),
                         lambda s: s.model)
        rows = [_state_row(workspace, s) for s in states]
        backtests = _readable(request, _backtests(workspace))
        return render(request, "loop/overview.html", section="loop", rows=rows,
                      backtests=backtests)

    @router.get("/ui/loop/{model:path}", openapi_extra=declare("read"))
    def model_page(request: Request, model: str, page: str | None = None) -> Any:
        require(request, "read", "model", model)
        number_ = _page_number(page)
        from ratchet.ct.timeline import list_events

        state = workspace.stores.ct_state.get(model)
        events = list_events(model, workspace=workspace)
        backtests = _readable(request, _backtests(workspace, model))
        if state is None and not events and not backtests:
            raise NotFound(f"no controller has run for model {model!r} yet and no backtest "
                           "is recorded for it (ratchet ct tick POLICY, or ratchet "
                           "controller POLICY)")
        row = _state_row(workspace, state) if state is not None else None
        gates = [e for e in events if e.kind == "gate"]  # this cycle's is the newest
        pending = _pending(state, _event_view(gates[-1])["plot"] if gates else None) \
            if state is not None else None
        pages = max(1, math.ceil(len(events) / PAGE_EVENTS))
        if number_ > pages:
            raise NotFound(f"model {model!r} has {len(events)} events: {pages} page"
                           f"{'s' if pages > 1 else ''} of {PAGE_EVENTS}, not {number_}")
        end = len(events) - (number_ - 1) * PAGE_EVENTS
        shown = events[max(0, end - PAGE_EVENTS):end]
        views = [_event_view(e) for e in reversed(shown)]  # newest first
        return render(request, "loop/model.html", section="loop", model=model, row=row,
                      state=state, pending=pending, events=views, backtests=backtests,
                      page=number_, pages=pages, total=len(events),
                      may_answer=can(request, "write", "model", model),
                      why=((state.data.get("watch") or {}).get("why") or []) if state else [])

    def answer(request: Request, model: str, kind: str, body: Answer) -> dict[str, Any]:
        require(request, "write", "model", model)
        from ratchet.ct.approval import request as leave_request

        actor = caller(request).name
        reason = (body.reason or "").strip() or None
        leave_request(model, kind, actor=actor, reason=reason,  # type: ignore[arg-type]
                      workspace=workspace)
        return {"model": model, "kind": kind, "actor": actor, "reason": reason}

    @router.post("/ui/api/loop/{model:path}/approve", openapi_extra=declare("write"))
    def approve(request: Request, model: str, body: Answer) -> Any:
        return answer(request, model, "approve", body)

    @router.post("/ui/api/loop/{model:path}/reject", openapi_extra=declare("write"))
    def reject(request: Request, model: str, body: Answer) -> Any:
        return answer(request, model, "reject", body)

    @router.get("/ui/backtests/{run_id}", openapi_extra=declare("read"))
    def backtest_page(request: Request, run_id: str) -> Any:
        run, model = _backtest_run(request, workspace, run_id)
        result = _read_result(workspace, run)
        # Any writer can tag a run: take only the shapes BacktestResult.to_dict() writes.
        summary = _dicts(result.get("summary"))
        periods = result.get("periods")
        return render(request, "loop/backtest.html", section="loop", run=run, model=model,
                      rows=_count(result.get("rows")), seconds=_count(result.get("seconds")),
                      summary=summary, columns=list(summary[0]) if summary else [],
                      promotions=_dicts(result.get("promotions")),
                      chart=_period_chart(periods if isinstance(periods, Mapping) else {}),
                      events=[_backtest_event(e) for e in _list(result.get("events"))],
                      has_report=_has_artifact(workspace, run, BACKTEST_REPORT))

    @router.get("/ui/backtests/{run_id}/report.html", openapi_extra=declare("read"))
    def backtest_report(request: Request, run_id: str) -> Any:
        from starlette.responses import Response

        from ratchet.tracking.client import TrackingClient

        run, _ = _backtest_run(request, workspace, run_id)
        body = workspace.client(TrackingClient).read_artifact(run.run_id, BACKTEST_REPORT)
        name = f"backtest-{run.run_id}.html"
        return Response(body, media_type="text/html; charset=utf-8", headers={
            "Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store"})

    return router


def _page_number(text: str | None) -> int:
    if text is None or text == "":
        return 1
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"page must be a positive whole number, got {text!r}")
    return int(text)


# ---------------------------------------------------------------------- the state
def _state_row(workspace: Workspace, state: ControllerState) -> dict[str, Any]:
    """One controller as the overview shows it (what ``ratchet ct status`` prints)."""
    cycle = state.data.get("cycle") or {}
    last = state.data.get("last_cycle") or {}
    in_cycle = state.state != "watching" and bool(cycle)
    phase = state.state.replace("_", " ")
    if state.state == "canary":
        percent = _last_evidence(workspace, state.model, "canary-started").get("percent")
        if percent is not None:
            phase = f"canary {number(percent)}%"
    return {"model": state.model, "state": state.state, "phase": phase,
            "tone": _state_tone(state.state), "cycle": state.cycle,
            "champion": _champion(workspace, state.model),
            "challenger": cycle.get("challenger") if in_cycle else None,
            "cycle_champion": cycle.get("champion") if in_cycle else None,
            "last_outcome": last.get("reason"),
            "awaiting": state.state == AWAITING,
            "requests": [_request_view(r) for r in state.requests],
            "updated_at": state.updated_at, "ticked": state.seq > 0,
            "lease": state.lease_holder,
            "lease_expires_at": state.lease_expires_at,
            "baseline": _baseline(state.data.get("watch") or {})}


def _state_tone(state: str) -> str:
    if state == AWAITING:
        return "warn"
    if state in ("rolling_back", "rejecting"):
        return "bad"
    if state in ("shadow", "canary", "promoting"):
        return "good"
    return ""


def _champion(workspace: Workspace, model: str) -> int | None:
    try:
        return workspace.stores.registry.get_registered_model(model).aliases.get(CHAMPION)
    except NotFound:
        return None


def _last_evidence(workspace: Workspace, model: str, kind: str) -> dict[str, Any]:
    from ratchet.ct.timeline import list_events

    found = list_events(model, kinds=(kind,), workspace=workspace)
    return found[-1].evidence if found else {}


def _baseline(watch: Mapping[str, Any]) -> str | None:
    baseline = watch.get("baseline") or {}
    if not baseline:
        return None
    shown = ", ".join(f"{k} {number(v)}" for k, v in sorted(baseline.items()))
    return f"{shown} — from {watch.get('baseline_source') or '?'}"


def _request_view(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": item.get("kind"), "actor": item.get("actor"),
            "reason": item.get("reason"), "at": item.get("at"), "cycle": item.get("cycle")}


def _pending(state: ControllerState, gate_plot: dict[str, Any] | None) -> dict[str, Any] | None:
    """The challenger waiting for an answer, with the gate's evidence and any answer
    already left for this cycle (the controller acts on it at its next tick)."""
    if state.state != AWAITING:
        return None
    cycle = state.data.get("cycle") or {}
    gate = cycle.get("gate") or {}
    answered = [_request_view(r) for r in state.requests
                if r.get("kind") in ("approve", "reject")
                and r.get("cycle") in (None, state.cycle)]
    return {"cycle": state.cycle, "challenger": cycle.get("challenger"),
            "champion": cycle.get("champion"), "plot": gate_plot,
            "scores": (gate.get("challenger"), gate.get("champion")),
            "flags": [str(f) for f in gate.get("flags") or []],
            "answered": answered}


# ---------------------------------------------------------------------- the timeline
def _event_view(event: CTEvent) -> dict[str, Any]:
    """One event with its evidence laid out: facts, reasons, guard rows, an interval."""
    ev = event.evidence
    view: dict[str, Any] = {
        "id": event.event_id, "kind": event.kind, "at": event.at, "summary": event.summary,
        "actor": event.actor, "tone": _tone(event), "facts": [], "reasons": [],
        "flags": [], "guards": [], "fired": [], "plot": None, "slices": [],
        "raw": json.dumps(ev, indent=2, sort_keys=True, default=str) if ev else ""}
    kind = event.kind
    if kind in ("trigger", "trigger-blocked"):
        _trigger(view, ev)
    elif kind == "gate":
        _gate(view, ev)
    elif kind in ("shadow-passed", "shadow-failed", "canary-passed", "canary-failed"):
        view["reasons"] = _reasons_of(event.summary, kind)
        _guards(view, ev)
    elif kind == "promoted":
        gate = ev.get("gate") or {}
        view["facts"] = [("version", _v(ev.get("version"))), ("was", _v(ev.get("previous")))]
        if gate.get("challenger") is not None and gate.get("champion") is not None:
            view["facts"].append(("gate scores", f"{number(gate['challenger'])} vs "
                                                 f"{number(gate['champion'])}"))
        interval = gate.get("interval")
        if isinstance(interval, list) and len(interval) == 2:  # drawn at its gate event
            view["facts"].append(("gate interval", f"[{_signed(interval[0])}, "
                                                   f"{_signed(interval[1])}]"))
    elif kind in ("rejected", "rolled-back"):
        view["facts"] = [("version", _v(ev.get("version")))]
        view["reasons"] = [str(ev["reason"])] if ev.get("reason") else []
    elif kind in ("approved", "disapproved") or kind.endswith("-requested"):
        view["facts"] = [(k, str(ev[k])) for k in ("kind", "cycle", "reason")
                         if ev.get(k) is not None]
    elif kind in ("retrain-failed", "retrain-skipped"):
        if kind == "retrain-failed":
            view["reasons"] = [str(ev.get("error") or event.summary)]
        view["facts"] = _plain_facts(ev, skip=("error",))
    else:
        view["facts"] = _plain_facts(ev)
    return view


def _tone(event: CTEvent) -> str:
    if event.kind == "gate":
        return "good" if event.evidence.get("passed") else "bad"
    if event.kind in GOOD:
        return "good"
    if event.kind in BAD:
        return "bad"
    return "warn" if event.kind in WARN else ""


def _trigger(view: dict[str, Any], ev: Mapping[str, Any]) -> None:
    for fired in ev.get("fired") or []:
        stats = [(str(k), _fmt(v)) for k, v in sorted((fired.get("evidence") or {}).items())]
        view["fired"].append({"kind": fired.get("kind"), "reason": fired.get("reason"),
                              "stats": stats})
    facts = []
    if "champion" in ev:
        facts.append(("champion", _v(ev.get("champion"))))
    if ev.get("verdict") is not None:
        facts.append(("monitor verdict", str(ev["verdict"])))
    for key, label in (("metrics", "observed"), ("baseline", "baseline")):
        values = ev.get(key) or {}
        if values:
            facts.append((label, ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(values.items()))))
    if ev.get("new_labels") is not None:
        facts.append(("new labeled rows", _fmt(ev["new_labels"])))
    view["facts"] = facts


def _gate(view: dict[str, Any], decision: Mapping[str, Any]) -> None:
    ev = decision.get("evidence") or {}
    policy = ev.get("policy") or {}
    test = ev.get("test") or {}
    ours, theirs = ev.get("challenger") or {}, ev.get("champion") or {}
    metric = ev.get("metric") or policy.get("metric") or "metric"
    view["reasons"] = list(decision.get("reasons") or [])
    view["flags"] = list(decision.get("flags") or [])
    facts = [("metric", str(metric))]
    if ours.get("score") is not None:
        facts.append(("challenger", f"{number(ours['score'])} on {ours.get('n', '?')} rows"))
    if theirs.get("score") is not None:
        facts.append(("champion", f"{number(theirs['score'])} on {theirs.get('n', '?')} rows"))
    if ev.get("improvement") is not None:
        facts.append(("improvement", _signed(ev["improvement"])))
    if policy.get("margin") is not None:
        facts.append(("margin (policy)", number(policy["margin"])))
    if test:
        interval = test.get("interval") or [None, None]
        confidence = test.get("confidence") or policy.get("confidence")
        if interval[0] is not None:
            facts.append((f"{_pct(confidence)} interval", f"[{_signed(interval[0])}, "
                           f"{_signed(interval[1]) if interval[1] is not None else '∞'}]"))
        facts.append(("test", str(test.get("name"))))
        if test.get("p_value") is not None:
            facts.append(("p-value", f"{float(test['p_value']):.3g}"))
        if test.get("holdout") is not None:
            facts.append(("holdout rows", str(test["holdout"])))
        if test.get("smallest_detectable") is not None:
            facts.append(("smallest detectable", number(test["smallest_detectable"])))
    for side, values in (("challenger", ours), ("champion", theirs)):
        if values.get("latency_p99_ms") is not None:
            facts.append((f"{side} p99 latency", f"{number(values['latency_p99_ms'])} ms"))
    view["facts"] = facts
    low = (test.get("interval") or [None])[0]
    estimate = ev.get("improvement")
    if low is not None and estimate is not None:
        high = (test.get("interval") or [None, None])[1]
        view["plot"] = interval_plot(low, high, estimate, threshold=policy.get("margin"),
                                     label=f"{metric} improvement, challenger over champion")
    slices = sorted(set(ours.get("slices") or {}) | set(theirs.get("slices") or {}))
    view["slices"] = [(name, _fmt((theirs.get("slices") or {}).get(name)),
                       _fmt((ours.get("slices") or {}).get(name)),
                       _fmt((ours.get("slice_sizes") or {}).get(name))) for name in slices]


def _guards(view: dict[str, Any], ev: Mapping[str, Any]) -> None:
    """Each rollout guard's measurement, and its limit where the evidence holds one."""
    rows: list[tuple[str, str, str, str]] = []  # guard, measured, limit, verdict
    if "rows" in ev:
        needed = ev.get("needed")
        enough = needed is None or int(ev["rows"]) >= int(needed)
        rows.append(("traffic", f"{ev['rows']} rows in {ev.get('requests', '?')} requests",
                     f"{needed} needed" if needed is not None else "",
                     "ok" if enough else "short"))
    if "errors" in ev:
        rate = ev.get("error_rate")
        rows.append(("errors", f"{ev['errors']}" + (f" ({_pct(rate)})" if rate is not None
                                                     else ""), "", ""))
    if ev.get("latency_p99_ms") is not None:
        rows.append(("p99 latency", f"{number(ev['latency_p99_ms'])} ms", "", ""))
    if ev.get("disagreement") is not None:
        rows.append(("disagreement with the champion",
                     f"{_pct(ev['disagreement'])} of {ev.get('compared', '?')} rows", "", ""))
    live = ev.get("live") or {}
    if live.get("note"):
        rows.append((f"live {live.get('metric', '')}", str(live["note"]), "", "not judged"))
    elif live.get("canary") is not None:
        measured = f"canary {number(live['canary'])} vs champion {number(live.get('champion'))}"
        limit = ""
        if live.get("standard_error") is not None:
            limit = f"drop {_signed(live.get('drop'))}, 2 SE {number(2 * live['standard_error'])}"
        lost = any(r.startswith(f"live {live.get('metric', '')}") or
                   f": live {live.get('metric', '')}" in r for r in view["reasons"])
        rows.append((f"live {live.get('metric', '')}", measured, limit,
                     "over" if lost else ""))
        labeled = ev.get("labeled")
        if isinstance(labeled, list) and len(labeled) == 2:
            rows.append(("labeled rows", f"canary {labeled[0]}, champion {labeled[1]}", "", ""))
        if live.get("drop") is not None and live.get("standard_error") is not None:
            drop, se = _float(live["drop"]), _float(live["standard_error"])
            view["plot"] = interval_plot(-drop - 2 * se, -drop + 2 * se, -drop,
                                         label=f"live {live.get('metric', '')}: canary - "
                                               "champion, ±2 standard errors")
    shift = ev.get("prediction_shift") or {}
    if shift.get("statistic") is not None:
        bound = _float(shift.get("expected") or 0.0) + _float(shift.get("tolerance") or 0.0)
        over = _float(shift["statistic"]) > bound
        verdict = "overridden" if shift.get("overridden") else ("over" if over else "ok")
        rows.append((f"answer shift ({shift.get('test', '')})", number(shift["statistic"]),
                     f"≤ {number(bound)}", verdict))
        if shift.get("overridden"):
            view["flags"].append(str(shift["overridden"]))
    if ev.get("ended_by"):
        view["flags"].append(str(ev["ended_by"]))
    view["guards"] = rows


def _reasons_of(summary: str, kind: str) -> list[str]:
    """A failed guard's reasons: the summary is ``canary: why`` (see the controller)."""
    if not kind.endswith("-failed"):
        return []
    return [summary.split(": ", 1)[1] if ": " in summary else summary]


def _plain_facts(ev: Mapping[str, Any], skip: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Evidence of a kind with no layout of its own: its values, nested ones one level
    down as ``key.inner`` (the raw JSON stays below for anything deeper)."""
    skipped = set(skip)
    facts = []
    for key, value in sorted(ev.items()):
        if key in skipped:
            continue
        if isinstance(value, Mapping):
            facts += [(f"{key}.{k}", _fmt(v)) for k, v in sorted(value.items())
                      if not isinstance(v, Mapping | list)]
        elif isinstance(value, list):
            if all(not isinstance(v, Mapping | list) for v in value):
                facts.append((str(key), ", ".join(_fmt(v) for v in value)))
        else:
            facts.append((str(key), _fmt(value)))
    return facts


# ---------------------------------------------------------------------- the interval plot
def interval_plot(low: Any, high: Any, estimate: Any, *, threshold: Any = None,
                  label: str = "", width: int = 420, height: int = 70) -> dict[str, Any] | None:
    """Where to draw an interval against zero (and a threshold) in an SVG of ``width``:
    the axis spans every value with some room; an open end (None) runs to the edge."""
    lo, est = _float(low), _float(estimate)
    hi = _float(high) if high is not None else None
    values = [0.0, lo, est] + ([hi] if hi is not None else [])
    limit = _float(threshold) if threshold is not None else None
    if limit is not None and limit != 0:
        values.append(limit)
    if not all(math.isfinite(v) for v in values):
        return None
    first, last = min(values), max(values)
    room = (last - first) * 0.12 or 0.05
    first, last = first - room, last + room
    pad = 64  # room for the ends' labels
    inner = width - 2 * pad

    def x(value: float) -> float:
        return round(pad + (value - first) / (last - first) * inner, 1)

    right = x(hi) if hi is not None else width - pad
    clears = lo > 0 and (limit is None or est > limit)
    return {"width": width, "height": height, "label": label, "axis": (pad, width - pad),
            "zero": x(0.0), "low": x(lo), "high": right, "estimate": x(est),
            "threshold": x(limit) if limit is not None and limit != 0 else None,
            "threshold_text": f"margin {number(limit)}" if limit else "",
            "low_text": _signed(lo), "high_text": _signed(hi) if hi is not None else "∞",
            "estimate_text": _signed(est), "tone": "good" if clears else "bad",
            "open": hi is None,
            "text": f"{label}: {_signed(est)}, interval [{_signed(lo)}, "
                    f"{_signed(hi) if hi is not None else '∞'}]"
                    + (f", margin {number(limit)}" if limit else "") + "; 0 marked"}


# ---------------------------------------------------------------------- backtests
def _backtests(workspace: Workspace, model: str | None = None) -> list[dict[str, Any]]:
    """Recorded backtests (newest first), of ``model`` or of every model."""
    quoted = "" if model is None else \
        "'" + model.replace("\\", "\\\\").replace("'", "''") + "'"
    where = f"tags.`{BACKTEST_TAG}` = {quoted}" if model is not None else \
        f"tags.`{BACKTEST_TAG}` is not null"
    tracking = workspace.stores.tracking
    runs, _ = tracking.search_runs(None, where, None, MAX_BACKTESTS)  # newest first
    names: dict[str, str] = {}
    for r in runs:
        if r.experiment_id not in names:
            names[r.experiment_id] = tracking.get_experiment(r.experiment_id).name
    return [{"run_id": r.run_id, "model": r.tags.get(BACKTEST_TAG, ""), "name": r.name,
             "experiment": names[r.experiment_id],
             "start_time": r.start_time, "status": r.status,
             "loop": r.metrics.get("backtest.accuracy.loop"),
             "never": r.metrics.get("backtest.accuracy.never_retrained")} for r in runs]


def _readable(request: Request, backtests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The backtests whose model and experiment the caller may read."""
    return [b for b in backtests if can(request, "read", "model", b["model"])
            and can(request, "read", "experiment", b["experiment"])]


def _backtest_run(request: Request, workspace: Workspace, run_id: str) -> tuple[Run, str]:
    tracking = workspace.stores.tracking
    run = tracking.get_run(run_id)
    model = run.tags.get(BACKTEST_TAG)
    if model is None:
        raise NotFound(f"run {run_id} is not a backtest (no {BACKTEST_TAG} tag)")
    require(request, "read", "model", model)
    require(request, "read", "experiment", tracking.get_experiment(run.experiment_id).name)
    return run, model


def _has_artifact(workspace: Workspace, run: Run, path: str) -> bool:
    return any(e.path == path for e in workspace.stores.tracking.list_artifacts(
        run.run_id, path))


def _read_result(workspace: Workspace, run: Run) -> dict[str, Any]:
    from ratchet.tracking.client import TrackingClient

    entries = [e for e in workspace.stores.tracking.list_artifacts(run.run_id, BACKTEST_RESULT)
               if e.path == BACKTEST_RESULT]
    if not entries:
        raise NotFound(f"backtest run {run.run_id} has no {BACKTEST_RESULT}")
    if (entries[0].size or 0) > MAX_RESULT_BYTES:
        raise InvalidInput(f"backtest run {run.run_id}: {BACKTEST_RESULT} is larger than "
                           f"{MAX_RESULT_BYTES // 2**20} MiB; download it instead")
    raw = workspace.client(TrackingClient).read_artifact(run.run_id, BACKTEST_RESULT)
    try:
        result = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"backtest run {run.run_id}: {BACKTEST_RESULT} is not JSON: "
                           f"{exc}") from None
    if not isinstance(result, dict):
        raise InvalidInput(f"backtest run {run.run_id}: {BACKTEST_RESULT} is not an object")
    return result


PALETTE = ("#1f6feb", "#8c959f", "#bc4c00", "#8250df", "#1a7f37", "#cf222e")


def _period_chart(periods: Mapping[str, Sequence[Any]], width: int = 760,
                  height: int = 240) -> dict[str, Any] | None:
    """Accuracy per period, one line per strategy, as SVG coordinates (0 to 1)."""
    series = [(str(name), list(points)) for name, points in periods.items()
              if isinstance(points, list) and points]
    if not series:
        return None
    labels = [str(p[0]) if isinstance(p, list | tuple) and p else "" for p in series[0][1]]
    left, right, top, bottom = 40, 10, 10, 30
    inner_w, inner_h = width - left - right, height - top - bottom
    n = max(len(labels) - 1, 1)

    def y(value: float) -> float:
        return round(top + (1 - value) * inner_h, 1)

    lines = []
    for i, (name, points) in enumerate(series):
        coords = []
        for j, point in enumerate(points):
            value = point[1] if isinstance(point, list | tuple) and len(point) > 1 else None
            if isinstance(value, int | float) and math.isfinite(value):
                coords.append(f"{round(left + j / n * inner_w, 1)},{y(float(value))}")
        lines.append({"name": name, "points": " ".join(coords),
                      "color": PALETTE[i % len(PALETTE)], "dashed": i > 0})
    ticks = [{"y": y(v), "text": f"{v:g}"} for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    step = max(1, len(labels) // 6)
    xlabels = [{"x": round(left + j / n * inner_w, 1), "text": labels[j]}
               for j in range(0, len(labels), step)]
    return {"width": width, "height": height, "lines": lines, "ticks": ticks,
            "xlabels": xlabels, "left": left, "right": width - right, "bottom": top + inner_h}


def _backtest_event(event: Any) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        return {"at": "", "kind": "", "summary": str(event), "tone": ""}
    kind = str(event.get("kind") or "")
    tone = "good" if kind in GOOD else "bad" if kind in BAD else ""
    return {"at": str(event.get("at") or ""), "kind": kind,
            "summary": str(event.get("summary") or ""), "tone": tone}


# ---------------------------------------------------------------------- formatting
def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in _list(value) if isinstance(v, dict)]


def _count(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return number(value)
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _signed(value: Any) -> str:
    number_ = _float(value)
    if not math.isfinite(number_):
        return number(number_)
    return f"{number_:+.4g}"


def _pct(value: Any) -> str:
    number_ = _float(value)
    return f"{number_ * 100:.3g}%" if math.isfinite(number_) else ""


def _v(version: Any) -> str:
    return "" if version is None else f"v{version}"
