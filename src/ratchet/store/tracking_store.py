"""SQL implementation of experiments, runs, params, metrics, tags, artifact index, inputs.

The hot paths (``log_metric``, ``log_batch``) are one short write transaction each: the
metric row plus an upsert of the run's latest value for that key, committed before the
call returns.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    String,
    and_,
    bindparam,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ratchet.clock import now_ms
from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.ids import new_id
from ratchet.names import check_key, experiment_name, lookup_name
from ratchet.store import raw_sql
from ratchet.store import schema as t
from ratchet.store.database import Database
from ratchet.store.metric_window import MetricWindow, check_window, read_window
from ratchet.store.metric_writer import MetricWriter
from ratchet.store.records import (
    RUN_STATUSES,
    ArtifactEntry,
    CodeVersion,
    DatasetInput,
    Experiment,
    Metric,
    Run,
)

MAX_PARAM_LENGTH = 6000
MAX_RESULTS_LIMIT = 50_000
MAX_RUN_NAME_LENGTH = 250

MetricPoint = tuple[str, float, int, int]  # key, value, step, timestamp


def validate_key(kind: str, key: object) -> str:
    return check_key(kind, key)  # the one rule for names lives in ratchet.names


def metric_value(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:  # numpy scalars, Decimal and friends
            import numbers

            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                return float(value)
        except (TypeError, ValueError):
            pass
        raise InvalidInput(f"metric {key!r}: value must be a number, got {value!r}")
    return float(value)


class TrackingStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        lm = t.latest_metrics
        upsert = db.upsert(lm)
        newer = or_(
            upsert.excluded.step > lm.c.step,
            and_(upsert.excluded.step == lm.c.step, upsert.excluded.timestamp >= lm.c.timestamp),
        )
        # Latest = highest step, then newest timestamp (ties: last write wins).
        self._latest_upsert = upsert.on_conflict_do_update(
            index_elements=[lm.c.run_id, lm.c.key],
            set_={
                "value": upsert.excluded.value,
                "is_nan": upsert.excluded.is_nan,
                "step": upsert.excluded.step,
                "timestamp": upsert.excluded.timestamp,
            },
            where=newer,
        )
        m = t.metrics
        logged_points = select(m.c.key, m.c.step, m.c.timestamp, m.c.value, m.c.is_nan).where(
            m.c.run_id == bindparam("run_id"), m.c.key == bindparam("key"),
            m.c.step >= bindparam("lo"), m.c.step <= bindparam("hi"))
        self._metric_writer = MetricWriter(db, insert(t.metrics), self._latest_upsert,
                                           logged_points)
        # run_owner is asked on every write through MLflow's API: compiled once, read on
        # the per-thread raw connection (the engine's per-call work costs more than it).
        self._raw = raw_sql.RawConnections(db)
        self._owner = raw_sql.CompiledStatement(db, select(
            t.experiments.c.name, t.runs.c.deleted_at).join(
            t.runs, t.runs.c.experiment_id == t.experiments.c.experiment_id)
            .where(t.runs.c.run_id == bindparam("run_id")))

    # ---------------------------------------------------------------- experiments
    def create_experiment(
        self, name: str, description: str | None = None, tags: Mapping[str, str] | None = None,
        *, experiment_id: str | None = None,
    ) -> Experiment:
        """A new experiment; ``experiment_id`` chooses its id (MLflow's ``Default`` is "0",
        an import keeps its source's ids), else a new sortable one."""
        name = experiment_name(name)
        exp_id, created = given_id("experiment", experiment_id) or new_id(), now_ms()
        try:
            with self.db.write() as conn:
                conn.execute(
                    insert(t.experiments).values(
                        experiment_id=exp_id, name=name, description=description,
                        lifecycle="active", created_at=created,
                    )
                )
                if tags:
                    conn.execute(
                        insert(t.experiment_tags),
                        [{"experiment_id": exp_id, "key": validate_key("tag", k), "value": str(v)}
                         for k, v in tags.items()],
                    )
        except SAIntegrityError:
            found = self.find_experiment(name)
            if found is not None and found.deleted_at is not None:
                raise AlreadyExists(_deleted_experiment(found) + "; the name is free again "
                                    "once it is purged") from None
            raise AlreadyExists(f"experiment {name!r} already exists") from None
        return self.get_experiment(exp_id)

    def get_or_create_experiment(self, name: str) -> Experiment:
        name = experiment_name(name)
        found = self.find_experiment(name)
        if found is None:
            try:
                return self.create_experiment(name)
            except AlreadyExists:  # another process created it first (or deleted it)
                found = self.find_experiment(name)
                assert found is not None
        if found.deleted_at is not None:
            raise Conflict(_deleted_experiment(found) + "; or use another experiment name")
        return found

    def find_experiment(self, name_or_id: str) -> Experiment | None:
        name_or_id = lookup_name(name_or_id)  # type: ignore[assignment]
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.experiments).where(
                    or_(t.experiments.c.name == name_or_id,
                        t.experiments.c.experiment_id == name_or_id)
                )
            ).all()
            # An id wins over a name: an experiment named "5" never shadows the one whose
            # id is "5" (MLflow's ids are small numbers; an import keeps them).
            row = next((r for r in rows if r.experiment_id == name_or_id),
                       rows[0] if rows else None)
            if row is None:
                return None
            tags = dict(conn.execute(
                select(t.experiment_tags.c.key, t.experiment_tags.c.value)
                .where(t.experiment_tags.c.experiment_id == row.experiment_id)
            ).all())
        return Experiment(row.experiment_id, row.name, row.description, row.lifecycle,
                          row.created_at, tags, row.deleted_at)

    def get_experiment(self, name_or_id: str, *, include_deleted: bool = False) -> Experiment:
        found = self.find_experiment(name_or_id)
        if found is None:
            raise NotFound(f"no experiment named or with id {name_or_id!r}")
        if found.deleted_at is not None and not include_deleted:
            raise NotFound(_deleted_experiment(found))
        return found

    def rename_experiment(self, experiment_id: str, new_name: str) -> Experiment:
        """Give the experiment ``experiment_id`` (an id, not a name) a new name; its runs
        and grants by the old name are not moved (grants name experiments)."""
        new_name = experiment_name(new_name)
        e = t.experiments
        try:
            with self.db.write() as conn:
                result = conn.execute(update(e).where(e.c.experiment_id == experiment_id)
                                      .values(name=new_name))
        except SAIntegrityError:
            raise AlreadyExists(f"experiment {new_name!r} already exists") from None
        if result.rowcount == 0:
            raise NotFound(f"no experiment with id {experiment_id!r}")
        return self.get_experiment(experiment_id, include_deleted=True)

    def set_experiment_tags(self, experiment_id: str, values: Mapping[str, str]) -> None:
        """Set (insert or replace) tags of the experiment ``experiment_id``."""
        rows = [{"experiment_id": experiment_id, "key": validate_key("tag", k),
                 "value": str(v)} for k, v in values.items()]
        if not rows:
            return
        upsert = self.db.upsert(t.experiment_tags)
        upsert = upsert.on_conflict_do_update(
            index_elements=[t.experiment_tags.c.experiment_id, t.experiment_tags.c.key],
            set_={"value": upsert.excluded.value})
        try:
            with self.db.write() as conn:
                conn.execute(upsert, rows)
        except SAIntegrityError:
            raise NotFound(f"no experiment with id {experiment_id!r}") from None

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        et = t.experiment_tags
        with self.db.write() as conn:
            result = conn.execute(et.delete().where(et.c.experiment_id == experiment_id,
                                                    et.c.key == key))
        if result.rowcount == 0:
            if self.find_experiment(experiment_id) is None:
                raise NotFound(f"no experiment with id {experiment_id!r}")
            raise NotFound(f"experiment {experiment_id} has no tag {key!r}")

    def list_experiments(self, *, include_deleted: bool = False) -> list[Experiment]:
        query = select(t.experiments).order_by(t.experiments.c.created_at)
        if not include_deleted:
            query = query.where(t.experiments.c.deleted_at.is_(None))
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            tag_rows = conn.execute(select(t.experiment_tags)).all()
        tags: dict[str, dict[str, str]] = {}
        for r in tag_rows:
            tags.setdefault(r.experiment_id, {})[r.key] = r.value
        return [Experiment(r.experiment_id, r.name, r.description, r.lifecycle, r.created_at,
                           tags.get(r.experiment_id, {}), r.deleted_at) for r in rows]

    def run_counts(self) -> dict[str, int]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.runs.c.experiment_id, func.count()).where(t.runs.c.deleted_at.is_(None))
                .group_by(t.runs.c.experiment_id)
            ).all()
        return dict(rows)

    # ---------------------------------------------------------------- runs
    def create_run(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        parent_run_id: str | None = None,
        code: CodeVersion | None = None,
        tags: Mapping[str, str] | None = None,
        start_time: int | None = None,
        run_id: str | None = None,
    ) -> Run:
        """A new running run; ``run_id`` chooses its id (an import keeps MLflow's run ids),
        else a new sortable one."""
        values, tag_rows = new_run_rows(experiment_id, name=name, parent_run_id=parent_run_id,
                                        code=code, tags=tags, start_time=start_time,
                                        run_id=given_id("run", run_id))
        try:
            with self.db.write() as conn:
                conn.execute(insert(t.runs).values(**values))
                if tag_rows:
                    conn.execute(insert(t.run_tags), tag_rows)
        except SAIntegrityError:
            if run_id and self._run_exists(values["run_id"]):
                raise AlreadyExists(f"a run with id {run_id!r} already exists") from None
            if parent_run_id and not self._run_exists(parent_run_id):
                raise NotFound(f"parent run {parent_run_id!r} does not exist") from None
            raise NotFound(f"experiment {experiment_id!r} does not exist") from None
        return run_from_rows(values, code or CodeVersion(), tag_rows)

    def require_run(self, run_id: str) -> None:
        """``NotFound`` unless the run exists (one indexed lookup, no run data loaded)."""
        if not self._run_exists(run_id):
            raise NotFound(f"no run with id {run_id!r}")

    def experiment_name_of_run(self, run_id: str) -> str:
        """The name of the experiment ``run_id`` belongs to (one indexed join): what the
        team server checks a caller's per-experiment permission against."""
        with self.db.read() as conn:
            name = conn.execute(
                select(t.experiments.c.name).join(
                    t.runs, t.runs.c.experiment_id == t.experiments.c.experiment_id)
                .where(t.runs.c.run_id == run_id)
            ).scalar()
        if name is None:
            raise NotFound(f"no run with id {run_id!r}")
        return str(name)

    def run_owner(self, run_id: str) -> tuple[str, int | None]:
        """``(experiment name, deleted_at)`` of ``run_id`` in one indexed join: what the
        MLflow API checks before a write (permission, and a deleted run takes none)."""
        with self._raw.transaction(write=False) as cur:
            cur.execute(self._owner.sql, self._owner.params({"run_id": run_id}))
            row = cur.fetchone()
        if row is None:
            raise NotFound(f"no run with id {run_id!r}")
        return str(row[0]), row[1]

    def _run_exists(self, run_id: str) -> bool:
        with self.db.read() as conn:
            return conn.execute(
                select(t.runs.c.run_id).where(t.runs.c.run_id == run_id)
            ).first() is not None

    def set_run_status(
        self, run_id: str, status: str, *, error: str | None = None, end_time: int | None = None
    ) -> None:
        if status not in RUN_STATUSES:
            raise InvalidInput(f"run status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
        ended = None if status == "running" else (end_time or now_ms())
        with self.db.write() as conn:
            result = conn.execute(
                update(t.runs).where(t.runs.c.run_id == run_id)
                .values(status=status, end_time=ended, error=error)
            )
        if result.rowcount == 0:
            raise NotFound(f"no run with id {run_id!r}")

    def set_run_name(self, run_id: str, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"run name must be a non-empty string, got {name!r}")
        if len(name) > MAX_RUN_NAME_LENGTH:
            raise InvalidInput(f"run name {name[:40]!r}... is longer than "
                               f"{MAX_RUN_NAME_LENGTH} characters")
        with self.db.write() as conn:
            result = conn.execute(update(t.runs).where(t.runs.c.run_id == run_id)
                                  .values(name=name))
        if result.rowcount == 0:
            raise NotFound(f"no run with id {run_id!r}")

    def resolve_run_id(self, run_id: str) -> str:
        """A full run id from an id or a unique prefix of at least 6 characters (as
        pipeline run ids are resolved), for commands where people type ids."""
        from ratchet.store.id_prefix import resolve_id

        return resolve_id(self.db, t.runs.c.run_id, run_id, what="run", listing="ratchet runs list")

    def get_run(self, run_id: str, *, include_deleted: bool = False) -> Run:
        runs = self._load_runs([run_id])
        if not runs:
            raise NotFound(f"no run with id {run_id!r}")
        if runs[0].deleted_at is not None and not include_deleted:
            from ratchet.store.deletion import deleted_note

            raise NotFound(deleted_note(f"run {run_id}", runs[0].deleted_at,
                                        f"ratchet runs restore {run_id}"))
        return runs[0]

    def _load_runs(self, run_ids: Sequence[str], run_rows: Mapping[str, Any] | None = None
                   ) -> list[Run]:
        """Runs in the given order, with params, latest metrics, tags and inputs.

        ``run_rows`` are the runs' own rows when the caller already has them (search).
        Params, metrics and tags come back in one UNION ALL. The ids are bound as one
        parameter (a JSON array on SQLite, an array on PostgreSQL): expanding thousands of
        bound values costs more than the lookups, and SQLite caps their number.
        """
        if not run_ids:
            return []
        rows: dict[str, Any] = dict(run_rows or {})
        params: dict[str, dict[str, str]] = {rid: {} for rid in run_ids}
        metrics: dict[str, dict[str, float]] = {rid: {} for rid in run_ids}
        tags: dict[str, dict[str, str]] = {rid: {} for rid in run_ids}
        inputs: dict[str, list[DatasetInput]] = {}
        p, m, g = t.params, t.latest_metrics, t.run_tags
        ids = {"ids": json.dumps(list(run_ids)) if self.db.dialect == "sqlite" else list(run_ids)}
        with self.db.read() as conn:
            if run_rows is None:
                rows.update((r.run_id, r) for r in conn.execute(
                    select(t.runs).where(self._in_ids(t.runs.c.run_id)), ids))
            data = union_all(
                select(p.c.run_id, literal(0), p.c.key, p.c.value, null(), false())
                .where(self._in_ids(p.c.run_id)),
                select(m.c.run_id, literal(1), m.c.key, null(), m.c.value, m.c.is_nan)
                .where(self._in_ids(m.c.run_id)),
                select(g.c.run_id, literal(2), g.c.key, g.c.value, null(), false())
                .where(self._in_ids(g.c.run_id)),
            )
            for rid, kind, key, text_value, number, is_nan in conn.execute(data, ids):
                if kind == 0:
                    params[rid][key] = text_value
                elif kind == 1:
                    metrics[rid][key] = math.nan if is_nan else number
                else:
                    tags[rid][key] = text_value
            for r in conn.execute(
                select(t.run_inputs).where(self._in_ids(t.run_inputs.c.run_id))
                .order_by(t.run_inputs.c.created_at), ids
            ):
                inputs.setdefault(r.run_id, []).append(
                    DatasetInput(r.name, r.digest, r.version, r.role, r.source))
        out = []
        for rid in run_ids:
            if rid not in rows:
                continue
            r = rows[rid]
            code = CodeVersion(
                git_commit=r.git_commit, git_branch=r.git_branch, git_dirty=r.git_dirty,
                git_diff_hash=r.git_diff_hash, entry_point=r.entry_point,
                python_version=r.python_version, host=r.host, user=r.user,
                packages=json.loads(r.packages) if r.packages else {},
            )
            out.append(Run(
                run_id=r.run_id, experiment_id=r.experiment_id, parent_run_id=r.parent_run_id,
                name=r.name, status=r.status, start_time=r.start_time, end_time=r.end_time,
                error=r.error, code=code, params=params[rid], metrics=metrics[rid],
                tags=tags[rid], inputs=tuple(inputs.get(rid, ())), deleted_at=r.deleted_at,
            ))
        return out

    def _in_ids(self, column: Any) -> Any:
        """``column`` is one of the ids bound as the single parameter ``ids``."""
        if self.db.dialect == "sqlite":
            return column.in_(select(text("value")).select_from(func.json_each(bindparam("ids"))))
        return column == func.any(bindparam("ids", type_=ARRAY(String)))

    def child_runs(self, run_id: str) -> list[str]:
        with self.db.read() as conn:
            return list(conn.execute(
                select(t.runs.c.run_id).where(t.runs.c.parent_run_id == run_id,
                                              t.runs.c.deleted_at.is_(None))
                .order_by(t.runs.c.start_time)
            ).scalars())

    # ---------------------------------------------------------------- params / tags
    def log_params(self, run_id: str, values: Mapping[str, object]) -> None:
        rows = []
        for key, value in values.items():
            text = str(value)
            if len(text) > MAX_PARAM_LENGTH:
                raise InvalidInput(f"param {key!r}: value is longer than {MAX_PARAM_LENGTH} chars")
            rows.append({"run_id": run_id, "key": validate_key("param", key), "value": text})
        if not rows:
            return
        with self._writing(run_id) as conn:
            conn.execute(self.db.upsert(t.params).on_conflict_do_nothing(), rows)
            # Checked after the insert so that a concurrent writer cannot slip between.
            stored = dict(conn.execute(
                select(t.params.c.key, t.params.c.value).where(
                    t.params.c.run_id == run_id, t.params.c.key.in_([r["key"] for r in rows]))
            ).all())
            for r in rows:
                if stored[r["key"]] != r["value"]:
                    raise Conflict(
                        f"param {r['key']!r} of run {run_id} is already {stored[r['key']]!r}; "
                        f"cannot change it to {r['value']!r} (params are immutable: start a "
                        "new run or use a metric/tag for values that change)"
                    )

    def set_tags(self, run_id: str, values: Mapping[str, object]) -> None:
        rows = _tag_rows(run_id, values)
        if not rows:
            return
        upsert = self.db.upsert(t.run_tags)
        upsert = upsert.on_conflict_do_update(
            index_elements=[t.run_tags.c.run_id, t.run_tags.c.key],
            set_={"value": upsert.excluded.value},
        )
        with self._writing(run_id) as conn:
            conn.execute(upsert, rows)

    def delete_tag(self, run_id: str, key: str) -> None:
        with self.db.write() as conn:
            result = conn.execute(
                t.run_tags.delete().where(t.run_tags.c.run_id == run_id, t.run_tags.c.key == key))
        if result.rowcount == 0:
            raise NotFound(f"run {run_id} has no tag {key!r}")

    # ---------------------------------------------------------------- metrics
    def log_metric(
        self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None
    ) -> None:
        self.log_batch(run_id, [(key, value, step, timestamp or now_ms())])

    def log_batch(self, run_id: str, points: Iterable[MetricPoint], *,
                  skip_logged: bool = False) -> int:
        """Append metric points and update the latest values; all or nothing.

        ``skip_logged``: leave out points already stored with the same key, step,
        timestamp and value (and repeats inside the batch), so that a client retrying a
        batch whose answer it lost stores each point once (MLflow's store has that
        uniqueness as its key). Read in the write's transaction, one indexed read per key
        over the batch's step range. Returns the number of points written."""
        rows = []
        latest: dict[str, dict[str, Any]] = {}
        checked: set[str] = set()  # a batch repeats a few keys many times: check each once
        for key, raw_value, step, ts in points:
            if key not in checked:
                validate_key("metric", key)
                checked.add(key)
            value = metric_value(key, raw_value)
            is_nan = math.isnan(value)
            if isinstance(step, bool) or not isinstance(step, int):
                try:
                    step = int(step)  # numpy ints
                except (TypeError, ValueError):
                    raise InvalidInput(f"metric {key!r}: step must be an integer, got {step!r}") \
                        from None
            row = {"run_id": run_id, "key": key, "value": None if is_nan else value,
                   "is_nan": is_nan, "step": step, "timestamp": int(ts)}
            rows.append(row)
            prev = latest.get(key)
            if prev is None or (step, row["timestamp"]) >= (prev["step"], prev["timestamp"]):
                latest[key] = row
        if not rows:
            return 0
        return self._metric_writer.write(run_id, rows, list(latest.values()),
                                         skip_logged=skip_logged)

    def latest_metric_points(self, run_ids: Sequence[str]) -> dict[str, list[Metric]]:
        """The latest point (value, step, timestamp) of every metric of each run, by run
        id, keys in order; one indexed read."""
        if not run_ids:
            return {}
        lm = t.latest_metrics
        found: dict[str, list[Metric]] = {rid: [] for rid in run_ids}
        ids = {"ids": json.dumps(list(run_ids)) if self.db.dialect == "sqlite"
               else list(run_ids)}
        with self.db.read() as conn:
            for r in conn.execute(
                select(lm.c.run_id, lm.c.key, lm.c.value, lm.c.is_nan, lm.c.step,
                       lm.c.timestamp).where(self._in_ids(lm.c.run_id))
                .order_by(lm.c.run_id, lm.c.key), ids):
                found[r.run_id].append(Metric(r.key, math.nan if r.is_nan else r.value,
                                              r.step, r.timestamp))
        return found

    def metric_history(self, run_id: str, key: str, *, offset: int = 0,
                       limit: int | None = None) -> list[Metric]:
        """The points of ``key`` in (step, timestamp, arrival) order; ``offset`` and
        ``limit`` read one page of them (MLflow's paged get-history)."""
        if offset < 0 or (limit is not None and limit < 1):
            raise InvalidInput(f"metric history: offset must be >= 0 and limit >= 1, got "
                               f"{offset} and {limit}")
        m = t.metrics
        query = (select(m.c.key, m.c.value, m.c.is_nan, m.c.step, m.c.timestamp)
                 .where(m.c.run_id == run_id, m.c.key == key)
                 .order_by(m.c.step, m.c.timestamp, m.c.id).offset(offset or None)
                 .limit(limit))
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        if not rows and not self._run_exists(run_id):
            raise NotFound(f"no run with id {run_id!r}")
        return [Metric(r.key, math.nan if r.is_nan else r.value, r.step, r.timestamp)
                for r in rows]

    def metric_window(self, run_id: str, key: str, *, points: int,
                      start_step: int | None = None, end_step: int | None = None
                      ) -> MetricWindow:
        """At most ``points`` buckets of ``key``'s history between the steps ``start_step``
        and ``end_step`` (inclusive; default: all), each with min, max, mean, first and
        last, computed in the database (``ratchet.store.metric_window``); the raw points
        when the window holds no more than ``points`` rows."""
        check_window(points, start_step, end_step)
        with self.db.read() as conn:
            found = read_window(conn, self.db.dialect, run_id, key, points, start_step,
                                end_step)
        if found is None:
            self.require_run(run_id)
            return MetricWindow(run_id, key, None, None, None, None, 0, False, 1, ())
        return found

    # ---------------------------------------------------------------- artifacts / inputs
    def record_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None:
        """Index artifact blobs under names; a name is immutable once it holds content."""
        if not entries:
            return
        created = now_ms()
        rows = [{"run_id": run_id, "path": e.path, "digest": e.digest, "size": e.size,
                 "created_at": created} for e in entries]
        with self._writing(run_id) as conn:
            conn.execute(self.db.upsert(t.run_artifacts).on_conflict_do_nothing(), rows)
            stored = dict(conn.execute(
                select(t.run_artifacts.c.path, t.run_artifacts.c.digest).where(
                    t.run_artifacts.c.run_id == run_id,
                    t.run_artifacts.c.path.in_([e.path for e in entries]))
            ).all())
            for e in entries:
                if stored[e.path] != e.digest:
                    raise Conflict(
                        f"artifact {e.path!r} of run {run_id} already holds different content; "
                        "artifacts are immutable: log under a new path"
                    )

    def forget_artifacts(self, run_id: str, prefix: str) -> int:
        """Remove the index entries of the run's artifact ``prefix`` (a file, or a
        directory and everything under it; "" for all); returns how many. The blobs stay
        until ``ratchet gc`` finds them unreferenced."""
        a = t.run_artifacts
        query = a.delete().where(a.c.run_id == run_id)
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(or_(a.c.path == prefix,
                                    a.c.path.like(f"{escaped}/%", escape="\\")))
        self.require_run(run_id)
        with self.db.write() as conn:
            return int(conn.execute(query).rowcount)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        a = t.run_artifacts
        query = select(a.c.path, a.c.digest, a.c.size).where(a.c.run_id == run_id)
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(or_(a.c.path == prefix,
                                    a.c.path.like(f"{escaped}/%", escape="\\")))
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(a.c.path)).all()
        if not rows and not self._run_exists(run_id):
            raise NotFound(f"no run with id {run_id!r}")
        return [ArtifactEntry(r.path, r.digest, r.size) for r in rows]

    def log_input(self, run_id: str, dataset: DatasetInput) -> None:
        validate_key("input role", dataset.role)
        row = {"run_id": run_id, "name": dataset.name, "digest": dataset.digest,
               "version": dataset.version, "role": dataset.role, "source": dataset.source,
               "created_at": now_ms()}
        with self._writing(run_id) as conn:
            conn.execute(self.db.upsert(t.run_inputs).on_conflict_do_nothing(), [row])

    # ---------------------------------------------------------------- search
    def search_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        statuses: Sequence[str] | None = None,
        include_deleted: bool = False,
    ) -> tuple[list[Run], str | None]:
        from ratchet.store.run_filter import parse_filter, parse_order_by
        from ratchet.store.run_query import search_rows

        if not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS_LIMIT:
            raise InvalidInput(f"max_results must be between 1 and {MAX_RESULTS_LIMIT}, "
                               f"got {max_results!r}")
        node = parse_filter(filter)
        order = parse_order_by(order_by)
        fingerprint = json.dumps([sorted(experiment_ids or []), filter or "", list(order_by or []),
                                  sorted(statuses or []), include_deleted])
        offset = _decode_page_token(page_token, fingerprint)
        with self.db.read() as conn:
            # The search selects the runs' own columns too: one query fewer per page.
            found = search_rows(conn, experiment_ids=experiment_ids, filter_node=node,
                                order=order, statuses=statuses, include_deleted=include_deleted,
                                columns=[c for c in t.runs.c if c.name != "run_id"],
                                offset=offset, count=max_results + 1)
        next_token = None
        if len(found) > max_results:
            found = found[:max_results]
            next_token = _encode_page_token(offset + max_results, fingerprint)
        return self._load_runs([r.run_id for r in found], {r.run_id: r for r in found}), \
            next_token

    # ---------------------------------------------------------------- helpers
    def _writing(self, run_id: str) -> Any:
        return _RunWrite(self.db, run_id)


