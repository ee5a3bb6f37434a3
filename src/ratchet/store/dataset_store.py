"""SQL implementation of datasets and their immutable, content-addressed versions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ratchet.clock import now_ms
from ratchet.errors import InvalidInput, NotFound
from ratchet.store import schema as t
from ratchet.store.database import Database
from ratchet.store.records import DatasetVersionRecord

MIN_DIGEST_PREFIX = 6


@dataclass(frozen=True)
class SourceFile:
    """A file as it was when logged: where, its stat identity, and its bytes' digest."""

    path: str
    version: int
    size: int
    mtime_ns: int
    inode: int
    raw_digest: str


class DatasetStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add_version(
        self,
        name: str,
        *,
        digest: str,
        size_bytes: int,
        row_count: int,
        schema: Sequence[dict[str, Any]],
        profile: dict[str, Any],
        source: str | None,
        created_by_run: str | None,
    ) -> tuple[DatasetVersionRecord, bool]:
        """The next version of ``name``, or the existing one with the same digest.

        Returns the record and whether it was created. The parent is the latest version
        at the time of logging.
        """
        now = now_ms()
        ds, dv = t.datasets, t.dataset_versions
        with self.db.write() as conn:
            conn.execute(self.db.upsert(ds).values(name=name, created_at=now, updated_at=now)
                         .on_conflict_do_nothing())
            # Serialize numbering per dataset on PostgreSQL (SQLite writes are serial).
            conn.execute(select(ds.c.name).where(ds.c.name == name).with_for_update())
            existing = conn.execute(select(dv.c.version, dv.c.deleted_at).where(
                dv.c.name == name, dv.c.digest == digest)).first()
            if existing is not None:
                created = False
                version = int(existing.version)
                if existing.deleted_at is not None:  # logging it again undoes the delete
                    conn.execute(update(dv).where(dv.c.name == name, dv.c.version == version)
                                 .values(deleted_at=None))
            else:
                latest = conn.execute(select(func.max(dv.c.version)).where(
                    dv.c.name == name, dv.c.deleted_at.is_(None))).scalar()
                # A number gc purged (or a deleted version holds) is never reused.
                highest = conn.execute(select(func.max(dv.c.version))
                                       .where(dv.c.name == name)).scalar()
                purged = conn.execute(select(ds.c.purged_version).where(ds.c.name == name)
                                      ).scalar()
                version = max(highest or 0, purged or 0) + 1
                try:
                    conn.execute(insert(dv).values(
                        name=name, version=version, digest=digest, size_bytes=size_bytes,
                        row_count=row_count, schema=json.dumps(list(schema)),
                        profile=json.dumps(profile, allow_nan=False), source=source,
                        parent_version=latest, created_by_run=created_by_run, created_at=now))
                except SAIntegrityError:
                    raise NotFound(f"run {created_by_run!r} does not exist") from None
                conn.execute(update(ds).where(ds.c.name == name).values(updated_at=now))
                created = True
        return self.get_version(name, version), created

    def get_version(self, name: str, version: int, *, include_deleted: bool = False
                    ) -> DatasetVersionRecord:
        dv = t.dataset_versions
        with self.db.read() as conn:
            row = conn.execute(select(dv).where(dv.c.name == name, dv.c.version == version)
                               ).first()
        if row is None:
            self._require_dataset(name)
            raise NotFound(f"dataset {name!r} has no version {version}")
        if row.deleted_at is not None and not include_deleted:
            from ratchet.store.deletion import deleted_note

            raise NotFound(deleted_note(f"dataset {name}@{version}", row.deleted_at,
                                        f"ratchet data restore {name}@{version}"))
        return _record(row)

    def latest_version(self, name: str) -> DatasetVersionRecord:
        dv = t.dataset_versions
        with self.db.read() as conn:
            version = conn.execute(select(func.max(dv.c.version)).where(
                dv.c.name == name, dv.c.deleted_at.is_(None))).scalar()
        if version is None:
            self._require_dataset(name)
            raise NotFound(f"dataset {name!r} has no versions")
        return self.get_version(name, int(version))

    def find_by_digest(self, name: str, prefix: str) -> DatasetVersionRecord:
        if len(prefix) < MIN_DIGEST_PREFIX or any(c not in "0123456789abcdef" for c in prefix):
            raise InvalidInput(f"{name}@{prefix}: a content hash prefix needs at least "
                               f"{MIN_DIGEST_PREFIX} lowercase hex characters")
        dv = t.dataset_versions
        with self.db.read() as conn:
            rows = conn.execute(select(dv).where(dv.c.name == name, dv.c.deleted_at.is_(None),
                                                 dv.c.digest.like(f"{prefix}%"))).all()
        if not rows:
            self._require_dataset(name)
            raise NotFound(f"dataset {name!r} has no version whose hash starts with {prefix}")
        if len(rows) > 1:
            versions = ", ".join(str(r.version) for r in rows)
            raise InvalidInput(f"{name}@{prefix} is ambiguous (versions {versions}); "
                               "give more characters of the hash")
        return _record(rows[0])

    def list_versions(self, name: str, *, include_deleted: bool = False
                      ) -> list[DatasetVersionRecord]:
        dv = t.dataset_versions
        query = select(dv).where(dv.c.name == name).order_by(dv.c.version)
        if not include_deleted:
            query = query.where(dv.c.deleted_at.is_(None))
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        if not rows:
            self._require_dataset(name)
        return [_record(r) for r in rows]

    def list_datasets(self) -> list[tuple[str, int, int]]:
        """(name, number of versions, latest version) for every dataset, by name."""
        ds, dv = t.datasets, t.dataset_versions
        with self.db.read() as conn:
            rows = conn.execute(
                select(ds.c.name, func.count(dv.c.version), func.max(dv.c.version))
                .select_from(ds.join(dv, (dv.c.name == ds.c.name) & dv.c.deleted_at.is_(None)))
                .group_by(ds.c.name).order_by(ds.c.name)).all()
        return [(r[0], int(r[1]), int(r[2] or 0)) for r in rows]

    def runs_using(self, name: str, digest: str) -> list[tuple[str, str]]:
        """(run id, role) of every run that recorded this dataset version as an input."""
        ri = t.run_inputs
        with self.db.read() as conn:
            rows = conn.execute(select(ri.c.run_id, ri.c.role).where(
                ri.c.name == name, ri.c.digest == digest).order_by(ri.c.created_at)).all()
        return [(r[0], r[1]) for r in rows]

    def find_source(self, name: str, path: str) -> SourceFile | None:
        """What was recorded when the file at ``path`` was last logged as ``name``."""
        src, dv = t.dataset_sources, t.dataset_versions
        with self.db.read() as conn:
            row = conn.execute(select(src).join(dv, (dv.c.name == src.c.name)
                                                & (dv.c.version == src.c.version))
                               .where(src.c.name == name, src.c.path == path,
                                      dv.c.deleted_at.is_(None))).first()
        if row is None:
            return None
        return SourceFile(row.path, row.version, row.size, row.mtime_ns, row.inode,
                          row.raw_digest)

    def record_source(self, name: str, source: SourceFile) -> None:
        src = t.dataset_sources
        values = {"name": name, "path": source.path, "version": source.version,
                  "size": source.size, "mtime_ns": source.mtime_ns, "inode": source.inode,
                  "raw_digest": source.raw_digest, "updated_at": now_ms()}
        stmt = self.db.upsert(src).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[src.c.name, src.c.path],
            set_={k: stmt.excluded[k] for k in values if k not in ("name", "path")})
        try:
            with self.db.write() as conn:
                conn.execute(stmt)
        except SAIntegrityError:  # the dataset (or version) it points at does not exist
            self._require_dataset(name)
            raise NotFound(f"dataset {name!r} has no version {source.version}") from None

    def _require_dataset(self, name: str) -> None:
        with self.db.read() as conn:
            found = conn.execute(select(t.datasets.c.name).where(t.datasets.c.name == name)
                                 ).first()
        if found is None:
            raise NotFound(f"no dataset named {name!r}")


def _record(row: Any) -> DatasetVersionRecord:
    return DatasetVersionRecord(
        name=row.name, version=row.version, digest=row.digest, size_bytes=row.size_bytes,
        row_count=row.row_count, schema=tuple(json.loads(row.schema)),
        profile=json.loads(row.profile), source=row.source, parent_version=row.parent_version,
        created_by_run=row.created_by_run, created_at=row.created_at,
        deleted_at=row.deleted_at)
