"""``ratchet artifacts``: list and download a run's artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ratchet.cli.output import artifact_dict, artifacts_table, console, note, print_json, say
from ratchet.cli.session import Session

app = typer.Typer(
    help="Run artifacts: files stored with a run, verified by hash.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]


@app.command("list")
def list_artifacts(
    run_id: Annotated[str, typer.Argument(help="The run id or a unique prefix of it.")],
    path: Annotated[str, typer.Argument(help="Only this file or directory.")] = "",
    as_json: JsonOption = False,
) -> None:
    """List a run's artifacts: path, size and digest prefix."""
    tracking = Session().tracking
    entries = tracking.list_artifacts(tracking.store.resolve_run_id(run_id), path)
    if as_json:
        print_json([artifact_dict(e) for e in entries])
        return
    if not entries:
        note(f"run {run_id} has no artifacts" + (f" under {path!r}" if path else ""))
        return
    console().print(artifacts_table(entries, title=None))


@app.command()
def download(
    run_id: Annotated[str, typer.Argument(help="The run id or a unique prefix of it.")],
    path: Annotated[str, typer.Argument(help="An artifact file or directory of the run.")],
    dest: Annotated[Path, typer.Argument(help="Where to write it (a file or directory).")],
) -> None:
    """Download an artifact file or directory, verifying every hash."""
    tracking = Session().tracking
    written = tracking.download_artifacts(tracking.store.resolve_run_id(run_id), path, dest)
    say(f"downloaded {path} to {written}")
