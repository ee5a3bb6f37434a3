"""SQL for the feature store's metadata: versioned definitions, materializations, and the
definition versions each logged training set was built from.

A definition is immutable: registering a spec whose digest differs from the latest
version's makes the next version; the same digest again is the existing version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ratchet.clock import now_ms
from ratchet.errors import Conflict, InvalidInput, NotFound
from ratchet.ids import new_id
from ratchet.names import check_portable_name
from ratchet.store import raw_sql
from ratchet.store import schema as t
from ratchet.store.database import Database

DEFINITION_KINDS = ("entity", "feature_view", "on_demand")
# A training set's lineage also names the source dataset versions its views read.
LINK_KINDS = (*DEFINITION_KINDS, "dataset")
_KIND_WORDS = {"entity": "entity", "feature_view": "feature view", "on_demand": "on-demand view"}
MAX_SPEC_BYTES = 1 << 20


@dataclass(frozen=True)
class FeatureDefinitionRecord:
    kind: str
    name: str
    version: int
    digest: str
    spec: dict[str, Any]
    created_at: int
    created_by: str | None


@dataclass(frozen=True)
class MaterializationRecord:
    materialization_id: str
    view: str
    view_version: int
    online_store: str
    start_at: int | None  # µs since the epoch, exclusive; None: from the beginning
    end_at: int           # µs since the epoch, inclusive
    rows: int
    created_at: int


@dataclass(frozen=True)
class TrainingSetLink:
    dataset_name: str
    dataset_version: int
    kind: str
    name: str
    version: int


def _check_kind(kind: object, kinds: tuple[str, ...] = DEFINITION_KINDS) -> str:
    if kind not in kinds:
        raise InvalidInput(f"definition kind must be one of {', '.join(kinds)}, got {kind!r}")
    return str(kind)


def _record(row: Any) -> FeatureDefinitionRecord:
    return FeatureDefinitionRecord(row.kind, row.name, row.version, row.digest,
                                   json.loads(row.spec), row.created_at, row.created_by)


class FeatureDefinitionStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._raw = raw_sql.RawConnections(db)
        self._count = raw_sql.CompiledStatement(
            db, select(func.count()).select_from(t.feature_definitions))

    def definitions_count(self) -> int:
        """How many definition versions are registered. Definitions are append-only, so
        this changes with every new version: the cheap stamp that tells a cache of
        resolved definitions (the online lookup's) that it is stale."""
        with self._raw.transaction(write=False) as cur:
            cur.execute(self._count.sql, self._count.params({}))
            return int(cur.fetchone()[0])

    # ------------------------------------------------------------------ definitions
    def register_definition(self, kind: str, name: str, digest: str, spec: dict[str, Any], *,
                            actor: str | None = None) -> FeatureDefinitionRecord:
        """The latest version of ``kind``/``name`` if its digest is ``digest``, else a new
        version holding ``spec``."""
        kind = _check_kind(kind)
        name = check_portable_name(_KIND_WORDS[kind], name)
        if not (isinstance(digest, str) and 8 <= len(digest) <= 64 and digest.isalnum()):
            raise InvalidInput(f"definition digest must be 8-64 hex characters, got {digest!r}")
        try:
            encoded = json.dumps(spec, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{_KIND_WORDS[kind]} {name!r}: its spec is not JSON: {exc}"
                               ) from None
        if len(encoded) > MAX_SPEC_BYTES:
            raise InvalidInput(f"{_KIND_WORDS[kind]} {name!r}: its spec is "
                               f"{len(encoded)} bytes, over the {MAX_SPEC_BYTES}-byte limit")
        d = t.feature_definitions
        for _attempt in range(5):  # two writers of the same new version: one retries
            with self.db.write() as conn:
                latest = conn.execute(
                    select(d).where(d.c.kind == kind, d.c.name == name)
                    .order_by(d.c.version.desc()).limit(1)).first()
                if latest is not None and latest.digest == digest:
                    return _record(latest)
                version = 1 if latest is None else latest.version + 1
                created_at = now_ms()
                values = {"kind": kind, "name": name, "version": version, "digest": digest,
                          "spec": encoded, "created_at": created_at, "created_by": actor}
                try:
                    conn.execute(insert(d).values(**values))
                except SAIntegrityError:
                    continue
            return FeatureDefinitionRecord(kind, name, version, digest, json.loads(encoded),
                                           created_at, actor)
        raise Conflict(f"{_KIND_WORDS[kind]} {name!r} is being changed by another writer; "
                       "apply again")

    def get_definition(self, kind: str, name: str, version: int | None = None
                       ) -> FeatureDefinitionRecord:
        """One version of a definition (the latest without ``version``)."""
        kind = _check_kind(kind)
        d = t.feature_definitions
        query = select(d).where(d.c.kind == kind, d.c.name == name)
        query = (query.where(d.c.version == version) if version is not None
                 else query.order_by(d.c.version.desc()).limit(1))
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            which = f" version {version}" if version is not None else ""
            raise NotFound(f"no {_KIND_WORDS[kind]} {name!r}{which} is registered: "
                           "declare it and run `ratchet features apply`")
        return _record(row)

    def list_definitions(self, kind: str | None = None) -> list[FeatureDefinitionRecord]:
        """The latest version of every definition (of one kind), by kind and name."""
        d = t.feature_definitions
        latest = (select(d.c.kind, d.c.name, func.max(d.c.version).label("version"))
                  .group_by(d.c.kind, d.c.name))
        if kind is not None:
            latest = latest.where(d.c.kind == _check_kind(kind))
        sub = latest.subquery()
        query = (select(d).join(sub, (d.c.kind == sub.c.kind) & (d.c.name == sub.c.name)
                                & (d.c.version == sub.c.version))
                 .order_by(d.c.kind, d.c.name))
        with self.db.read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def definition_history(self, kind: str, name: str) -> list[FeatureDefinitionRecord]:
        """Every version of one definition, oldest first."""
        kind = _check_kind(kind)
        d = t.feature_definitions
        with self.db.read() as conn:
            rows = conn.execute(select(d).where(d.c.kind == kind, d.c.name == name)
                                .order_by(d.c.version)).all()
        if not rows:
            raise NotFound(f"no {_KIND_WORDS[kind]} {name!r} is registered")
        return [_record(row) for row in rows]

    # ------------------------------------------------------------------ materialization
    def record_materialization(self, view: str, view_version: int, online_store: str,
                               start_at: int | None, end_at: int, rows: int
                               ) -> MaterializationRecord:
        if start_at is not None and start_at >= end_at:
            raise InvalidInput(f"materialization of {view!r}: start {start_at} is not before "
                               f"end {end_at}")
        record = MaterializationRecord(new_id(), view, view_version, online_store, start_at,
                                       end_at, rows, now_ms())
        with self.db.write() as conn:
            conn.execute(insert(t.feature_materializations).values(
                materialization_id=record.materialization_id, view=view,
                view_version=view_version, online_store=online_store, start_at=start_at,
                end_at=end_at, rows=rows, created_at=record.created_at))
        return record

    def last_materialization(self, view: str, online_store: str
                             ) -> MaterializationRecord | None:
        """The materialization of ``view`` into ``online_store`` that reached furthest."""
        m = t.feature_materializations
        with self.db.read() as conn:
            row = conn.execute(
                select(m).where(m.c.view == view, m.c.online_store == online_store)
                .order_by(m.c.end_at.desc(), m.c.created_at.desc()).limit(1)).first()
        return None if row is None else MaterializationRecord(
            row.materialization_id, row.view, row.view_version, row.online_store,
            row.start_at, row.end_at, row.rows, row.created_at)

    def list_materializations(self, view: str, online_store: str | None = None
                              ) -> list[MaterializationRecord]:
        """Every materialization of ``view`` (into one online store), newest first."""
        m = t.feature_materializations
        query = select(m).where(m.c.view == view)
        if online_store is not None:
            query = query.where(m.c.online_store == online_store)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(m.c.created_at.desc(), m.c.end_at.desc())).all()
        return [MaterializationRecord(r.materialization_id, r.view, r.view_version,
                                      r.online_store, r.start_at, r.end_at, r.rows,
                                      r.created_at) for r in rows]

    # ------------------------------------------------------------------ lineage
    def link_training_set(self, dataset_name: str, dataset_version: int,
                          definitions: Sequence[tuple[str, str, int]]) -> None:
        """Record that dataset version ``dataset_name``/``dataset_version`` was built from
        ``definitions``: (kind, name, version) each, kind one of ``LINK_KINDS`` (a source
        dataset's version too). Linking the same set again is a no-op."""
        s = t.feature_training_sets
        at = now_ms()
        with self.db.write() as conn:
            known = {(r.kind, r.name) for r in conn.execute(
                select(s.c.kind, s.c.name).where(s.c.dataset_name == dataset_name,
                                                 s.c.dataset_version == dataset_version))}
            rows = [{"dataset_name": dataset_name, "dataset_version": dataset_version,
                     "kind": _check_kind(kind, LINK_KINDS), "name": name, "version": version,
                     "created_at": at}
                    for kind, name, version in dict.fromkeys(
                        (k, n, v) for k, n, v in definitions)
                    if (kind, name) not in known]
            if rows:
                conn.execute(insert(s), rows)

    def training_set_definitions(self, dataset_name: str, dataset_version: int
                                 ) -> list[TrainingSetLink]:
        """The definition versions a logged training set was built from."""
        s = t.feature_training_sets
        with self.db.read() as conn:
            rows = conn.execute(select(s).where(s.c.dataset_name == dataset_name,
                                                s.c.dataset_version == dataset_version)
                                .order_by(s.c.kind, s.c.name)).all()
        return [TrainingSetLink(r.dataset_name, r.dataset_version, r.kind, r.name, r.version)
                for r in rows]

    def training_sets_using(self, kind: str, name: str) -> list[TrainingSetLink]:
        """The logged training sets built from any version of one definition."""
        s = t.feature_training_sets
        with self.db.read() as conn:
            rows = conn.execute(select(s).where(s.c.kind == _check_kind(kind, LINK_KINDS),
                                                s.c.name == name)
                                .order_by(s.c.dataset_name, s.c.dataset_version)).all()
        return [TrainingSetLink(r.dataset_name, r.dataset_version, r.kind, r.name, r.version)
                for r in rows]

    def __repr__(self) -> str:
        return f"FeatureDefinitionStore({self.db!r})"
