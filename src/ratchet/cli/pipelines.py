"""``ratchet pipeline``: run, list, show (the DAG with statuses), logs, resume."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from ratchet.cli.output import (
    add_row,
    cell_time,
    console,
    duration,
    iso,
    key_values,
    note,
    print_all,
    print_json,
    say,
    short_digest,
    table,
)
from ratchet.cli.session import Session
from ratchet.user_code import cwd_importable

if TYPE_CHECKING:
    from rich.tree import Tree

    from ratchet.pipelines.run_result import PipelineResult
    from ratchet.store.records import PipelineRunRecord, StepRunRecord

app = typer.Typer(help="Pipelines: run them, inspect runs and their DAGs, resume failures.",
                  no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
ExecutorOption = Annotated[str | None, typer.Option(
    "--executor", "-x",
    help="Where steps run: local (threads), local:N, processes, ray, ray:<address>.")]
STATUS_STYLE = {
    "finished": ("✔", "green"), "cached": ("↺", "cyan"), "running": ("▶", "yellow"),
    "pending": ("·", "dim"), "failed": ("✘", "red"), "skipped": ("-", "dim"),
    "killed": ("✘", "red"), "abandoned": ("✘", "red"),
}


def _status(status: str) -> Text:
    symbol, style = STATUS_STYLE.get(status, ("?", ""))
    return Text(f"{symbol} {status}", style=style)


def _stdout_for_data(as_json: bool) -> Any:
    """With --json, stdout carries only the JSON: what steps print goes to stderr."""
    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


@app.command("run")
def run_pipeline(
    ref: Annotated[str, typer.Argument(help="The pipeline: package.module:name or file.py:name.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="A parameter as KEY=VALUE; repeat for several.")] = None,
    executor: ExecutorOption = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline and wait for it. Exits non-zero if a step fails."""
    from ratchet.errors import StepFailed
    from ratchet.pipelines import get_pipeline_run, load_pipeline
    from ratchet.pipelines.schedules import parse_params

    try:
        with cwd_importable():
            pipeline = load_pipeline(ref)
            params = parse_params(pipeline, param or [])
            with _stdout_for_data(as_json), _pipeline_code(pipeline, ref):
                result = pipeline.run(executor=executor, cache=not no_cache, **params)
    except StepFailed as exc:
        if exc.run_id is not None:
            _print_run(get_pipeline_run(exc.run_id), as_json)
            note(f"resume it with: ratchet pipeline resume {exc.run_id}")
        raise
    _print_run(result, as_json)


def _pipeline_code(pipeline: Any, ref: str) -> Any:
    """Runs record the pipeline's own file (its git checkout, or none) as their code."""
    import inspect
    import os

    from ratchet.user_code import launched

    try:
        source = inspect.getsourcefile(pipeline.fn)
    except TypeError:  # defined somewhere without a file: the working directory stands in
        source = None
    return launched(os.path.dirname(source) if source else os.getcwd(), ref)


@app.command("resume")
def resume_run(
    run_id: Annotated[str, typer.Argument(help="A failed pipeline run (id or unique prefix).")],
    executor: ExecutorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a failed pipeline run again: finished steps are reused, the rest run."""
    from ratchet.pipelines import resume

    with cwd_importable(), _stdout_for_data(as_json):
        result = resume(run_id, executor=executor)
    _print_run(result, as_json)


@app.command("list")
def list_runs(
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs in this status.")
                      ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Pipeline runs, newest first (runs whose process died are marked abandoned)."""
    from ratchet.pipelines import list_pipeline_runs

    runs = list_pipeline_runs(pipeline, status=status, limit=limit,
                              workspace=Session().workspace)
    records = [r.record for r in runs]
    counts: dict[str, dict[str, int]] = {}
    for run in runs:
        for step in run.steps:
            per_run = counts.setdefault(run.run_id, {})
            per_run[step.status] = per_run.get(step.status, 0) + 1
    if as_json:
        print_json([{**_run_dict(r), "steps": counts.get(r.run_id, {})} for r in records])
        return
    if not records:
        say("no pipeline runs yet")
        return
    out = table("run", "pipeline", "status", "started", "duration", "steps", no_wrap=("run",))
    for r in records:
        steps = ", ".join(f"{n} {s}" for s, n in sorted(counts.get(r.run_id, {}).items()))
        add_row(out, r.run_id, r.pipeline, _status(r.status),
                cell_time(r.started_at), duration(r.duration_ms), steps)
    console().print(out)


@app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="Pipeline run id or unique prefix.")],
    as_json: JsonOption = False,
) -> None:
    """A pipeline run: its DAG with each step's status, duration, cache use and outputs."""
    from ratchet.pipelines import get_pipeline_run

    session = Session()
    _print_run(get_pipeline_run(run_id, workspace=session.workspace), as_json)


