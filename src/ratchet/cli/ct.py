"""``ratchet ct``: the continuous-training loop's record."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ratchet.cli.output import (
    add_row,
    cell_time,
    console,
    error_console,
    iso,
    note,
    print_json,
    table,
)
from ratchet.cli.session import Session

if TYPE_CHECKING:
    from ratchet.ct.approval import RequestKind

app = typer.Typer(
    help="Continuous training: run the controller one step at a time, answer it (retrain, "
    "approve, reject), backtest a policy, and read the timeline of every trigger, retrain, "
    "gate, rollout step, promotion and rollback, with evidence.",
    no_args_is_help=True,
)
PolicyArg = Annotated[Path, typer.Argument(
    help="The CT policy (YAML).", exists=True, dir_okay=False)]
ModelArg = Annotated[str, typer.Argument(help="The registered model the loop moves.")]
ActorOption = Annotated[str | None, typer.Option(
    "--actor", help="Who asks (default: $USER).")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why, for the record.")]


LiveTrustOption = Annotated[bool, typer.Option(
    "--trust", help="Load model versions whose format runs code when loaded (cloudpickle) "
    "to gate, monitor and guard them: only for a registry whose models come from a trusted "
    "source (the policy's pipeline, your own team).")]


def _controller(policy_path: Path, lease_ms: int = 60_000, *, trust: bool = False) -> Any:
    from ratchet.ct.controller import Controller
    from ratchet.ct.policy import load_policy

    return Controller.live(load_policy(policy_path), workspace=Session().workspace,
                           lease_ms=lease_ms, trust=trust)


@app.command("tick")
def tick(
    policy: PolicyArg,
    steps: Annotated[int, typer.Option(
        "--steps", help="At most this many state changes (1: exactly one step).",
        min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
    trust: LiveTrustOption = False,
) -> None:
    """Advance the controller of POLICY's model until it has to wait (for cron or CI):
    watch, and when a trigger fires, retrain, gate, roll out, promote or roll back."""
    from ratchet.user_code import cwd_importable

    controller = _controller(policy, trust=trust)
    with cwd_importable():
        try:
            result = controller.tick(max_steps=steps)
        finally:
            controller.release()
    if as_json:
        print_json({"model": result.model, "state": result.state, "held_by": result.held_by,
                    "steps": [{"from": a, "to": b, "event": e} for a, b, e in result.steps]})
        return
    typer.echo(result.describe())


@app.command("status")
def status(
    model: ModelArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """Where a model's controller is: its state, the cycle in progress, pending requests
    and who holds the lease."""
    from ratchet.ct.timeline import get_controller_state

    state = get_controller_state(model, workspace=Session().workspace)
    if as_json:
        print_json({"model": state.model, "state": state.state, "cycle": state.cycle,
                    "data": state.data, "requests": state.requests,
                    "lease_holder": state.lease_holder,
                    "lease_expires_at": iso(state.lease_expires_at),
                    "updated_at": iso(state.updated_at)})
        return
    cycle = state.data.get("cycle") or {}
    rows = [("state", state.state), ("cycle", state.cycle),
            ("champion (cycle start)", cycle.get("champion")),
            ("challenger", cycle.get("challenger")),
            ("pending requests", ", ".join(r["kind"] for r in state.requests) or "none"),
            ("lease", state.lease_holder or "free"), ("updated", iso(state.updated_at))]
    watch = state.data.get("watch") or {}
    if watch.get("baseline"):
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(watch["baseline"].items()))
        rows.append(("baseline", f"{shown} — from {watch.get('baseline_source') or '?'}"))
    from ratchet.cli.output import key_values

    console().print(key_values(rows, title=f"controller: {model}"))
    if state.state == "watching" and watch.get("why"):
        console().print("why no retrain at the last check:", markup=False)
        for line in watch["why"]:
            console().print(f"  - {line}", markup=False, highlight=False)


def _request(model: str, kind: RequestKind, actor: str | None, reason: str | None) -> None:
    from ratchet.ct.approval import request

    request(model, kind, actor=actor, reason=reason, workspace=Session().workspace)
    typer.echo(f"{kind} recorded for {model}; the controller acts on its next tick")


@app.command("retrain")
def retrain(model: ModelArg, actor: ActorOption = None, reason: ReasonOption = None) -> None:
    """Ask the controller to retrain now (a manual trigger: cooldowns do not apply)."""
    _request(model, "retrain", actor, reason)


@app.command("approve")
def approve(model: ModelArg, actor: ActorOption = None, reason: ReasonOption = None) -> None:
    """Approve the challenger that passed the gate (policies with approval: true)."""
    _request(model, "approve", actor, reason)


@app.command("reject")
def reject(model: ModelArg, actor: ActorOption = None, reason: ReasonOption = None) -> None:
    """Reject the challenger waiting for approval; the champion stays."""
    _request(model, "reject", actor, reason)


@app.command("backtest")
def backtest(
    policy: PolicyArg,
    data: Annotated[Path, typer.Option(
        "--data", help="Labeled history: Parquet or CSV.", exists=True, dir_okay=False)],
    time_column: Annotated[str, typer.Option("--time-column", help="The rows' time.")],
    start: Annotated[str, typer.Option(
        "--start", help="Where replay begins: a time (rows before it train the first model) "
        "or a row number.")],
    label: Annotated[str | None, typer.Option(
        "--label", help="The label column (default: the policy's data.label).")] = None,
    tick_every: Annotated[str, typer.Option(
        "--tick", help="Simulated time between controller ticks (12h, 1d, 1d12h ...).")] = "30d",
    label_delay: Annotated[str, typer.Option(
        "--label-delay", help="How long after a prediction its label arrives.")] = "1d",
    schedule: Annotated[str, typer.Option(
        "--schedule", help="The fixed-schedule baseline's retrain interval.")] = "365d",
    schedule_rows: Annotated[list[int] | None, typer.Option(
        "--schedule-rows", help="Also a fixed schedule on this many newest labeled rows "
        "(repeatable; the default one uses the policy's data.rows).", min=1)] = None,
    period: Annotated[str | None, typer.Option(
        "--period", help="Accuracy is reported per period: year, quarter or month (calendar, "
        "UTC) or a duration such as 90d (default: the replay in 24 equal periods).")] = None,
    features: Annotated[str | None, typer.Option(
        "--features", help="The model's inputs, comma-separated (default: every column "
        "except --time-column and the label).")] = None,
    drop: Annotated[str | None, typer.Option(
        "--drop", help="Columns that are not model inputs, comma-separated (instead of "
        "--features).")] = None,
    trust: Annotated[bool, typer.Option(
        "--trust", help="Load models whose format runs code when loaded (cloudpickle): the "
        "policy's pipeline trains them; only for a pipeline and data from a trusted "
        "source.")] = False,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write the HTML report here.", dir_okay=False)] = None,
    record: Annotated[bool, typer.Option(
        "--record", help="Record the backtest as a run (experiment --experiment) in this "
        "workspace — its result, HTML report and accuracies — for the dashboard's "
        "continuous-training page (/ui/backtests/RUN_ID).")] = False,
    experiment: Annotated[str, typer.Option(
        "--experiment", help="The experiment --record records into.")] = "ct-backtests",
    run_name: Annotated[str | None, typer.Option(
        "--run-name", help="The recorded run's name (default: 'backtest of MODEL').")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """Replay a labeled history through the policy's triggers, gate and rollout (the same
    controller code, a simulated clock and server) and compare it with never retraining,
    a fixed schedule, the majority class and yesterday's label (the newest label that had
    arrived, --label-delay after its row). --record keeps it as a run the dashboard
    shows."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ratchet.ct.backtesting import backtest as run_backtest
    from ratchet.ct.backtesting import choose_inputs, parse_period
    from ratchet.ct.policy import load_policy
    from ratchet.user_code import cwd_importable

    loaded = load_policy(policy)
    parse_period(period, "--period")  # errors name the options, before any work
    workspace = None
    if record:  # a bad name or a workspace that cannot be written, before the replay
        from ratchet.ct.backtesting import recording_experiment

        workspace = Session().workspace
        experiment = recording_experiment(experiment, workspace)
    history = _read_holdout(data)
    inputs = None
    if features is not None or drop is not None:
        inputs = choose_inputs(list(history.columns), time_column, label or loaded.data.label,
                               features, drop, names=("--features", "--drop"))
    first: Any = int(start) if start.isdigit() else start
    with cwd_importable(), Progress(TextColumn("backtest"), BarColumn(),
                                    TextColumn("{task.completed}/{task.total} rows"),
                                    TimeRemainingColumn(), console=error_console(),
                                    disable=as_json) as bar:
        task = bar.add_task("replay", total=None)
        result = run_backtest(
            loaded, history, time_column=time_column, label=label, start=first,
            tick=tick_every, label_delay=label_delay, schedule=schedule, period=period,
            schedule_rows=tuple(schedule_rows or ()), features=inputs, trust=trust,
            progress=lambda done, total: bar.update(task, completed=done, total=total))
    if report is not None:
        result.write_html(report, title=f"ratchet backtest: {loaded.model}")
    run_id = None
    if workspace is not None:
        run_id = result.record(experiment=experiment, name=run_name, workspace=workspace)
    if as_json:
        print_json(result.to_dict() if run_id is None else {
            **result.to_dict(), "run_id": run_id, "dashboard": f"/ui/backtests/{run_id}"})
        return
    typer.echo(result.to_markdown())
    lowered = [p for p in result.promotions if p["lowered"]]
    typer.echo(f"\n{result.rows} rows in {result.seconds:.1f} s; promotions that lowered "
               f"accuracy on the following {loaded.monitor.rows} rows: {len(lowered)}"
               + (f"; report: {report}" if report else "")
               + (f"; scratch store: {result.home}" if result.home else ""))
    if run_id is not None:
        typer.echo(f"recorded as run {run_id} (experiment {experiment}); on the dashboard: "
                   f"/ui/backtests/{run_id}")


