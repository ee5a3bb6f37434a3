"""``ratchet import``: copy another tool's store into the workspace (``ratchet import mlflow``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ratchet.cli.output import error_console, note, print_all, print_json, say, table
from ratchet.cli.session import Session

if TYPE_CHECKING:
    from ratchet.importing.mlflow_import import ImportReport

app = typer.Typer(help="Copy another tool's experiments and models into this workspace.",
                  no_args_is_help=True)


@app.command()
def mlflow(
    source: Annotated[str, typer.Argument(
        help="The MLflow store: an sqlite:/// or postgresql:// URL, an SQLite file, or a "
             "file store directory (mlruns).", show_default=False)],
    artifacts_root: Annotated[list[Path] | None, typer.Option(
        "--artifacts-root", metavar="DIR",
        help="A directory artifacts may be read from (repeatable). The first one is the "
             "MLflow server's --artifacts-destination, for mlflow-artifacts:/ locations. "
             "Default: the directory holding the store.")] = None,
    experiment: Annotated[list[str] | None, typer.Option(
        "--experiment", "-e", metavar="NAME", help="Copy only this experiment (repeatable); models only "
                                   "when a version's run is in one of them.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", "-n", help="Write nothing; count what would be copied.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """Copy an MLflow store: experiments, runs (same ids) with every metric point,
    params, tags and artifacts, registered models, versions, tags and aliases.

    Run it again to copy only what is new (a run that was still running gets just its new points). Afterwards the copy is verified: counts and a digest per run are compared between MLflow and ratchet; the exit code is 1 when they differ.

    Artifacts are read only from local locations under an artifact root; anything the store points at elsewhere (another directory, ../, S3) is reported, not read.

    Examples:

      ratchet import mlflow sqlite:///mlflow.db

      ratchet import mlflow ./mlruns --experiment churn --dry-run

      ratchet import mlflow postgresql://mlflow@db/mlflow --artifacts-root /srv/art

      ratchet import mlflow mlflow.db --json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ratchet.importing import import_mlflow

    workspace = Session().workspace
    stderr = error_console()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=stderr, transient=True,
                  disable=as_json or not stderr.is_terminal) as bar:
        tasks: dict[str, object] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"copying {phase}", total=total)
            bar.update(tasks[phase], completed=done, total=total)  # type: ignore[arg-type]

        report = import_mlflow(source, workspace=workspace,
                               artifacts_roots=artifacts_root or (),
                               experiments=experiment or (), dry_run=dry_run,
                               progress=progress)
    verified = report.verification is None or report.verification.ok
    if as_json:
        print_json(report.to_dict())
    else:
        _print_summary(report)
    if not verified:
        raise typer.Exit(1)


def _print_summary(report: ImportReport) -> None:
    copied = report.copied
    verb = "would copy" if report.dry_run else "copied"
    say(f"{verb} from {report.source}: {copied.experiments} experiments, {copied.runs} runs "
        f"({copied.runs_updated} updated, {copied.runs_unchanged} unchanged), "
        f"{copied.params} params, {copied.tags} tags, {copied.metric_points:,} metric points, "
        f"{copied.artifacts} artifacts, {copied.registered_models} registered models, "
        f"{copied.model_versions} versions, {copied.aliases} aliases")
    for line in report.skipped:
        note(f"skipped {line}")
    for line in report.problems:
        say(f"warning: {line}")
    check = report.verification
    if check is None:
        return
    counts = table("", "mlflow", "ratchet", "", title="verification")
    for kind, (source, ratchet) in check.counts.items():
        counts.add_row(kind.replace("_", " "), f"{source:,}", f"{ratchet:,}",
                       "ok" if source == ratchet else "DIFFERS")
    print_all(counts)
    if check.mismatched_runs:
        say(f"runs whose params, tags or metrics differ: {', '.join(check.mismatched_runs)}")
    say("verified: the copy matches" if check.ok else "verification failed: see above")