class _RunWrite:
    """A write transaction that turns a missing run (foreign key failure) into NotFound."""

    def __init__(self, db: Database, run_id: str) -> None:
        self._cm = db.write()
        self._run_id = run_id

    def __enter__(self) -> Any:
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> bool:
        try:
            suppressed = bool(self._cm.__exit__(*exc))
        except SAIntegrityError:
            suppressed = False
            exc = (SAIntegrityError,)
        if not suppressed and exc[0] is not None and issubclass(exc[0], SAIntegrityError):
            raise NotFound(f"no run with id {self._run_id!r}") from None
        return suppressed


_GIVEN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")  # ids are VARCHAR(32)


def given_id(kind: str, value: str | None) -> str | None:
    """A caller-chosen id, checked: 1-32 characters of [A-Za-z0-9_-], not starting with
    ``-`` or ``_`` (ids appear in paths and URIs)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _GIVEN_ID.fullmatch(value):
        raise InvalidInput(f"{kind} id {value!r}: use 1-32 letters, digits, '_' or '-', "
                           "starting with a letter or digit")
    return value


def _deleted_experiment(found: Experiment) -> str:
    from ratchet.store.deletion import deleted_note

    assert found.deleted_at is not None
    return deleted_note(f"experiment {found.name!r}", found.deleted_at,
                        f"ratchet experiments restore {found.name}")


def new_run_rows(
    experiment_id: str, *, name: str | None = None, parent_run_id: str | None = None,
    code: CodeVersion | None = None, tags: Mapping[str, str] | None = None,
    start_time: int | None = None, run_id: str | None = None,
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The ``runs`` row and ``run_tags`` rows of a new running run (for callers that write
    it inside a larger transaction, like the pipeline driver)."""
    run_id, code = run_id or new_id(), code or CodeVersion()
    values = {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "parent_run_id": parent_run_id,
        "name": name or f"run-{run_id[-8:]}",
        "status": "running",
        "start_time": start_time or now_ms(),
        "end_time": None,
        "error": None,
        "user": code.user,
        "host": code.host,
        "entry_point": code.entry_point,
        "git_commit": code.git_commit,
        "git_branch": code.git_branch,
        "git_dirty": code.git_dirty,
        "git_diff_hash": code.git_diff_hash,
        "python_version": code.python_version,
        "packages": json.dumps(code.packages, sort_keys=True) if code.packages else None,
        "deleted_at": None,
    }
    return values, _tag_rows(run_id, tags) if tags else []


def run_from_rows(values: Mapping[str, Any], code: CodeVersion,
                  tag_rows: Sequence[Mapping[str, str]]) -> Run:
    return Run(
        run_id=values["run_id"], experiment_id=values["experiment_id"],
        parent_run_id=values["parent_run_id"], name=values["name"], status=values["status"],
        start_time=values["start_time"], end_time=None, error=None, code=code,
        tags={row["key"]: row["value"] for row in tag_rows},
    )


def _tag_rows(run_id: str, values: Mapping[str, object]) -> list[dict[str, str]]:
    return [{"run_id": run_id, "key": validate_key("tag", k), "value": str(v)}
            for k, v in values.items()]


def _encode_page_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"offset": offset, "query": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_page_token(token: str | None, fingerprint: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = int(data["offset"])
        same_query = data["query"] == fingerprint
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"page_token {token[:20]!r} is not a token search_runs issued") \
            from None
    if not same_query or offset < 0:
        raise InvalidInput("page_token belongs to a different search; pass the same "
                           "experiments, filter and order_by as the call that returned it")
    return offset