@app.command("history")
def history(
    model: Annotated[str, typer.Argument(help="The registered model the loop moves.")],
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", help="Only events of this kind (trigger, gate, promoted, ...); "
        "repeatable.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """The loop's timeline for a model, oldest first."""
    from ratchet.ct.timeline import list_events

    events = list_events(model, kinds=kind, workspace=Session().workspace)
    if as_json:
        print_json([{"event_id": e.event_id, "at": iso(e.at), "kind": e.kind,
                     "summary": e.summary, "actor": e.actor, "evidence": e.evidence}
                    for e in events])
        return
    if not events:
        note(f"no continuous-training events for {model!r} yet")
        return
    out = table("at", "event", "what", "by", no_wrap=("at",))
    for e in events:
        add_row(out, cell_time(e.at, precise=True), e.kind, e.summary, e.actor)
    console().print(out)


def check(
    candidate: Annotated[str, typer.Argument(help="The candidate model, e.g. churn/7.")],
    data: Annotated[Path, typer.Option(
        "--data", help="A labeled holdout: Parquet or CSV.", exists=True, dir_okay=False)],
    label: Annotated[str, typer.Option("--label", help="The holdout's label column.")],
    champion: Annotated[str | None, typer.Option(
        "--champion", help="Compare with this model, e.g. churn@champion.")] = None,
    policy: Annotated[Path | None, typer.Option(
        "--policy", help="A CT policy YAML; its gate section decides.", exists=True,
        dir_okay=False)] = None,
    metric: Annotated[str, typer.Option(
        "--metric", help="Gate metric when no --policy is given.")] = "accuracy",
    margin: Annotated[float, typer.Option(
        "--margin", help="How much better than the champion the candidate must be.",
        min=0)] = 0.0,
    confidence: Annotated[float, typer.Option(
        "--confidence", help="How sure the paired test on the holdout must be that the "
        "candidate is better (McNemar for accuracy, a paired bootstrap otherwise).",
        min=0.5, max=0.999)] = 0.95,
    schema: Annotated[Path | None, typer.Option(
        "--schema", help="Validate the holdout against this schema YAML.", exists=True,
        dir_okay=False)] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write the Markdown report here (for a pull-request comment).",
        dir_okay=False)] = None,
) -> None:
    """Data validation, model tests and the champion comparison for a candidate; prints a
    Markdown report and exits non-zero if any check fails (for CI)."""
    from ratchet.atomic import write_atomic
    from ratchet.ct.check import run_check
    from ratchet.ct.gate import GatePolicy

    gate = GatePolicy(metric=metric, margin=margin, confidence=confidence)
    if policy is not None:
        from ratchet.ct.policy import load_policy

        gate = load_policy(policy).gate
    holdout = _read_holdout(data)
    result = run_check(candidate, holdout, label, champion=champion, policy=gate,
                       schema=str(schema) if schema else None, workspace=Session().workspace)
    text = result.to_markdown()
    if report is not None:
        write_atomic(report, text.encode())
    typer.echo(text)
    if not result.passed:
        raise typer.Exit(1)


