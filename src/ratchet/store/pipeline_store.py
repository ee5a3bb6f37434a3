"""Pipeline runs and step runs: the DAG executions, their cache keys and outputs.

The driver of a pipeline run is the only writer of its rows. A run's steps are inserted
as ``pending`` when it starts, so ``show`` can draw the whole DAG at any moment.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, literal_column, select, update

from ratchet.clock import now_ms
from ratchet.errors import InvalidInput
from ratchet.store import raw_sql as raw
from ratchet.store import schema as t
from ratchet.store.database import Database
from ratchet.store.records import (
    DatasetInput,
    PipelineRunRecord,
    StepInput,
    StepRunRecord,
    StoredOutput,
)

CACHEABLE_STATUSES = ("finished", "cached")


@dataclass(frozen=True)
class NewStep:
    step_run_id: str
    node: str
    step: str
    position: int
    upstream: tuple[str, ...]
    params: dict[str, Any]


@dataclass(frozen=True)
class NewTrackingRun:
    """A step's tracking run, written with the step's start (rows from ``new_run_rows``)."""

    run_id: str
    values: dict[str, Any]
    tag_rows: list[dict[str, str]]
    params: dict[str, str]
    inputs: tuple[DatasetInput, ...] = ()  # dataset versions the step reads


@dataclass(frozen=True)
class CacheHit:
    step_run_id: str
    origin: str  # the step run that computed the outputs
    outputs: tuple[StoredOutput, ...]


@dataclass(frozen=True)
class CachedStep:
    step_run_id: str
    cached_from: str
    code_hash: str
    cache_key: str
    at: int
    outputs: tuple[StoredOutput, ...]
    inputs: tuple[StepInput, ...]


def _check_new_run(run: NewTrackingRun) -> None:
    """The raw insert takes ``values`` as the runs table's row: exactly its columns, for
    this run (the team server passes clients' records here)."""
    columns = {c.name for c in t.runs.c}
    missing, extra = sorted(columns - set(run.values)), sorted(set(run.values) - columns)
    if missing or extra:
        raise InvalidInput(f"run.values must hold exactly the runs table's columns; "
                           f"missing {missing or 'none'}, unknown {extra or 'none'}")
    if run.values["run_id"] != run.run_id:
        raise InvalidInput("run.values.run_id must be run.run_id")
    for row in run.tag_rows:
        if set(row) != {"run_id", "key", "value"} or row["run_id"] != run.run_id:
            raise InvalidInput("each of run.tag_rows must be {run_id, key, value} of this run")


class PipelineStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---------------------------------------------------------------- writes
    def create_pipeline_run(
        self, *, run_id: str, pipeline: str, ref: str | None, params: dict[str, Any],
        executor: str, tracking_run_id: str | None, steps: Sequence[NewStep],
        resumed_from: str | None = None, schedule_id: str | None = None,
        host: str | None = None, pid: int | None = None, now: int | None = None,
    ) -> None:
        now = now or now_ms()
        with self.db.write() as conn:
            conn.execute(insert(t.pipeline_runs).values(
                run_id=run_id, pipeline=pipeline, ref=ref, params=_dumps(params),
                status="running", executor=executor, tracking_run_id=tracking_run_id,
                resumed_from=resumed_from, schedule_id=schedule_id, host=host, pid=pid,
                started_at=now, heartbeat_at=now,
            ))
            if steps:
                conn.execute(insert(t.step_runs), [
                    {"step_run_id": s.step_run_id, "pipeline_run_id": run_id, "node": s.node,
                     "step": s.step, "position": s.position, "status": "pending",
                     "upstream": json.dumps(list(s.upstream)), "params": _dumps(s.params),
                     "attempts": 0}
                    for s in steps
                ])

    def heartbeat(self, run_id: str, now: int | None = None) -> None:
        with self.db.write() as conn:
            conn.execute(update(t.pipeline_runs).where(t.pipeline_runs.c.run_id == run_id)
                         .values(heartbeat_at=now or now_ms()))

    def start_step(self, step_run_id: str, *, code_hash: str, cache_key: str | None,
                   run: NewTrackingRun | None = None, attempts: int = 1,
                   started_at: int | None = None) -> None:
        """Mark a step running; in the same transaction, create its tracking run."""
        if run is not None:
            _check_new_run(run)
        sql = _statements(self.db)
        with sql.connections.transaction(write=True) as cur:
            if run is not None:
                raw.run(cur, sql.insert_run, [run.values])
                raw.run(cur, sql.insert_tag, run.tag_rows)
                raw.run(cur, sql.insert_param, [{"run_id": run.run_id, "key": k, "value": v}
                                                for k, v in run.params.items()])
                now = now_ms()
                unique = {(d.name, d.digest): d for d in run.inputs}
                raw.run(cur, sql.insert_input, [
                    {"run_id": run.run_id, "name": d.name, "digest": d.digest,
                     "version": d.version, "role": d.role, "source": d.source,
                     "created_at": now} for d in unique.values()])
            raw.run(cur, sql.start_step, [{
                "b_id": step_run_id, "b_code": code_hash, "b_key": cache_key,
                "b_run": run.run_id if run else None, "b_attempts": attempts,
                "b_started": started_at or now_ms()}])

    def set_attempts(self, step_run_id: str, attempts: int, error: str | None = None) -> None:
        with self.db.write() as conn:
            conn.execute(update(t.step_runs).where(t.step_runs.c.step_run_id == step_run_id)
                         .values(attempts=attempts, error=error))

    def finish_step(
        self, step_run_id: str, *, status: str, outputs: Sequence[StoredOutput] = (),
        inputs: Sequence[StepInput] = (), log_digest: str | None = None,
        error: str | None = None, cached_from: str | None = None,
        code_hash: str | None = None, cache_key: str | None = None,
        started_at: int | None = None, ended_at: int | None = None,
        end_run: tuple[str, str] | None = None, log_artifact: tuple[str, int] | None = None,
    ) -> None:
        """Record a step's end; ``end_run=(tracking run id, status)`` ends its tracking run
        and ``log_artifact=(path, size)`` files the captured log under it, atomically."""
        ended_at = ended_at or now_ms()
        sql = _statements(self.db)
        with sql.connections.transaction(write=True) as cur:
            raw.run(cur, sql.finish_step, [{
                "b_id": step_run_id, "b_status": status, "b_log": log_digest, "b_error": error,
                "b_from": cached_from, "b_ended": ended_at, "b_code": code_hash,
                "b_key": cache_key, "b_started": started_at}])
            raw.run(cur, sql.insert_output, [_output_row(step_run_id, o) for o in outputs])
            raw.run(cur, sql.insert_step_input, _input_rows(step_run_id, inputs))
            if end_run is not None:
                run_id, run_status = end_run
                if log_artifact is not None and log_digest is not None:
                    raw.run(cur, sql.insert_artifact, [{
                        "run_id": run_id, "path": log_artifact[0], "digest": log_digest,
                        "size": log_artifact[1], "created_at": ended_at}])
                raw.run(cur, sql.end_run, [{"b_id": run_id, "b_status": run_status,
                                            "b_ended": ended_at, "b_error": error}])

    def record_cached(self, steps: Sequence[CachedStep]) -> None:
        """Many cache hits in one transaction (a fully cached run is mostly these)."""
        if not steps:
            return
        sr = t.step_runs
        with self.db.write() as conn:
            conn.execute(
                update(sr).where(sr.c.step_run_id == bindparam("b_id")).values(
                    status="cached", cached_from=bindparam("b_from"),
                    code_hash=bindparam("b_code"), cache_key=bindparam("b_key"),
                    started_at=bindparam("b_at"), ended_at=bindparam("b_at")),
                [{"b_id": c.step_run_id, "b_from": c.cached_from, "b_code": c.code_hash,
                  "b_key": c.cache_key, "b_at": c.at} for c in steps])
            outputs = [_output_row(c.step_run_id, o) for c in steps for o in c.outputs]
            if outputs:
                conn.execute(insert(t.step_outputs), outputs)
            inputs = [row for c in steps for row in _input_rows(c.step_run_id, c.inputs)]
            if inputs:
                conn.execute(insert(t.step_inputs), inputs)

    def skip_pending(self, run_id: str, status: str = "skipped") -> None:
        with self.db.write() as conn:
            conn.execute(update(t.step_runs).where(and_(
                t.step_runs.c.pipeline_run_id == run_id, t.step_runs.c.status == "pending"))
                .values(status=status))

    def finish_pipeline_run(self, run_id: str, status: str, *, error: str | None = None,
                            outputs: Any = None) -> None:
        now = now_ms()
        with self.db.write() as conn:
            conn.execute(update(t.pipeline_runs).where(t.pipeline_runs.c.run_id == run_id)
                         .values(status=status, error=error, ended_at=now, heartbeat_at=now,
                                 outputs=None if outputs is None else json.dumps(outputs)))

    def reap_abandoned(self, stale_before: int, now: int | None = None) -> list[str]:
        """Mark runs whose driver stopped heart-beating as ``abandoned``; returns their ids.

        Their unfinished steps and the tracking runs they opened end too, so nothing
        stays ``running`` forever after a ``kill -9``.
        """
        now = now or now_ms()
        pr, sr, runs = t.pipeline_runs, t.step_runs, t.runs
        with self.db.write() as conn:
            stale = conn.execute(select(pr.c.run_id, pr.c.tracking_run_id).where(and_(
                pr.c.status == "running", pr.c.heartbeat_at < stale_before))).all()
            if not stale:
                return []
            ids = [row.run_id for row in stale]
            message = (f"abandoned: the process running it stopped sending heartbeats "
                       f"(last before {stale_before} ms); marked at {now} ms")
            conn.execute(update(pr).where(pr.c.run_id.in_(ids))
                         .values(status="abandoned", error=message, ended_at=now))
            step_tracking = [row.tracking_run_id for row in conn.execute(
                select(sr.c.tracking_run_id).where(and_(
                    sr.c.pipeline_run_id.in_(ids), sr.c.status == "running",
                    sr.c.tracking_run_id.is_not(None)))).all()]
            conn.execute(update(sr).where(and_(sr.c.pipeline_run_id.in_(ids),
                                               sr.c.status == "running"))
                         .values(status="abandoned", ended_at=now, error=message))
            conn.execute(update(sr).where(and_(sr.c.pipeline_run_id.in_(ids),
                                               sr.c.status == "pending"))
                         .values(status="skipped"))
            tracking = [row.tracking_run_id for row in stale if row.tracking_run_id]
            tracking += step_tracking
            if tracking:
                conn.execute(update(runs).where(and_(runs.c.run_id.in_(tracking),
                                                     runs.c.status == "running"))
                             .values(status="killed", end_time=now, error=message))
        return ids

    # ---------------------------------------------------------------- reads
    def find_cached(self, cache_key: str, *, in_run: str | None = None,
                    node: str | None = None) -> CacheHit | None:
        """The newest finished (or cached) step run with this key, and its outputs
        (one query: a step run and its outputs joined)."""
        sql = _statements(self.db)
        statement = sql.find_cached if in_run is None else sql.find_cached_in_run
        params = {"b_key": cache_key, "b_run": in_run, "b_node": node}
        with sql.connections.transaction(write=False) as cur:
            cur.execute(statement.sql, statement.params(params))
            rows = cur.fetchall()
        if not rows:
            return None
        hit_id, hit_from = rows[0][0], rows[0][1]
        outputs = tuple(_stored_output(_OutputRow(*row[2:])) for row in rows
                        if row[2] is not None)
        return CacheHit(hit_id, hit_from or hit_id, outputs)

    def resolve_run_id(self, run_id: str) -> str:
        """A full pipeline run id from an id or a unique prefix of at least 6 characters."""
        from ratchet.store.id_prefix import resolve_id

        return resolve_id(self.db, t.pipeline_runs.c.run_id, run_id, what="pipeline run",
                          listing="ratchet pipeline list")

    def get_pipeline_run(self, run_id: str) -> PipelineRunRecord:
        run_id = self.resolve_run_id(run_id)
        with self.db.read() as conn:
            row = conn.execute(select(t.pipeline_runs)
                               .where(t.pipeline_runs.c.run_id == run_id)).one()
        return _pipeline_record(row)

    def list_pipeline_runs(self, pipeline: str | None = None, *, status: str | None = None,
                           limit: int = 50) -> list[PipelineRunRecord]:
        pr = t.pipeline_runs
        query = select(pr).order_by(pr.c.started_at.desc(), pr.c.run_id.desc()).limit(limit)
        if pipeline is not None:
            query = query.where(pr.c.pipeline == pipeline)
        if status is not None:
            query = query.where(pr.c.status == status)
        with self.db.read() as conn:
            return [_pipeline_record(row) for row in conn.execute(query)]

    def step_runs(self, run_id: str) -> list[StepRunRecord]:
        sr = t.step_runs
        with self.db.read() as conn:
            rows = conn.execute(select(sr).where(sr.c.pipeline_run_id == run_id)
                                .order_by(sr.c.position)).all()
            return self._step_records(conn, rows)

    def producers(self, *, digest: str | None = None, dataset: tuple[str, int] | None = None,
                  model: tuple[str, int] | None = None) -> list[StepRunRecord]:
        """Step runs whose outputs are this content, dataset version or model version."""
        so, sr = t.step_outputs, t.step_runs
        query = select(sr).join(so, so.c.step_run_id == sr.c.step_run_id)
        if digest is not None:
            query = query.where(so.c.digest == digest)
        if dataset is not None:
            query = query.where(and_(so.c.dataset_name == dataset[0],
                                     so.c.dataset_version == dataset[1]))
        if model is not None:
            query = query.where(and_(so.c.model_name == model[0],
                                     so.c.model_version == model[1]))
        with self.db.read() as conn:
            rows = conn.execute(query.distinct().order_by(sr.c.ended_at)).all()
            return self._step_records(conn, rows)

    def _step_records(self, conn: Any, rows: Iterable[Any]) -> list[StepRunRecord]:
        rows = list(rows)
        if not rows:
            return []
        ids = [row.step_run_id for row in rows]
        outputs: dict[str, list[StoredOutput]] = {}
        inputs: dict[str, list[StepInput]] = {}
        for o in conn.execute(select(t.step_outputs).where(t.step_outputs.c.step_run_id.in_(ids))
                              .order_by(t.step_outputs.c.name)):
            outputs.setdefault(o.step_run_id, []).append(_stored_output(o))
        for i in conn.execute(select(t.step_inputs).where(t.step_inputs.c.step_run_id.in_(ids))
                              .order_by(t.step_inputs.c.name)):
            inputs.setdefault(i.step_run_id, []).append(
                StepInput(i.name, i.digest, i.source_node, i.source_output))
        return [
            StepRunRecord(
                step_run_id=row.step_run_id, pipeline_run_id=row.pipeline_run_id,
                node=row.node, step=row.step, position=row.position, status=row.status,
                upstream=tuple(json.loads(row.upstream)), params=json.loads(row.params),
                code_hash=row.code_hash, cache_key=row.cache_key, cached_from=row.cached_from,
                attempts=row.attempts, tracking_run_id=row.tracking_run_id,
                log_digest=row.log_digest, error=row.error, started_at=row.started_at,
                ended_at=row.ended_at, outputs=tuple(outputs.get(row.step_run_id, ())),
                inputs=tuple(inputs.get(row.step_run_id, ())),
            )
            for row in rows
        ]


_OUTPUT_COLUMNS = tuple(c.name for c in t.step_outputs.columns)
# A ``step_outputs`` row from a raw cursor, by column name (as ``_stored_output`` reads).
_OutputRow = namedtuple("_OutputRow", _OUTPUT_COLUMNS)  # type: ignore[misc]


class _Statements:
    """The hot path's statements, compiled once per database."""

    def __init__(self, db: Database) -> None:
        sr, so = t.step_runs, t.step_outputs
        self.connections = raw.RawConnections(db)

        def compiled(statement: Any, keys: Sequence[str] | None = None
                     ) -> raw.CompiledStatement:
            return raw.CompiledStatement(db, statement, keys)

        self.insert_run = compiled(insert(t.runs), [c.name for c in t.runs.columns])
        self.insert_tag = compiled(insert(t.run_tags), ["run_id", "key", "value"])
        self.insert_param = compiled(insert(t.params), ["run_id", "key", "value"])
        self.insert_input = compiled(insert(t.run_inputs), [c.name for c in t.run_inputs.columns])
        self.insert_artifact = compiled(insert(t.run_artifacts),
                                        [c.name for c in t.run_artifacts.columns])
        self.insert_output = compiled(insert(so), list(_OUTPUT_COLUMNS))
        self.insert_step_input = compiled(insert(t.step_inputs),
                                          [c.name for c in t.step_inputs.columns])
        self.start_step = compiled(update(sr).where(sr.c.step_run_id == bindparam("b_id")).values(
            status="running", code_hash=bindparam("b_code"), cache_key=bindparam("b_key"),
            tracking_run_id=bindparam("b_run"), attempts=bindparam("b_attempts"),
            started_at=bindparam("b_started")))
        self.finish_step = compiled(update(sr).where(sr.c.step_run_id == bindparam("b_id")).values(
            status=bindparam("b_status"), log_digest=bindparam("b_log"),
            error=bindparam("b_error"), cached_from=bindparam("b_from"),
            ended_at=bindparam("b_ended"),
            code_hash=func.coalesce(bindparam("b_code", type_=sr.c.code_hash.type),
                                    sr.c.code_hash),
            cache_key=func.coalesce(bindparam("b_key", type_=sr.c.cache_key.type),
                                    sr.c.cache_key),
            started_at=func.coalesce(bindparam("b_started", type_=sr.c.started_at.type),
                                     sr.c.started_at)))
        self.end_run = compiled(update(t.runs).where(t.runs.c.run_id == bindparam("b_id")).values(
            status=bindparam("b_status"), end_time=bindparam("b_ended"),
            error=bindparam("b_error")))
        self.find_cached = compiled(_find_cached_query(in_run=False))
        self.find_cached_in_run = compiled(_find_cached_query(in_run=True))


def _find_cached_query(*, in_run: bool) -> Any:
    sr, so = t.step_runs, t.step_outputs
    # Inline literals: an IN over bound values would expand at execution, which a
    # statement compiled once for a raw cursor cannot do.
    statuses: list[Any] = [literal_column(f"'{status}'") for status in CACHEABLE_STATUSES]
    newest = select(sr.c.step_run_id, sr.c.cached_from).where(and_(
        sr.c.cache_key == bindparam("b_key"), sr.c.status.in_(statuses)))
    if in_run:
        newest = newest.where(and_(sr.c.pipeline_run_id == bindparam("b_run"),
                                   sr.c.node == bindparam("b_node")))
    sub = newest.order_by(sr.c.ended_at.desc()).limit(1).subquery()
    return (select(sub.c.step_run_id, sub.c.cached_from, *so.columns)
            .select_from(sub.outerjoin(so, so.c.step_run_id == sub.c.step_run_id))
            .order_by(so.c.name))


_compiled: dict[int, tuple[Database, _Statements]] = {}


def _statements(db: Database) -> _Statements:
    found = _compiled.get(id(db))
    if found is None or found[0] is not db:
        found = _compiled[id(db)] = (db, _Statements(db))
    return found[1]


def _input_rows(step_run_id: str, inputs: Sequence[StepInput]) -> list[dict[str, Any]]:
    return [{"step_run_id": step_run_id, "name": i.name, "digest": i.digest,
             "source_node": i.source_node, "source_output": i.source_output} for i in inputs]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _output_row(step_run_id: str, o: StoredOutput) -> dict[str, Any]:
    return {
        "step_run_id": step_run_id, "name": o.name, "digest": o.digest,
        "materializer": o.materializer, "files": json.dumps([list(f) for f in o.files]),
        "inline": o.inline, "size": o.size,
        "dataset_name": o.dataset[0] if o.dataset else None,
        "dataset_version": o.dataset[1] if o.dataset else None,
        "model_name": o.model[0] if o.model else None,
        "model_version": o.model[1] if o.model else None,
    }


def _stored_output(row: Any) -> StoredOutput:
    return StoredOutput(
        name=row.name, digest=row.digest, materializer=row.materializer,
        files=tuple((f[0], f[1], int(f[2])) for f in json.loads(row.files)), size=row.size,
        inline=bytes(row.inline) if row.inline is not None else None,
        dataset=(row.dataset_name, row.dataset_version) if row.dataset_name else None,
        model=(row.model_name, row.model_version) if row.model_name else None,
    )


def _pipeline_record(row: Any) -> PipelineRunRecord:
    return PipelineRunRecord(
        run_id=row.run_id, pipeline=row.pipeline, ref=row.ref, params=json.loads(row.params),
        status=row.status, executor=row.executor, tracking_run_id=row.tracking_run_id,
        resumed_from=row.resumed_from, schedule_id=row.schedule_id,
        outputs=json.loads(row.outputs) if row.outputs else None, error=row.error,
        host=row.host, pid=row.pid, started_at=row.started_at, ended_at=row.ended_at,
        heartbeat_at=row.heartbeat_at,
    )
