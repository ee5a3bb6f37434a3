"""``ratchet runs``: list, show and search runs; print a metric's history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ratchet.cli.output import (
    add_row,
    artifact_dict,
    artifacts_table,
    cell_time,
    console,
    duration,
    key_values,
    mapping_table,
    metric_dict,
    note,
    print_all,
    print_json,
    say,
    short_digest,
    table,
)
from ratchet.cli.session import Session

if TYPE_CHECKING:
    from rich.table import Table

    from ratchet.store.records import ArtifactEntry, Run
    from ratchet.tracking.client import TrackingClient

app = typer.Typer(help="Runs: params, metrics, tags, inputs and artifacts.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
ExperimentOption = Annotated[
    list[str] | None,
    typer.Option(
        "--experiment", "-e", help="Only runs of this experiment (name or id); repeat for several."
    ),
]
MaxResultsOption = Annotated[
    int, typer.Option("--max-results", "-n", help="At most this many runs.", min=1)
]
MAX_METRIC_COLUMNS = 8


def _experiment_names(tracking: TrackingClient) -> dict[str, str]:
    return {e.experiment_id: e.name for e in tracking.list_experiments()}


def _runs_table(
    found: Sequence[Run], names: dict[str, str], *, metric_columns: bool = False
) -> Table:
    keys: list[str] = []
    if metric_columns:
        keys = sorted({k for run in found for k in run.metrics})[:MAX_METRIC_COLUMNS]
    out = table(
        "run id", "name", "experiment", "status", "started", "duration", *keys, no_wrap=("run id",)
    )
    for run in found:
        add_row(
            out,
            run.run_id,
            run.name,
            names.get(run.experiment_id, run.experiment_id),
            run.status,
            cell_time(run.start_time),
            duration(run.duration_ms),
            *(run.metrics.get(k) for k in keys),
        )
    return out


@app.command("list")
def list_runs(
    experiment: ExperimentOption = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help="Only runs in this status (running, finished, "
            "failed, killed); repeat for several.",
        ),
    ] = None,
    max_results: MaxResultsOption = 100,
    as_json: JsonOption = False,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="Include deleted runs (restorable until gc).")
    ] = False,
) -> None:
    """List runs, newest first."""
    tracking = Session().tracking
    found, next_token = tracking.search_runs(
        experiments=experiment or None, statuses=status or None, max_results=max_results,
        include_deleted=deleted,
    )
    if as_json:
        print_json([run.to_dict() for run in found])
        return
    if not found:
        note("no runs")
        return
    console().print(_runs_table(found, _experiment_names(tracking)))
    if next_token:
        note(
            f"showing the newest {len(found)} runs; raise --max-results to see more, "
            "or page with `ratchet runs search`"
        )


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="The run id or a unique prefix of it.")],
    as_json: JsonOption = False,
) -> None:
    """Show a run: info, code version, params, latest metrics, tags, inputs, artifacts, children."""
    tracking = Session().tracking
    run_id = tracking.store.resolve_run_id(run_id)
    run = tracking.get_run(run_id)
    artifacts = tracking.list_artifacts(run_id)
    children = tracking.child_runs(run_id)
    if as_json:
        data = run.to_dict()
        data["artifacts"] = [artifact_dict(a) for a in artifacts]
        data["child_runs"] = [
            {"run_id": c.run_id, "name": c.name, "status": c.status} for c in children
        ]
        print_json(data)
        return
    print_all(*_run_details(tracking, run, artifacts, children))


def _run_details(
    tracking: TrackingClient, run: Run, artifacts: Sequence[ArtifactEntry], children: Sequence[Run]
) -> list[Any]:
    exp_name = _experiment_names(tracking).get(run.experiment_id)
    error_line = None
    if run.error:
        lines = [line for line in run.error.strip().splitlines() if line.strip()]
        error_line = lines[-1] if lines else run.error
    parts: list[Any] = [
        key_values(
            [
                ("run id", run.run_id),
                ("name", run.name),
                (
                    "experiment",
                    f"{exp_name} ({run.experiment_id})" if exp_name else run.experiment_id,
                ),
                ("status", run.status),
                ("started", cell_time(run.start_time)),
                ("ended", cell_time(run.end_time)),
                ("duration", duration(run.duration_ms)),
                ("parent run", run.parent_run_id),
                ("error", error_line),
            ]
        )
    ]
    code = run.code
    parts.append(
        key_values(
            [
                ("commit", code.git_commit),
                ("branch", code.git_branch),
                ("dirty", code.git_dirty),
                ("entry point", code.entry_point),
                ("python", code.python_version),
                ("user", code.user),
                ("host", code.host),
            ],
            title="code version",
        )
    )
    if run.params:
        parts.append(mapping_table("params", run.params, "param"))
    if run.metrics:
        parts.append(mapping_table("metrics", run.metrics, "metric", "latest value"))
    if run.tags:
        parts.append(mapping_table("tags", run.tags, "tag"))
    if run.inputs:
        inputs = table("dataset", "digest", "role", "source", title="inputs")
        for item in run.inputs:
            name = item.name if item.version is None else f"{item.name}@{item.version}"
            add_row(inputs, name, short_digest(item.digest), item.role, item.source)
        parts.append(inputs)
    if artifacts:
        parts.append(artifacts_table(artifacts))
    if children:
        kids = table("run id", "name", "status", title="child runs", no_wrap=("run id",))
        for child in children:
            add_row(kids, child.run_id, child.name, child.status)
        parts.append(kids)
    return parts


@app.command()
def search(
    filter_text: Annotated[
        str,
        typer.Argument(
            metavar="FILTER",
            help="e.g. \"metrics.auc > 0.9 and params.model = 'lgbm'\"; '' matches every run.",
        ),
    ],
    experiment: ExperimentOption = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option(
            "--order-by",
            "-o",
            help='e.g. "metrics.auc DESC"; repeat for tie-breaks. Default: newest first.',
        ),
    ] = None,
    max_results: MaxResultsOption = 100,
    page_token: Annotated[
        str | None, typer.Option("--page-token", help="Continue from a previous page.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Search runs with a filter expression; prints the next page token if there is one."""
    tracking = Session().tracking
    found, next_token = tracking.search_runs(
        filter_text or None,
        experiments=experiment or None,
        order_by=order_by or None,
        max_results=max_results,
        page_token=page_token,
    )
    if as_json:
        print_json({"runs": [run.to_dict() for run in found], "next_page_token": next_token})
        return
    if found:
        console().print(_runs_table(found, _experiment_names(tracking), metric_columns=True))
    else:
        note("no runs match")
    if next_token:
        say(f"next page: --page-token {next_token}")


