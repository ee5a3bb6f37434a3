"""``ratchet schedule``: pipeline schedules; ``ratchet scheduler``: the process that runs them."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ratchet.cli.output import (
    add_row,
    cell_time,
    console,
    iso,
    key_values,
    note,
    print_all,
    print_error,
    print_json,
    say,
    table,
)
from ratchet.cli.session import Session
from ratchet.user_code import cwd_importable

if TYPE_CHECKING:
    from ratchet.pipelines.scheduler import Fired
    from ratchet.store.schedule_store import Schedule

app = typer.Typer(
    help="Pipeline schedules: run a pipeline on a cron expression (UTC); "
    "`ratchet scheduler` runs them.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
ScheduleName = Annotated[str, typer.Argument(help="The schedule's name.")]


@contextmanager
def _errors_logged() -> Iterator[None]:
    """Failed runs are logged with their traceback to stderr, unless the application
    configured logging itself."""
    import logging

    log = logging.getLogger("ratchet.scheduler")
    if log.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)


def schedule_dict(item: Schedule) -> dict[str, Any]:
    return {
        "schedule_id": item.schedule_id,
        "name": item.name,
        "pipeline": item.pipeline_ref,
        "cron": item.cron,
        "params": dict(item.params),
        "executor": item.executor,
        "enabled": item.enabled,
        "next_run_at": iso(item.next_run_at),
        "last_run_at": iso(item.last_run_at),
        "last_pipeline_run_id": item.last_pipeline_run_id,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
    }


def fired_dict(item: Fired) -> dict[str, Any]:
    return {
        "schedule": item.schedule,
        "schedule_id": item.schedule_id,
        "pipeline": item.pipeline_ref,
        "scheduled_for": iso(item.scheduled_for),
        "fired_at": iso(item.fired_at),
        "next_run_at": iso(item.next_run_at),
        "pipeline_run_id": item.pipeline_run_id,
        "status": item.status,
        "error": item.error,
    }


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())) or "-"


def _show(item: Schedule, as_json: bool) -> None:
    if as_json:
        print_json(schedule_dict(item))
        return
    print_all(key_values([
        ("name", item.name),
        ("pipeline", item.pipeline_ref),
        ("cron", f"{item.cron} (UTC)"),
        ("params", _params_text(item.params)),
        ("executor", item.executor or "default"),
        ("enabled", item.enabled),
        ("next run", cell_time(item.next_run_at) if item.enabled else "- (disabled)"),
        ("last run", cell_time(item.last_run_at)),
        ("last pipeline run", item.last_pipeline_run_id),
        ("id", item.schedule_id),
    ]))


@app.command("create")
def create(
    pipeline: Annotated[str, typer.Argument(
        help="The pipeline as MODULE:NAME, importable from the current directory.")],
    cron: Annotated[str, typer.Option(
        "--cron", help='Five cron fields in UTC, e.g. "0 3 * * *", or @daily, @hourly, ...')],
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="A pipeline parameter as KEY=VALUE; repeatable.")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", "-n", help="The schedule's name (default: the pipeline's name).")] = None,
    executor: Annotated[str | None, typer.Option(
        "--executor", help="Where steps run: local, local:N, processes, ray.")] = None,
    disabled: Annotated[bool, typer.Option(
        "--disabled", help="Create it paused (enable it later).")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Redefine an existing schedule of this name.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Schedule a pipeline to run at each cron time (once `ratchet scheduler` runs)."""
    from ratchet.pipelines.pipeline_definition import load_pipeline
    from ratchet.pipelines.schedules import parse_params, schedule, validate_cron

    validate_cron(cron)  # a bad expression is reported before the pipeline is imported
    with cwd_importable():
        params = parse_params(load_pipeline(pipeline), param or [])
        created = schedule(pipeline, cron, params=params, name=name, executor=executor,
                           enabled=not disabled, replace=replace, workspace=Session().workspace)
    if as_json:
        print_json(schedule_dict(created))
        return
    when = f"next run {cell_time(created.next_run_at)}" if created.enabled else "disabled"
    say(f"scheduled {created.name}: {created.pipeline_ref} at '{created.cron}' UTC ({when})")


@app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """List schedules with their next and last runs."""
    from ratchet.pipelines.schedules import list_schedules

    found = list_schedules(workspace=Session().workspace)
    if as_json:
        print_json([schedule_dict(s) for s in found])
        return
    if not found:
        note("no schedules yet (create one with `ratchet schedule create MODULE:NAME --cron ...`)")
        return
    out = table("name", "pipeline", "cron (UTC)", "params", "enabled", "next run", "last run",
                "last pipeline run", no_wrap=("last pipeline run",))
    for item in found:
        add_row(out, item.name, item.pipeline_ref, item.cron, _params_text(item.params),
                item.enabled, cell_time(item.next_run_at) if item.enabled else None,
                cell_time(item.last_run_at), item.last_pipeline_run_id)
    console().print(out)