@app.command("logs")
def step_logs(
    run_id: Annotated[str, typer.Argument(help="Pipeline run id or unique prefix.")],
    step: Annotated[str, typer.Argument(help="The step (node name as `show` lists it).")],
) -> None:
    """What a step printed (stdout and stderr, captured while it ran)."""
    from ratchet.pipelines import get_pipeline_run

    session = Session()
    record = get_pipeline_run(run_id, workspace=session.workspace).step(step)
    if record.log_digest is None:
        note(f"step {step!r} printed nothing (status {record.status})")
        return
    sys.stdout.write(session.tracking.blobs.read_bytes(record.log_digest).decode(
        "utf-8", errors="replace"))


# ---------------------------------------------------------------- rendering
def _print_run(result: PipelineResult, as_json: bool) -> None:
    record = result.record
    if as_json:
        print_json({**_run_dict(record), "steps": [_step_dict(s) for s in result.steps]})
        return
    summary = key_values([
        ("run", record.run_id), ("pipeline", record.pipeline),
        ("status", _status(record.status)),
        ("params", ", ".join(f"{k}={v!r}" for k, v in record.params.items()) or "-"),
        ("executor", record.executor), ("started", cell_time(record.started_at)),
        ("duration", duration(record.duration_ms)),
        ("tracking run", record.tracking_run_id or "-"),
        *([("resumed from", record.resumed_from)] if record.resumed_from else []),
        *([("error", record.error)] if record.error else []),
    ], title="pipeline run")
    print_all(summary, _dag(result.steps))


def _dag(steps: list[StepRunRecord]) -> Tree:
    """The DAG as a tree from its roots; a step with several parents is drawn under its
    last one and marked with the others (so every step appears exactly once)."""
    from rich.tree import Tree

    from ratchet.pipelines.runner import last_line

    root = Tree(Text("DAG", style="bold"))
    by_node = {s.node: s for s in steps}
    children: dict[str, list[StepRunRecord]] = {s.node: [] for s in steps}
    roots = []
    for s in steps:
        parents = [p for p in s.upstream if p in by_node]
        if parents:
            children[max(parents, key=lambda p: by_node[p].position)].append(s)
        else:
            roots.append(s)

    def label(s: StepRunRecord) -> Text:
        # Text, not markup: node names and errors are the user's and must print as-is.
        out = Text(s.node, style="bold")
        out.append("  ").append_text(_status(s.status))
        if s.duration_ms is not None and s.status != "cached":
            out.append(f"  {duration(s.duration_ms)}")
        if s.attempts > 1:
            out.append(f"  {s.attempts} attempts")
        parents = [p for p in s.upstream if p in by_node]
        others = sorted(set(parents) - {max(parents, key=lambda p: by_node[p].position)}) \
            if parents else []
        if others:
            out.append(f"  (also needs {', '.join(others)})", style="dim")
        for o in s.outputs:
            where = f" → dataset {o.dataset[0]}@{o.dataset[1]}" if o.dataset else ""
            where += f" → model {o.model[0]}/{o.model[1]}" if o.model else ""
            out.append(f"  {o.name}:{short_digest(o.digest)}{where}", style="dim")
        if s.status == "failed" and s.error:
            out.append(f"  {last_line(s.error)}", style="red")
        return out

    def add(tree: Tree, s: StepRunRecord) -> None:
        branch = tree.add(label(s))
        for child in children[s.node]:
            add(branch, child)

    for s in roots:
        add(root, s)
    return root


def _run_dict(r: PipelineRunRecord) -> dict[str, Any]:
    return {
        "run_id": r.run_id, "pipeline": r.pipeline, "ref": r.ref, "status": r.status,
        "params": r.params, "executor": r.executor, "tracking_run_id": r.tracking_run_id,
        "resumed_from": r.resumed_from, "schedule_id": r.schedule_id, "error": r.error,
        "started_at": iso(r.started_at), "ended_at": iso(r.ended_at),
        "duration_ms": r.duration_ms,
    }


def _step_dict(s: StepRunRecord) -> dict[str, Any]:
    return {
        "node": s.node, "step": s.step, "status": s.status, "upstream": list(s.upstream),
        "params": s.params, "attempts": s.attempts, "code_hash": s.code_hash,
        "cache_key": s.cache_key, "cached_from": s.cached_from,
        "tracking_run_id": s.tracking_run_id, "log_digest": s.log_digest, "error": s.error,
        "started_at": iso(s.started_at), "ended_at": iso(s.ended_at),
        "duration_ms": s.duration_ms,
        "inputs": [{"name": i.name, "digest": i.digest, "from": f"{i.source_node}."
                    f"{i.source_output}"} for i in s.inputs],
        "outputs": [{"name": o.name, "digest": o.digest, "materializer": o.materializer,
                     "size": o.size,
                     "dataset": f"{o.dataset[0]}@{o.dataset[1]}" if o.dataset else None,
                     "model": f"models:/{o.model[0]}/{o.model[1]}" if o.model else None}
                    for o in s.outputs],
    }
