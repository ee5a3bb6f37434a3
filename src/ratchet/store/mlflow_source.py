"""Reading an MLflow SQL tracking store (SQLite file or PostgreSQL) for ``ratchet import``.

MLflow's tables are reflected, not declared: 2.x and 3.x differ (3.x adds ``workspace``
columns and ``logged_models``), and reflection reads whichever schema the file has. Only
MLflow's ``default`` workspace is read. The database is opened read-only where the driver
allows it (SQLite), and nothing is ever written to it. Metric points are streamed in pages
(``yield_per``): a store can hold 100M of them.

The plain records here are shared with the file-store reader (``ratchet.importing``), which
sits above this layer and so imports them from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ratchet.errors import InvalidInput, NotFound

MetricPoint = tuple[str, float, int, int]  # key, value, step, timestamp (as ratchet logs them)
DEFAULT_PAGE = 10_000
DEFAULT_WORKSPACE = "default"
DELETED_STAGE = "Deleted_Internal"  # a deleted model version's stage in MLflow's registry
# MLflow's RunStatus enum as the file store writes it (an int in meta.yaml).
RUN_STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


@dataclass(frozen=True)
class SourceExperiment:
    experiment_id: str
    name: str
    artifact_location: str | None
    lifecycle_stage: str  # "active" or "deleted"
    creation_time: int | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceRun:
    run_id: str
    experiment_id: str
    name: str | None
    status: str  # MLflow's: RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str | None
    user_id: str | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceModel:
    name: str
    description: str | None
    creation_time: int | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceVersion:
    name: str
    version: int
    source: str | None
    storage_location: str | None
    run_id: str | None
    description: str | None
    current_stage: str | None
    status: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        return self.current_stage == DELETED_STAGE


@dataclass(frozen=True)
class SourceLoggedModel:
    """An MLflow 3 logged model: files under its own artifact location."""

    model_id: str
    experiment_id: str
    name: str
    artifact_location: str | None
    source_run_id: str | None
    lifecycle_stage: str
    status: str = "ready"  # pending | ready | failed (MLflow's LoggedModelStatus, lowercased)


# MLflow's LoggedModelStatus enum as stored (an int in SQL and in meta.yaml).
LOGGED_MODEL_STATUS_NAMES = {1: "pending", 2: "ready", 3: "failed"}


def logged_model_status(value: object) -> str:
    if isinstance(value, int):
        return LOGGED_MODEL_STATUS_NAMES.get(value, "ready")
    text = str(value or "").lower()
    return text if text in ("pending", "ready", "failed") else "ready"


class MlflowSource(Protocol):
    """What the importer reads from an MLflow store, whatever its backend."""

    where: str  # names the source in messages
    local_root: Path | None  # the directory that holds the store, if it is local

    def experiments(self) -> list[SourceExperiment]: ...
    def runs(self, experiment_id: str) -> list[SourceRun]: ...
    def metric_counts(self, run_id: str) -> dict[str, int]: ...
    def metric_points(self, run_id: str, keys: Sequence[str] | None = None,
                      page: int = DEFAULT_PAGE) -> Iterator[list[MetricPoint]]: ...
    def registered_models(self) -> list[SourceModel]: ...
    def model_versions(self, name: str) -> list[SourceVersion]: ...
    def logged_models(self) -> list[SourceLoggedModel]: ...
    def close(self) -> None: ...


def sql_url(source: str) -> str | None:
    """The SQLAlchemy URL of an MLflow SQL store named by ``source`` (a URL, or the path of
    an SQLite file), or None when it is not one (a file store directory)."""
    if source.startswith("sqlite:///"):
        return source
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if source.startswith(prefix):  # MLflow's URLs name psycopg2; ratchet has psycopg 3
            return "postgresql+psycopg://" + source[len(prefix):]
    if source.startswith("postgresql+psycopg://"):
        return source
    if "://" in source:
        raise InvalidInput(f"MLflow store {source!r}: only SQLite and PostgreSQL URLs, or a "
                           "file store directory, can be imported")
    path = Path(source)
    if path.is_file():
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise InvalidInput(f"MLflow store {source!r} is a file but not an SQLite "
                                   "database")
        return f"sqlite:///{path.resolve()}"
    return None


class SqlMlflowSource:
    """An MLflow SQL store, read with SQLAlchemy Core over reflected tables."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import MetaData, create_engine
        from sqlalchemy.exc import SQLAlchemyError

        self.local_root: Path | None = None
        self.where = url.split("@")[-1] if "@" in url else url  # never print a password
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///"):])
            if not path.is_file():
                raise NotFound(f"MLflow store {url!r}: no such SQLite file")
            self.local_root = path.resolve().parent
            # Read-only: an import never changes its source.
            engine_url = f"sqlite:///file:{path.resolve()}?mode=ro&uri=true"
        else:
            engine_url = url
        self._engine = create_engine(engine_url)
        self._meta = MetaData()
        try:
            with self._engine.connect() as conn:
                self._meta.reflect(conn, only=lambda name, _: name in _TABLES)
        except SQLAlchemyError as exc:
            raise InvalidInput(f"cannot read MLflow store {self.where!r}: "
                               f"{str(exc).splitlines()[0]}") from None
        for needed in ("experiments", "runs", "metrics", "params", "tags"):
            if needed not in self._meta.tables:
                raise InvalidInput(f"{self.where!r} is not an MLflow tracking store (no "
                                   f"{needed!r} table)")

    def close(self) -> None:
        self._engine.dispose()

    def _table(self, name: str) -> Any:
        return self._meta.tables.get(name)

    def _in_workspace(self, table: Any) -> list[Any]:
        return [table.c.workspace == DEFAULT_WORKSPACE] if "workspace" in table.c else []

    def _rows(self, query: Any) -> list[Any]:
        with self._engine.connect() as conn:
            return list(conn.execute(query))

    # ---------------------------------------------------------------- tracking
    def experiments(self) -> list[SourceExperiment]:
        from sqlalchemy import select

        e, et = self._table("experiments"), self._table("experiment_tags")
        rows = self._rows(select(e).where(*self._in_workspace(e)).order_by(e.c.experiment_id))
        tags: dict[str, dict[str, str]] = {}
        if et is not None:
            for r in self._rows(select(et.c.experiment_id, et.c.key, et.c.value)):
                tags.setdefault(str(r.experiment_id), {})[r.key] = r.value or ""
        return [SourceExperiment(str(r.experiment_id), r.name, r.artifact_location,
                                 r.lifecycle_stage or "active", r.creation_time,
                                 tags.get(str(r.experiment_id), {})) for r in rows]

    def runs(self, experiment_id: str) -> list[SourceRun]:
        from sqlalchemy import select

        r_t, p_t, t_t = self._table("runs"), self._table("params"), self._table("tags")
        exp = int(experiment_id)
        rows = self._rows(select(r_t).where(r_t.c.experiment_id == exp)
                          .order_by(r_t.c.start_time, r_t.c.run_uuid))
        params: dict[str, dict[str, str]] = {}
        tags: dict[str, dict[str, str]] = {}
        for table, into in ((p_t, params), (t_t, tags)):
            query = (select(table.c.run_uuid, table.c.key, table.c.value)
                     .join(r_t, r_t.c.run_uuid == table.c.run_uuid)
                     .where(r_t.c.experiment_id == exp))
            for row in self._rows(query):
                into.setdefault(row.run_uuid, {})[row.key] = row.value or ""
        return [SourceRun(
            run_id=r.run_uuid, experiment_id=str(r.experiment_id), name=r.name,
            status=r.status or "RUNNING", start_time=r.start_time, end_time=r.end_time,
            lifecycle_stage=r.lifecycle_stage or "active", artifact_uri=r.artifact_uri,
            user_id=r.user_id, params=params.get(r.run_uuid, {}), tags=tags.get(r.run_uuid, {}),
        ) for r in rows]

    def metric_counts(self, run_id: str) -> dict[str, int]:
        from sqlalchemy import func, select

        m = self._table("metrics")
        return {r[0]: int(r[1]) for r in self._rows(
            select(m.c.key, func.count()).where(m.c.run_uuid == run_id).group_by(m.c.key))}

    def metric_points(self, run_id: str, keys: Sequence[str] | None = None,
                      page: int = DEFAULT_PAGE) -> Iterator[list[MetricPoint]]:
        from sqlalchemy import select

        m = self._table("metrics")
        query = (select(m.c.key, m.c.value, m.c.is_nan, m.c.step, m.c.timestamp)
                 .where(m.c.run_uuid == run_id).order_by(m.c.key, m.c.step, m.c.timestamp))
        if keys is not None:
            query = query.where(m.c.key.in_(list(keys)))
        with self._engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=page).execute(query)
            for rows in result.partitions(page):
                yield [(r.key, math.nan if r.is_nan else float(r.value), int(r.step or 0),
                        int(r.timestamp or 0)) for r in rows]

    # ---------------------------------------------------------------- registry
    def registered_models(self) -> list[SourceModel]:
        from sqlalchemy import select

        rm = self._table("registered_models")
        if rm is None:
            return []
        rmt, al = self._table("registered_model_tags"), self._table("registered_model_aliases")
        tags: dict[str, dict[str, str]] = {}
        aliases: dict[str, dict[str, int]] = {}
        if rmt is not None:
            for r in self._rows(select(rmt).where(*self._in_workspace(rmt))):
                tags.setdefault(r.name, {})[r.key] = r.value or ""
        if al is not None:
            for r in self._rows(select(al).where(*self._in_workspace(al))):
                aliases.setdefault(r.name, {})[r.alias] = int(r.version)
        return [SourceModel(r.name, r.description, r.creation_time, tags.get(r.name, {}),
                            aliases.get(r.name, {}))
                for r in self._rows(select(rm).where(*self._in_workspace(rm))
                                    .order_by(rm.c.name))]

    def model_versions(self, name: str) -> list[SourceVersion]:
        from sqlalchemy import select

        mv, mvt = self._table("model_versions"), self._table("model_version_tags")
        if mv is None:
            return []
        tags: dict[int, dict[str, str]] = {}
        if mvt is not None:
            for r in self._rows(select(mvt).where(mvt.c.name == name, *self._in_workspace(mvt))):
                tags.setdefault(int(r.version), {})[r.key] = r.value or ""
        rows = self._rows(select(mv).where(mv.c.name == name, *self._in_workspace(mv))
                          .order_by(mv.c.version))
        return [SourceVersion(
            name=r.name, version=int(r.version), source=r.source,
            storage_location=getattr(r, "storage_location", None), run_id=r.run_id,
            description=r.description, current_stage=r.current_stage, status=r.status,
            tags=tags.get(int(r.version), {}),
        ) for r in rows]

    def logged_models(self) -> list[SourceLoggedModel]:
        from sqlalchemy import select

        lm = self._table("logged_models")
        if lm is None:
            return []
        return [SourceLoggedModel(r.model_id, str(r.experiment_id), r.name, r.artifact_location,
                                  r.source_run_id, r.lifecycle_stage or "active",
                                  logged_model_status(r.status))
                for r in self._rows(select(lm).order_by(lm.c.model_id))]


_TABLES = frozenset({
    "experiments", "experiment_tags", "runs", "params", "tags", "metrics",
    "registered_models", "registered_model_tags", "model_versions", "model_version_tags",
    "registered_model_aliases", "logged_models",
})