def controller(
    policy: PolicyArg,
    interval: Annotated[float, typer.Option(
        "--interval", help="Seconds between ticks.", min=0.01)] = 60.0,
    lease_ttl: Annotated[float, typer.Option(
        "--lease-ttl", help="Seconds before a silent controller's lease can be taken over.",
        min=1.0)] = 60.0,
    trust: LiveTrustOption = False,
) -> None:
    """Run the continuous-training controller for POLICY's model until Ctrl-C: tick every
    --interval seconds. Start two by mistake and only the lease holder acts; the other
    takes over if it dies. Killed at any point, a restarted controller resumes where the
    last one committed."""
    import threading

    from ratchet.cli.output import say
    from ratchet.cli.schedules import graceful_stop
    from ratchet.ct.controller import TickResult
    from ratchet.user_code import cwd_importable

    ctl = _controller(policy, lease_ms=int(lease_ttl * 1000), trust=trust)
    stop = threading.Event()
    say(f"controller {ctl.holder} for {ctl.policy.model}: ticking every {interval:g}s; "
        "Ctrl-C to stop")
    last: list[str] = []

    def on_tick(result: TickResult) -> None:  # a line when something changed
        line = result.describe()
        if line not in last:
            say(line)
            last[:] = [line]

    with cwd_importable(), graceful_stop(stop):
        ctl.run(interval, stop, on_tick=on_tick)
    say("controller stopped")


def _read_holdout(path: Path) -> Any:
    """A CSV/TSV/Parquet file or directory as pandas, read as ``ratchet data log`` reads it."""
    from ratchet.data.readers import read_frame

    return read_frame(path)