@app.command()
def metric(
    run_id: Annotated[str, typer.Argument(help="The run id or a unique prefix of it.")],
    key: Annotated[str, typer.Argument(help="The metric name.")],
    as_json: JsonOption = False,
) -> None:
    """Print every logged value of one metric: step, value, time."""
    tracking = Session().tracking
    history = tracking.metric_history(tracking.store.resolve_run_id(run_id), key)
    if as_json:
        print_json([metric_dict(m) for m in history])
        return
    if not history:
        note(f"run {run_id} has no values for metric {key!r}")
        return
    out = table("step", "value", "time", title=key)
    for point in history:
        add_row(out, point.step, str(point.value), cell_time(point.timestamp, precise=True))
    console().print(out)


ForceOption = Annotated[
    bool, typer.Option("--force", help="Delete even though something live still uses it.")
]


@app.command()
def delete(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (or unique 6+ char prefixes).")],
    force: ForceOption = False,
) -> None:
    """Delete runs and their nested runs (restorable until `ratchet gc` purges them)."""
    from ratchet.tracking.deletion import delete_run

    tracking = Session().tracking
    for run_id in run_ids:
        gone = delete_run(run_id, force=force, workspace=tracking.workspace)
        nested = f" and {len(gone) - 1} nested run(s)" if len(gone) > 1 else ""
        say(f"deleted run {gone[0] if gone else run_id}{nested}" if gone
            else f"run {run_id} was already deleted")


@app.command()
def restore(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (or unique 6+ char prefixes).")],
) -> None:
    """Restore deleted runs (with the nested runs deleted with them)."""
    from ratchet.tracking.deletion import restore_run

    tracking = Session().tracking
    for run_id in run_ids:
        back = restore_run(run_id, workspace=tracking.workspace)
        say(f"restored {len(back)} run(s) from {run_id}" if back
            else f"run {run_id} is not deleted")
