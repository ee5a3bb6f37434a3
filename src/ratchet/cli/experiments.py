"""``ratchet experiments``: list, show and create experiments."""

from __future__ import annotations

from typing import Annotated

import typer

from ratchet.cli.output import (
    add_row,
    cell_time,
    console,
    experiment_dict,
    key_values,
    mapping_table,
    note,
    print_all,
    print_json,
    say,
    table,
)
from ratchet.cli.session import Session

app = typer.Typer(help="Experiments: named groups of runs.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]


DeletedOption = Annotated[
    bool, typer.Option("--deleted", help="Include deleted experiments (restorable until gc).")
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Delete even though something live still uses it.")
]


@app.command("list")
def list_experiments(as_json: JsonOption = False, deleted: DeletedOption = False) -> None:
    """List experiments with their run counts, oldest first."""
    tracking = Session().tracking
    found = tracking.store.list_experiments(include_deleted=deleted)
    counts = tracking.run_counts()
    if as_json:
        print_json([experiment_dict(e, counts.get(e.experiment_id, 0)) for e in found])
        return
    if not found:
        note("no experiments yet")
        return
    out = table("name", "id", "runs", "created", *(["deleted"] if deleted else []),
                no_wrap=("id",))
    for exp in found:
        add_row(
            out,
            exp.name,
            exp.experiment_id,
            counts.get(exp.experiment_id, 0),
            cell_time(exp.created_at),
            *([cell_time(exp.deleted_at)] if deleted else []),
        )
    console().print(out)


@app.command()
def show(
    name_or_id: Annotated[str, typer.Argument(help="Experiment name or id.")],
    as_json: JsonOption = False,
) -> None:
    """Show one experiment: id, description, lifecycle, run count and tags."""
    tracking = Session().tracking
    exp = tracking.get_experiment(name_or_id)
    run_count = tracking.run_counts().get(exp.experiment_id, 0)
    if as_json:
        print_json(experiment_dict(exp, run_count))
        return
    parts: list[object] = [
        key_values(
            [
                ("name", exp.name),
                ("id", exp.experiment_id),
                ("description", exp.description),
                ("lifecycle", exp.lifecycle),
                ("created", cell_time(exp.created_at)),
                ("runs", run_count),
            ]
        )
    ]
    if exp.tags:
        parts.append(mapping_table("tags", exp.tags))
    print_all(*parts)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="A unique experiment name.")],
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="What the experiment is for.")
    ] = None,
) -> None:
    """Create an experiment."""
    exp = Session().tracking.create_experiment(name, description)
    say(f"created experiment {exp.name} ({exp.experiment_id})")


@app.command()
def delete(
    name_or_id: Annotated[str, typer.Argument(help="Experiment name or id.")],
    force: ForceOption = False,
) -> None:
    """Delete an experiment and its runs (restorable until `ratchet gc` purges them)."""
    from ratchet.tracking.deletion import delete_experiment

    session = Session()
    runs = delete_experiment(name_or_id, force=force, workspace=session.workspace)
    say(f"deleted experiment {name_or_id} and {len(runs)} run(s); "
        f"`ratchet experiments restore {name_or_id}` undoes it")


@app.command()
def restore(name_or_id: Annotated[str, typer.Argument(help="Experiment name or id.")]) -> None:
    """Restore a deleted experiment and the runs deleted with it."""
    from ratchet.tracking.deletion import restore_experiment

    runs = restore_experiment(name_or_id, workspace=Session().workspace)
    say(f"restored experiment {name_or_id} and {len(runs)} run(s)")
