"""``ratchet gc``: purge records deleted long enough ago, then every unreferenced blob.

Safe against concurrent writers: the referenced digests are read from the database after
the purge, and a blob is removed only if no record refers to it AND it was neither written
nor re-used by a writer since ``start - grace``. A writer stores its blob before it commits
the record that refers to it, so a blob written during the gc is at most seconds old and
is kept; on a local root a writer re-using an existing blob marks it under a lock that the
removal also takes, so the mark and the removal never interleave. The assumption: a writer
commits its record within ``grace`` (default 1 h) of storing the blob.

Not blobs, so never touched: prediction-log files, monitoring reports, the dataset file
cache and exported bundles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ratchet.store.deletion import PurgeReport
    from ratchet.workspace import Workspace

DEFAULT_GRACE = timedelta(hours=1)


@dataclass
class GcReport:
    """What a gc removed, or with ``dry_run`` what it would remove."""

    dry_run: bool
    records: PurgeReport
    blobs: list[str] = field(default_factory=list)  # digests
    blob_bytes: int = 0
    kept_recent_blobs: int = 0  # unreferenced but within the grace period
    temp_files: int = 0

    def to_dict(self) -> dict[str, object]:
        r = self.records
        return {
            "dry_run": self.dry_run,
            "model_versions": [f"{n}/{v}" for n, v in r.model_versions],
            "registered_models": r.registered_models,
            "runs": r.runs,
            "experiments": r.experiments,
            "dataset_versions": [f"{n}@{v}" for n, v in r.dataset_versions],
            "kept": r.kept,
            "blobs": self.blobs,
            "blob_bytes": self.blob_bytes,
            "kept_recent_blobs": self.kept_recent_blobs,
            "temp_files": self.temp_files,
        }


def parse_age(value: str | float | timedelta) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w``, ``0`` (bare numbers are seconds): the
    duration grammar of ``ratchet.durations``."""
    from ratchet.durations import parse_duration

    return parse_duration(value, "age")


def gc(*, older_than: str | float | timedelta = 0, grace: str | float | timedelta = DEFAULT_GRACE,
       dry_run: bool = False, workspace: Workspace | None = None) -> GcReport:
    """Purge records soft-deleted at least ``older_than`` ago (default 0: every deleted
    record), then remove blobs no record refers to that are older than ``grace``.

    With ``dry_run`` nothing changes and the report lists what would go (blobs that only
    purged records refer to are listed too).
    """
    from ratchet.clock import now_ms
    from ratchet.workspace import resolve

    workspace = resolve(workspace)
    age, grace_age = parse_age(older_than), parse_age(grace)
    blobs = workspace.blobs
    started = blobs.now()  # the storage's clock: the one blob mtimes are read from
    store = workspace.stores.deletion
    cutoff_ms = now_ms() - int(age.total_seconds() * 1000)
    records = store.purge(cutoff_ms, dry_run=dry_run)
    report = GcReport(dry_run, records)
    referenced = records.referenced  # read after the purge, in its transaction
    unused_since = started - grace_age.total_seconds()
    for blob in list(blobs.list_blobs()):
        if blob.digest in referenced:
            continue
        if blob.mtime >= unused_since:
            report.kept_recent_blobs += 1
            continue
        if dry_run or blobs.remove_unused(blob.digest, unused_since):
            report.blobs.append(blob.digest)
            report.blob_bytes += blob.size
    if not dry_run:
        report.temp_files = blobs.clean_temp()
    return report

