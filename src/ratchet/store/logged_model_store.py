"""SQL implementation of MLflow 3's logged models: a model's record, params, tags, metrics,
and the runs that output it.

A logged model's files are run artifacts: ``models/<model_id>/...`` of its *holder run*,
which is its source run when that run is in the model's experiment, else a run made for
the model in the same transaction (named after it, tagged ``ratchet.logged_model``). So
the registry can point a model version at a run and a path like any other, ``ratchet gc``
keeps the files as long as the run, and purging the run removes the model (cascade).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ratchet.clock import now_ms
from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.ids import new_id
from ratchet.names import check_name
from ratchet.store import schema as t
from ratchet.store.database import Database
from ratchet.store.tracking_store import MAX_PARAM_LENGTH, new_run_rows, validate_key

LOGGED_MODEL_STATUSES = ("pending", "ready", "failed")
MODELS_DIR = "models"  # a model's files among its holder run's artifacts: models/<id>/...
HOLDER_TAG = "ratchet.logged_model"  # on a run made to hold a model's files: the model id
_HOLDER_RUN_STATUS = {"pending": "running", "ready": "finished", "failed": "failed"}


@dataclass(frozen=True)
class LoggedModelMetric:
    key: str
    value: float
    step: int
    timestamp: int
    run_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


@dataclass(frozen=True)
class LoggedModel:
    """A logged model. Its files are artifacts ``artifact_path/...`` of ``artifact_run_id``."""

    model_id: str
    experiment_id: str
    name: str
    artifact_run_id: str
    artifact_path: str
    source_run_id: str | None
    status: str  # pending | ready | failed
    status_message: str | None
    model_type: str | None
    created_at: int
    updated_at: int
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: tuple[LoggedModelMetric, ...] = ()
    deleted_at: int | None = None


def new_model_id() -> str:
    """``m-`` and a sortable 32-hex id, as MLflow's ids look (``m-<32 hex>``)."""
    return f"m-{new_id()}"


def model_files_path(model_id: str) -> str:
    return f"{MODELS_DIR}/{model_id}"


def check_model_id(model_id: object) -> str:
    if not (isinstance(model_id, str) and model_id.startswith("m-") and 3 <= len(model_id) <= 64
            and model_id[2:].replace("-", "").replace("_", "").isalnum()
            and model_id.isascii()):
        raise InvalidInput(f"logged model id {model_id!r} is not an id like m-<32 hex>")
    return model_id


class LoggedModelStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---------------------------------------------------------------- create / read
    def create(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        source_run_id: str | None = None,
        model_type: str | None = None,
        params: Mapping[str, object] | None = None,
        tags: Mapping[str, object] | None = None,
        model_id: str | None = None,
    ) -> LoggedModel:
        """A new pending model in ``experiment_id``, with its holder run."""
        model_id = check_model_id(model_id) if model_id is not None else new_model_id()
        name = check_name("logged model", name) if name is not None else f"model-{model_id[-8:]}"
        if model_type is not None and len(model_type) > 256:
            raise InvalidInput(f"logged model type {model_type[:40]!r}... is longer than 256 "
                               "characters")
        param_rows = _param_rows(model_id, params or {})
        tag_rows = _tag_rows(model_id, tags or {})
        created = now_ms()
        try:
            with self.db.write() as conn:
                holder = None
                if source_run_id is not None:
                    source_experiment = conn.execute(
                        select(t.runs.c.experiment_id).where(t.runs.c.run_id == source_run_id)
                    ).scalar()
                    if source_experiment is None:
                        raise NotFound(f"no run with id {source_run_id!r} (the logged model's "
                                       "source run)")
                    if source_experiment == experiment_id:
                        holder = source_run_id
                if holder is None:
                    run_row, run_tags = new_run_rows(experiment_id, name=name,
                                                     tags={HOLDER_TAG: model_id})
                    conn.execute(insert(t.runs).values(**run_row))
                    conn.execute(insert(t.run_tags), run_tags)
                    holder = run_row["run_id"]
                conn.execute(insert(t.logged_models).values(
                    model_id=model_id, experiment_id=experiment_id, name=name,
                    artifact_run_id=holder, artifact_path=model_files_path(model_id),
                    source_run_id=source_run_id, status="pending", status_message=None,
                    model_type=model_type, created_at=created, updated_at=created,
                    deleted_at=None))
                if param_rows:
                    conn.execute(insert(t.logged_model_params), param_rows)
                if tag_rows:
                    conn.execute(insert(t.logged_model_tags), tag_rows)
        except SAIntegrityError:
            if self._exists(model_id):
                raise AlreadyExists(f"a logged model with id {model_id!r} already exists") \
                    from None
            raise NotFound(f"experiment {experiment_id!r} does not exist") from None
        return self.get(model_id)

    def get(self, model_id: str, *, include_deleted: bool = False) -> LoggedModel:
        """The model; ``NotFound`` if there is none (or it is deleted, unless asked)."""
        found = self._load(select(t.logged_models).where(t.logged_models.c.model_id == model_id))
        if not found or (found[0].deleted_at is not None and not include_deleted):
            raise NotFound(f"no logged model with id {model_id!r}")
        return found[0]

    def list_models(self, experiment_ids: Sequence[str], *, include_deleted: bool = False
                    ) -> list[LoggedModel]:
        """The models of these experiments, newest first (ties: by id)."""
        if not experiment_ids:
            return []
        m = t.logged_models
        query = select(m).where(m.c.experiment_id.in_(list(experiment_ids)))
        if not include_deleted:
            query = query.where(m.c.deleted_at.is_(None))
        return self._load(query.order_by(m.c.created_at.desc(), m.c.model_id.desc()))

    def models_of_run(self, run_id: str, *, include_deleted: bool = False
                      ) -> list[LoggedModel]:
        """The models whose files the run holds (its own, or made for them)."""
        m = t.logged_models
        query = select(m).where(m.c.artifact_run_id == run_id)
        if not include_deleted:
            query = query.where(m.c.deleted_at.is_(None))
        return self._load(query.order_by(m.c.created_at, m.c.model_id))

    # ---------------------------------------------------------------- changes
    def finalize(self, model_id: str, status: str, message: str | None = None) -> LoggedModel:
        """Set the status (``ready`` or ``failed``; ``pending`` again is allowed); a holder
        run made for the model follows it (finished / failed)."""
        if status not in LOGGED_MODEL_STATUSES:
            raise InvalidInput(f"logged model status must be one of "
                               f"{', '.join(LOGGED_MODEL_STATUSES)}, got {status!r}")
        model = self.get(model_id)
        now = now_ms()
        with self.db.write() as conn:
            conn.execute(update(t.logged_models).where(t.logged_models.c.model_id == model_id)
                         .values(status=status, status_message=message, updated_at=now))
            if model.artifact_run_id != model.source_run_id:  # a run made for the model
                conn.execute(update(t.runs).where(t.runs.c.run_id == model.artifact_run_id)
                             .values(status=_HOLDER_RUN_STATUS[status],
                                     end_time=None if status == "pending" else now))
        return self.get(model_id)

    def log_params(self, model_id: str, params: Mapping[str, object]) -> None:
        """Add params; one already set keeps its value (a different one is a ``Conflict``)."""
        rows = _param_rows(model_id, params)
        if not rows:
            return
        self.get(model_id)
        p = t.logged_model_params
        with self.db.write() as conn:
            conn.execute(self.db.upsert(p).on_conflict_do_nothing(), rows)
            stored = dict(conn.execute(select(p.c.key, p.c.value).where(
                p.c.model_id == model_id, p.c.key.in_([r["key"] for r in rows]))).all())
            for r in rows:
                if stored[r["key"]] != r["value"]:
                    raise Conflict(f"param {r['key']!r} of logged model {model_id} is already "
                                   f"{stored[r['key']]!r}; cannot change it to {r['value']!r} "
                                   "(params are immutable)")
            self._touch(conn, model_id)

    def set_tags(self, model_id: str, tags: Mapping[str, object]) -> None:
        rows = _tag_rows(model_id, tags)
        if not rows:
            return
        self.get(model_id)
        upsert = self.db.upsert(t.logged_model_tags)
        upsert = upsert.on_conflict_do_update(
            index_elements=[t.logged_model_tags.c.model_id, t.logged_model_tags.c.key],
            set_={"value": upsert.excluded.value})
        with self.db.write() as conn:
            conn.execute(upsert, rows)
            self._touch(conn, model_id)

    def delete_tag(self, model_id: str, key: str) -> None:
        self.get(model_id)
        tags = t.logged_model_tags
        with self.db.write() as conn:
            gone = conn.execute(tags.delete().where(tags.c.model_id == model_id,
                                                    tags.c.key == key)).rowcount
            if gone:
                self._touch(conn, model_id)
        if not gone:
            raise NotFound(f"logged model {model_id} has no tag {key!r}")

    def log_metrics(self, model_id: str, metrics: Iterable[LoggedModelMetric]) -> None:
        """Record metric points of the model (MLflow's metrics logged with a model id)."""
        rows = [{"model_id": model_id, "key": validate_key("metric", m.key),
                 "value": None if math.isnan(m.value) else m.value,
                 "is_nan": math.isnan(m.value), "step": m.step, "timestamp": m.timestamp,
                 "run_id": m.run_id, "dataset_name": m.dataset_name,
                 "dataset_digest": m.dataset_digest} for m in metrics]
        if not rows:
            return
        try:
            with self.db.write() as conn:
                conn.execute(insert(t.logged_model_metrics), rows)
        except SAIntegrityError:
            raise NotFound(f"no logged model with id {model_id!r} (or no run "
                           f"{rows[0]['run_id']!r})") from None

    def delete(self, model_id: str) -> None:
        """Soft-delete: the model is no longer found or listed; its files stay with its run."""
        self.get(model_id)
        now = now_ms()
        with self.db.write() as conn:
            conn.execute(update(t.logged_models).where(
                t.logged_models.c.model_id == model_id, t.logged_models.c.deleted_at.is_(None)
            ).values(deleted_at=now, updated_at=now))

    # ---------------------------------------------------------------- run outputs
    def record_outputs(self, run_id: str, outputs: Sequence[tuple[str, int]]) -> None:
        """The run produced these models (``(model_id, step)``); recording one again is a
        no-op (the first step stays), so a retried request changes nothing."""
        if not outputs:
            return
        created = now_ms()
        rows = [{"run_id": run_id, "model_id": model_id, "step": int(step),
                 "created_at": created} for model_id, step in outputs]
        try:
            with self.db.write() as conn:
                conn.execute(self.db.upsert(t.logged_model_outputs).on_conflict_do_nothing(),
                             rows)
        except SAIntegrityError:
            raise NotFound(f"run {run_id!r} or one of the logged models "
                           f"{', '.join(repr(m) for m, _ in outputs)} does not exist") from None

    def outputs_of_run(self, run_id: str) -> list[tuple[str, int]]:
        """``(model_id, step)`` of each model the run output, in the order recorded."""
        o = t.logged_model_outputs
        with self.db.read() as conn:
            rows = conn.execute(select(o.c.model_id, o.c.step).where(o.c.run_id == run_id)
                                .order_by(o.c.created_at, o.c.model_id)).all()
        return [(r.model_id, r.step) for r in rows]

    def record_inputs(self, run_id: str, model_ids: Sequence[str]) -> None:
        """The run used these models (MLflow's ``log_inputs`` with models); recording one
        again is a no-op."""
        if not model_ids:
            return
        created = now_ms()
        rows = [{"run_id": run_id, "model_id": model_id, "created_at": created}
                for model_id in dict.fromkeys(model_ids)]
        try:
            with self.db.write() as conn:
                conn.execute(self.db.upsert(t.logged_model_inputs).on_conflict_do_nothing(),
                             rows)
        except SAIntegrityError:
            raise NotFound(f"run {run_id!r} or one of the logged models "
                           f"{', '.join(repr(m) for m in model_ids)} does not exist") from None

    def inputs_of_run(self, run_id: str) -> list[str]:
        """The ids of the models the run used, in the order recorded."""
        i = t.logged_model_inputs
        with self.db.read() as conn:
            return list(conn.execute(select(i.c.model_id).where(i.c.run_id == run_id)
                                     .order_by(i.c.created_at, i.c.model_id)).scalars())

    # ---------------------------------------------------------------- helpers
    def _exists(self, model_id: str) -> bool:
        with self.db.read() as conn:
            return conn.execute(select(t.logged_models.c.model_id).where(
                t.logged_models.c.model_id == model_id)).first() is not None

    def _touch(self, conn: Any, model_id: str) -> None:
        conn.execute(update(t.logged_models).where(t.logged_models.c.model_id == model_id)
                     .values(updated_at=now_ms()))

    def _load(self, query: Any) -> list[LoggedModel]:
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            if not rows:
                return []
            ids = [r.model_id for r in rows]
            params: dict[str, dict[str, str]] = {i: {} for i in ids}
            tags: dict[str, dict[str, str]] = {i: {} for i in ids}
            metrics: dict[str, list[LoggedModelMetric]] = {i: [] for i in ids}
            for chunk in _chunks(ids, 500):
                p, g, mm = t.logged_model_params, t.logged_model_tags, t.logged_model_metrics
                for r in conn.execute(select(p).where(p.c.model_id.in_(chunk))
                                      .order_by(p.c.key)).all():
                    params[r.model_id][r.key] = r.value
                for r in conn.execute(select(g).where(g.c.model_id.in_(chunk))
                                      .order_by(g.c.key)).all():
                    tags[r.model_id][r.key] = r.value
                for r in conn.execute(select(mm).where(mm.c.model_id.in_(chunk))
                                      .order_by(mm.c.id)).all():
                    metrics[r.model_id].append(LoggedModelMetric(
                        r.key, math.nan if r.is_nan else float(r.value), r.step, r.timestamp,
                        r.run_id, r.dataset_name, r.dataset_digest))
        return [LoggedModel(
            model_id=r.model_id, experiment_id=r.experiment_id, name=r.name,
            artifact_run_id=r.artifact_run_id, artifact_path=r.artifact_path,
            source_run_id=r.source_run_id, status=r.status, status_message=r.status_message,
            model_type=r.model_type, created_at=r.created_at, updated_at=r.updated_at,
            params=params[r.model_id], tags=tags[r.model_id],
            metrics=tuple(metrics[r.model_id]), deleted_at=r.deleted_at) for r in rows]


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _param_rows(model_id: str, params: Mapping[str, object]) -> list[dict[str, str]]:
    rows = []
    for key, value in params.items():
        text = str(value)
        if len(text) > MAX_PARAM_LENGTH:
            raise InvalidInput(f"param {key!r}: value is longer than {MAX_PARAM_LENGTH} chars")
        rows.append({"model_id": model_id, "key": validate_key("param", key), "value": text})
    return rows


def _tag_rows(model_id: str, tags: Mapping[str, object]) -> list[dict[str, str]]:
    return [{"model_id": model_id, "key": validate_key("tag", k), "value": str(v)}
            for k, v in tags.items()]


__all__ = ["HOLDER_TAG", "LOGGED_MODEL_STATUSES", "LoggedModel", "LoggedModelMetric",
           "LoggedModelStore", "check_model_id", "model_files_path", "new_model_id"]