@app.command("delete")
def delete(name: ScheduleName, as_json: JsonOption = False) -> None:
    """Delete a schedule (its past pipeline runs stay)."""
    from ratchet.pipelines.schedules import delete_schedule

    delete_schedule(name, workspace=Session().workspace)
    if as_json:
        print_json({"deleted": name})
        return
    say(f"deleted schedule {name}")


@app.command("enable")
def enable(name: ScheduleName, as_json: JsonOption = False) -> None:
    """Resume a schedule from now on (times passed while disabled are not run)."""
    from ratchet.pipelines.schedules import set_enabled

    _show(set_enabled(name, True, workspace=Session().workspace), as_json)


@app.command("disable")
def disable(name: ScheduleName, as_json: JsonOption = False) -> None:
    """Pause a schedule."""
    from ratchet.pipelines.schedules import set_enabled

    _show(set_enabled(name, False, workspace=Session().workspace), as_json)


# ---------------------------------------------------------------- ratchet scheduler
def _fired_line(item: Fired) -> str:
    run = item.pipeline_run_id or "no run"
    line = (f"{cell_time(item.fired_at)} {item.schedule}: {item.pipeline_ref} {item.status} "
            f"({run}); next {cell_time(item.next_run_at)}")
    if item.error:
        line += f": {item.error.splitlines()[0] if item.error.strip() else item.error}"
    return line


@contextmanager
def graceful_stop(stop: threading.Event) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM): stop after the pipeline running now. Second: abort it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        # Not stop.set() here: the handler may run while this very thread holds the
        # event's internal lock (inside stop.wait()), and that lock is not re-entrant.
        threading.Thread(target=stop.set, name="ratchet-stop", daemon=True).start()
        os.write(2, b"stopping (after the pipeline run in progress, if any); "
                    b"Ctrl-C again aborts it\n")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def scheduler(
    once: Annotated[bool, typer.Option(
        "--once", help="Fire what is due now, then exit (for cron or CI).")] = False,
    poll: Annotated[float, typer.Option(
        "--poll", help="Seconds between checks for due schedules.", min=0.01)] = 1.0,
    lease_ttl: Annotated[float, typer.Option(
        "--lease-ttl", help="Seconds before a silent scheduler's lease can be taken over.",
        min=1.0)] = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Run due pipeline schedules in this process until Ctrl-C.

    Start as many as you like: one holds the lease and fires, the others stand by and take
    over within --lease-ttl seconds if it dies. Times missed while none ran fire once.
    With --once, exits 1 if a pipeline it ran failed.
    """
    from ratchet.pipelines.scheduler import Scheduler

    runner = Scheduler(Session().workspace, lease_ttl_s=lease_ttl, poll_s=poll)
    with cwd_importable(), _errors_logged():
        if not once:
            _serve(runner, as_json)
            return
        try:
            fired = runner.run_due()
            holder = None if runner.lease is not None else runner.current_holder()
        finally:
            runner.release_lease()
    _report_once(fired, holder.holder if holder else None, as_json)


def _report_once(fired: Sequence[Fired], other_holder: str | None, as_json: bool) -> None:
    if as_json:
        print_json([fired_dict(f) for f in fired])
    elif other_holder is not None:
        note(f"another scheduler ({other_holder}) holds the lease; nothing fired")
    elif not fired:
        note("no schedules due")
    else:
        out = table("schedule", "pipeline", "status", "pipeline run", "due", "next run",
                    no_wrap=("pipeline run",))
        for item in fired:
            add_row(out, item.schedule, item.pipeline_ref, item.status, item.pipeline_run_id,
                    cell_time(item.scheduled_for), cell_time(item.next_run_at))
        console().print(out)
    failed = [f.schedule for f in fired if f.status != "finished"]
    if failed:
        print_error(f"{len(failed)} scheduled pipeline run(s) failed: {', '.join(failed)} "
                    "(see `ratchet schedule list` and the pipeline runs)")
        raise typer.Exit(1)


def _serve(runner: Any, as_json: bool) -> None:
    import json

    from ratchet.cli.output import jsonable

    def on_fire(item: Fired) -> None:
        if as_json:
            typer.echo(json.dumps(jsonable(fired_dict(item))))
        else:
            say(_fired_line(item))
        sys.stdout.flush()

    stop = threading.Event()
    if not as_json:
        say(f"scheduler {runner.holder} started: checking every {runner.poll_s:g}s; "
            "Ctrl-C to stop")
        other = runner.current_holder()
        if other is not None and other.holder != runner.holder:
            note(f"standing by: {other.holder} holds the lease; this scheduler takes over "
                 "if it stops")
        sys.stdout.flush()
    try:
        with graceful_stop(stop):
            runner.serve(stop, on_fire=on_fire)
    except KeyboardInterrupt:
        print_error("scheduler interrupted; the pipeline run in progress was aborted")
        raise typer.Exit(130) from None
    if not as_json:
        say("scheduler stopped")
