"""``DataClient``: log, find and compare dataset versions.

Logging streams the input once: batches → canonical Parquet in the artifact store's
staging area (hashed while written) → profile with DuckDB → the file is renamed into the
store under its digest. Identical content under the same name is the existing version,
found before profiling, so re-logging costs one read and no copy.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from ratchet.data.version import DatasetRef, DatasetVersion, validate_dataset_name
from ratchet.errors import InvalidInput, NotFound
from ratchet.file_modes import make_dirs
from ratchet.hashing import CHUNK_SIZE, hash_file
from ratchet.store.dataset_store import SourceFile
from ratchet.tracking.client import TrackingClient
from ratchet.workspace import Workspace
from ratchet.workspace import resolve as resolve_workspace

if TYPE_CHECKING:
    from ratchet.data.profile_records import DatasetProfile
    from ratchet.data.validation import ValidationReport
    from ratchet.data.version_diff import DatasetDiff

T = TypeVar("T")
STREAM_PROFILE_MIN_BYTES = 256 * 2**20
ProgressCallback = Callable[[int, int | None], None]  # (bytes read, total bytes or None)


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    versions: int
    latest_version: int


class DataClient:
    def __init__(self, workspace: Workspace | None = None) -> None:
        self.workspace = resolve_workspace(workspace)
        self.tracking = self.workspace.client(TrackingClient)
        self.store = self.workspace.stores.datasets

    # ---------------------------------------------------------------- logging
    def log(
        self,
        data: object,
        name: str,
        *,
        source: str | None = None,
        run_id: str | None = None,
        role: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> DatasetVersion:
        """Store ``data`` as a version of dataset ``name`` (or return the identical one).

        ``run_id`` (default: the active run) is recorded as its creator; with ``role``,
        the run also records the version as an input (``role="train"``).
        """
        from ratchet.data.profile import StreamingProfile, check_width, profile_parquet
        from ratchet.data.readers import open_source
        from ratchet.data.snapshot import schema_fields, write_snapshot

        name = validate_dataset_name(name)  # canonical: " churn" is churn
        if source is not None and not isinstance(source, str):
            raise InvalidInput(f"source must be a string describing where the data came from, "
                               f"got {type(source).__name__}")
        run_id = run_id or self.tracking.active_run_id()
        if role is not None and run_id is None:
            raise InvalidInput(f"role={role!r} records the dataset as a run's input, but no run "
                               "is active: log inside `with ratchet.start_run():` or drop role")
        file = Path(data).resolve() if isinstance(data, str | os.PathLike) else None
        stat = file.stat() if file is not None and file.is_file() else None
        if file is not None and stat is not None:
            unchanged = self._unchanged_file(name, file, stat)
            if unchanged is not None:
                return self._finish(unchanged, run_id, role, progress, stat.st_size)
        src = open_source(data, source=source)
        check_width(len(src.schema))  # before a byte is written: too wide to profile
        blobs = self.tracking.blobs

        def on_rows(_rows: int) -> None:
            if progress is not None and src.bytes_read is not None:
                progress(src.bytes_read(), src.total_bytes)

        # A Parquet input holds exactly the snapshot's rows, so DuckDB can profile it on
        # the other core while pyarrow re-encodes; a file's raw digest (for fast re-logs)
        # is computed there too.
        early = (_InBackground(partial(profile_parquet, file))
                 if src.kind == "parquet" and file is not None else None)
        # A large CSV is profiled from its batches on the other core while being encoded
        # (approximate distinct/quantiles, as its size would give them anyway).
        stream = (StreamingProfile(src.schema)
                  if src.kind == "csv" and (src.total_bytes or 0) >= STREAM_PROFILE_MIN_BYTES
                  else None)
        raw = (_InBackground(partial(hash_file, str(file)))
               if file is not None and stat is not None else None)
        with blobs.staging_file(".parquet") as staged:
            try:
                snap = write_snapshot(src.batches, src.schema, staged, on_rows=on_rows,
                                      on_batch=stream.feed if stream is not None else None)
            except BaseException:
                for job in (early, raw):
                    if job is not None:
                        job.join()
                if stream is not None:
                    stream.close()
                    stream.abandon()
                raise
            if stream is not None:
                stream.close()
            existing = self._find_digest(name, snap.digest)
            if existing is None:
                if early is not None:
                    profile = early.result()
                elif stream is not None:
                    profile = stream.finish(staged)
                else:
                    profile = _profile_snapshot(staged, snap.digest)
                blobs.adopt(staged, snap.digest)
                record, _ = self.store.add_version(
                    name, digest=snap.digest, size_bytes=snap.size_bytes, row_count=snap.rows,
                    schema=schema_fields(snap.schema), profile=profile.to_dict(),
                    source=src.description, created_by_run=run_id)
                version = DatasetVersion.from_record(record, self)
            else:
                if early is not None:
                    early.join()
                if stream is not None:
                    stream.abandon()
                version = existing
        if file is not None and stat is not None and raw is not None:
            self.store.record_source(name, SourceFile(
                str(file), version.version, stat.st_size, stat.st_mtime_ns, stat.st_ino,
                raw.result()))
        return self._finish(version, run_id, role, progress, src.total_bytes or 0)

    def _unchanged_file(self, name: str, file: Path, stat: os.stat_result
                        ) -> DatasetVersion | None:
        """The version this very file made last time, if its bytes are still the same.

        The stat identity (size, mtime, inode) only selects the candidate; the bytes are
        re-hashed (~1 GB/s) before it is trusted, so an in-place edit is never missed.
        """
        known = self.store.find_source(name, str(file))
        if known is None or (known.size, known.mtime_ns, known.inode) != (
                stat.st_size, stat.st_mtime_ns, stat.st_ino):
            return None
        if hash_file(str(file)) != known.raw_digest:
            return None
        try:
            return DatasetVersion.from_record(self.store.get_version(name, known.version), self)
        except NotFound:
            return None

    def _finish(self, version: DatasetVersion, run_id: str | None, role: str | None,
                progress: ProgressCallback | None, total: int) -> DatasetVersion:
        if progress is not None:
            progress(total, total)
        if run_id is not None and role is not None:
            self.tracking.log_input(run_id, version.as_input(role))
        return version

    def _find_digest(self, name: str, digest: str) -> DatasetVersion | None:
        try:
            return DatasetVersion.from_record(self.store.find_by_digest(name, digest), self)
        except NotFound:
            return None

    # ---------------------------------------------------------------- finding
    def get(self, ref: str) -> DatasetVersion:
        """``churn`` (latest), ``churn@3``, ``churn@latest`` or ``churn@<hash prefix>``."""
        parsed = DatasetRef.parse(ref)
        if parsed.version is not None:
            record = self.store.get_version(parsed.name, parsed.version)
        elif parsed.digest_prefix is not None:
            record = self.store.find_by_digest(parsed.name, parsed.digest_prefix)
        else:
            record = self.store.latest_version(parsed.name)
        return DatasetVersion.from_record(record, self)

    def list_datasets(self) -> list[DatasetSummary]:
        return [DatasetSummary(n, count, latest) for n, count, latest in
                self.store.list_datasets()]

    def list_versions(self, name: str) -> list[DatasetVersion]:
        name = validate_dataset_name(name)
        return [DatasetVersion.from_record(r, self) for r in self.store.list_versions(name)]

    def used_by(self, ref: str) -> list[tuple[str, str]]:
        """(run id, role) of the runs that recorded this version as an input."""
        version = self.get(ref)
        return self.store.runs_using(version.name, version.digest)

    def diff(self, base: str, other: str, key: Sequence[str] | None = None) -> DatasetDiff:
        from ratchet.data.version_diff import diff_versions

        return diff_versions(self.get(base), self.get(other), key)

    # ---------------------------------------------------------------- validation
    def record_validation(self, run_id: str, report: ValidationReport) -> str:
        """Store a validation report with a run: a JSON artifact under ``validation/`` and
        ``validation.<schema>.errors`` / ``.warnings`` metrics. Returns the artifact path."""
        import tempfile

        label = re.sub(r"[^A-Za-z0-9_.-]+", "-", report.schema_name or "schema").strip("-")
        taken = {e.path for e in self.tracking.list_artifacts(run_id, "validation")}
        path, n = f"validation/{label}.json", 1
        while path in taken:  # artifacts are immutable: a second check gets its own name
            n += 1
            path = f"validation/{label}-{n}.json"
        with tempfile.TemporaryDirectory(prefix="ratchet-validation-") as tmp:
            file = Path(tmp) / "report.json"
            file.write_text(report.to_json(indent=2))
            self.tracking.log_artifact(run_id, file, path)
        self.tracking.log_metrics(run_id, {
            f"validation.{label}.errors": float(len(report.errors)),
            f"validation.{label}.warnings": float(len(report.warnings)),
        }, step=n - 1)
        return path

    # ---------------------------------------------------------------- reading files
    def parquet_path(self, digest: str) -> Path:
        """A local ``<digest>.parquet`` file for the snapshot.

        Readers that pick the format by extension (DuckDB's ``FROM 'file'``) need the
        suffix that blobs don't have: a local store gets a hard link (no copy; a symlink
        across filesystems), a remote store a verified download.
        """
        blobs = self.tracking.blobs
        cache = self.tracking.settings.home / "cache" / "datasets" / f"{digest}.parquet"
        if cache.is_file():
            return cache
        make_dirs(cache.parent)  # 0700 unless RATCHET_PRIVATE_FILES=0
        local = blobs.local_path(digest)
        if local is None:
            blobs.fetch(digest, cache)  # verified while copied
            return cache
        staging = cache.with_name(f".{cache.name}.{os.getpid()}")
        try:
            os.link(local, staging)
        except OSError:
            staging.symlink_to(local)
        os.replace(staging, cache)  # atomic: concurrent readers see the link or nothing
        return cache

    def verify(self, digest: str) -> None:
        with self.tracking.blobs.open(digest) as f:  # raises IntegrityError at EOF
            while f.read(CHUNK_SIZE):
                pass

    def __repr__(self) -> str:
        from ratchet.redaction import redact_url

        return f"DataClient({redact_url(self.tracking.settings.db_url)!r})"  # no password


_PROFILES: OrderedDict[str, DatasetProfile] = OrderedDict()
_PROFILES_KEPT = 32
_profiles_lock = threading.Lock()


def _profile_snapshot(staged: Path, digest: str) -> DatasetProfile:
    """The profile of a canonical snapshot: a function of its bytes, so the same content
    logged again (e.g. under another name, as a pipeline step re-logging its input) is
    profiled once per process (the newest ``_PROFILES_KEPT`` digests are remembered)."""
    from ratchet.data.profile import profile_parquet

    with _profiles_lock:
        known = _PROFILES.get(digest)
        if known is not None:
            _PROFILES.move_to_end(digest)
            return known
    profile = profile_parquet(staged)
    with _profiles_lock:
        _PROFILES[digest] = profile
        while len(_PROFILES) > _PROFILES_KEPT:
            _PROFILES.popitem(last=False)
    return profile


class _InBackground(Generic[T]):
    """``fn()`` on a worker thread; ``result()`` joins and re-raises its exception.

    For work that releases the GIL (DuckDB, hashlib on large buffers), so it runs on the
    second core while the main thread parses and encodes.
    """

    def __init__(self, fn: Callable[[], T]) -> None:
        import threading

        self._value: T | None = None
        self._error: BaseException | None = None

        def work() -> None:
            try:
                self._value = fn()
            except BaseException as exc:  # handed to the caller in result()
                self._error = exc

        self._thread = threading.Thread(target=work, name="ratchet-data", daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def result(self) -> T:
        self.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)
