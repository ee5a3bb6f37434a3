"""``ratchet gc``: purge deleted records and free the blobs nothing refers to."""

from __future__ import annotations

from typing import Annotated

import typer

from ratchet.cli.output import human_size, note, print_json, say
from ratchet.cli.session import Session


def gc(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", "-n", help="Change nothing; list what would be removed.")] = False,
    older_than: Annotated[str, typer.Option(
        "--older-than", help="Only records deleted at least this long ago (30d, 12h, 0).")] = "0",
    grace: Annotated[str, typer.Option(
        "--grace", help="Keep unreferenced blobs newer than this (a writer may be about to "
                        "commit the record that uses them).")] = "1h",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """Purge deleted runs, experiments, models and dataset versions, then remove every
    artifact blob no record refers to. Safe while others write."""
    from ratchet.tracking.gc import gc as collect

    report = collect(older_than=older_than, grace=grace, dry_run=dry_run,
                     workspace=Session().workspace)
    data = report.to_dict()
    if as_json:
        print_json(data)
        return
    verb = "would remove" if dry_run else "removed"
    for kind, one in (("runs", "run"), ("experiments", "experiment"),
                      ("model_versions", "model version"),
                      ("registered_models", "registered model"),
                      ("dataset_versions", "dataset version")):
        items = data[kind]
        assert isinstance(items, list)
        if items:
            label = one if len(items) == 1 else kind.replace("_", " ")
            say(f"{verb} {len(items)} {label}: {', '.join(map(str, items))}")
    for reason in report.records.kept:
        note(f"kept {reason}")
    blobs = "blob" if len(report.blobs) == 1 else "blobs"
    say(f"{verb} {len(report.blobs)} {blobs}, {human_size(report.blob_bytes)}")
    if report.kept_recent_blobs:
        note(f"kept {report.kept_recent_blobs} unreferenced blob(s) newer than --grace {grace}")
