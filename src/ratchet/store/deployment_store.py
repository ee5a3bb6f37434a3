"""SQL for deployments, their plan revisions, and ground-truth feedback.

A deployment's plan is append-only: every change is a new revision (numbered from 1), so
a server polls one integer to notice a change and a rollback can name what it restores.
Plans are stored as JSON text; their meaning lives in ``ratchet.serving.traffic_plan``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ratchet.clock import now_ms
from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.names import deployment_name, lookup_name
from ratchet.store import schema as t
from ratchet.store.database import Database

MAX_REQUEST_ID_LENGTH = 64


@dataclass(frozen=True)
class PlanRevision:
    deployment: str
    revision: int
    plan: dict[str, Any]
    reason: str | None
    actor: str | None
    created_at: int


@dataclass(frozen=True)
class Deployment:
    name: str
    description: str | None
    created_at: int
    current: PlanRevision


@dataclass(frozen=True)
class FeedbackRow:
    request_id: str
    row: int
    deployment: str
    value: Any
    received_at: int


def validate_deployment_name(name: object) -> str:
    """The canonical deployment name (see ratchet.names), or InvalidInput."""
    return deployment_name(name)


def _found(name: str) -> str:
    return lookup_name(name)  # type: ignore[return-value]


def _revision(row: Any) -> PlanRevision:
    return PlanRevision(deployment=row.deployment, revision=row.revision,
                        plan=json.loads(row.plan), reason=row.reason, actor=row.actor,
                        created_at=row.created_at)


class DeploymentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---------------------------------------------------------------- deployments
    def create(self, name: str, plan: Mapping[str, Any], *, description: str | None = None,
               reason: str | None = None, actor: str | None = None) -> Deployment:
        name = validate_deployment_name(name)
        now = now_ms()
        try:
            with self.db.write() as conn:
                conn.execute(insert(t.deployments).values(
                    name=name, description=description, created_at=now))
                conn.execute(insert(t.deployment_plans).values(
                    deployment=name, revision=1, plan=_encode(plan), reason=reason,
                    actor=actor, created_at=now))
        except SAIntegrityError:
            raise AlreadyExists(f"deployment {name!r} already exists") from None
        return self.get(name)

    def get(self, name: str) -> Deployment:
        name = _found(name)
        d, p = t.deployments, t.deployment_plans
        with self.db.read() as conn:
            row = conn.execute(select(d).where(d.c.name == name)).first()
            if row is None:
                raise NotFound(f"no deployment named {name!r}")
            current = conn.execute(
                select(p).where(p.c.deployment == name).order_by(p.c.revision.desc()).limit(1)
            ).first()
        return Deployment(row.name, row.description, row.created_at, _revision(current))

    def exists(self, name: str) -> bool:
        name = _found(name)
        d = t.deployments
        with self.db.read() as conn:
            return conn.execute(select(d.c.name).where(d.c.name == name)).first() is not None

    def list_deployments(self) -> list[Deployment]:
        d = t.deployments
        with self.db.read() as conn:
            names = conn.execute(select(d.c.name).order_by(d.c.name)).scalars().all()
        return [self.get(n) for n in names]

    def delete(self, name: str) -> None:
        name = _found(name)
        with self.db.write() as conn:
            gone = conn.execute(delete(t.deployments).where(t.deployments.c.name == name))
            if gone.rowcount == 0:
                raise NotFound(f"no deployment named {name!r}")
            conn.execute(delete(t.deployment_plans).where(t.deployment_plans.c.deployment == name))

    # ---------------------------------------------------------------- plans
    def set_plan(self, name: str, plan: Mapping[str, Any], *, reason: str | None = None,
                 actor: str | None = None, expected_revision: int | None = None) -> PlanRevision:
        """Append a revision. With ``expected_revision``, only if that is still the newest
        (compare-and-swap for controllers); a concurrent writer gets :class:`Conflict`."""
        name = _found(name)
        p = t.deployment_plans
        now = now_ms()
        try:
            with self.db.write() as conn:
                newest = conn.execute(select(func.max(p.c.revision))
                                      .where(p.c.deployment == name)).scalar()
                if newest is None:
                    raise NotFound(f"no deployment named {name!r}")
                if expected_revision is not None and newest != expected_revision:
                    raise Conflict(f"deployment {name!r} is at revision {newest}, not "
                                   f"{expected_revision}; re-read its plan and retry")
                conn.execute(insert(p).values(
                    deployment=name, revision=newest + 1, plan=_encode(plan), reason=reason,
                    actor=actor, created_at=now))
        except SAIntegrityError:
            raise Conflict(f"deployment {name!r} changed concurrently; retry") from None
        return PlanRevision(name, newest + 1, json.loads(_encode(plan)), reason, actor, now)

    def current_revision(self, name: str) -> int:
        """The newest revision number: the one integer a server polls."""
        name = _found(name)
        p = t.deployment_plans
        with self.db.read() as conn:
            newest = conn.execute(select(func.max(p.c.revision))
                                  .where(p.c.deployment == name)).scalar()
        if newest is None:
            raise NotFound(f"no deployment named {name!r}")
        return int(newest)

    def history(self, name: str) -> list[PlanRevision]:
        name = _found(name)
        p = t.deployment_plans
        with self.db.read() as conn:
            rows = conn.execute(select(p).where(p.c.deployment == name)
                                .order_by(p.c.revision)).all()
        if not rows:
            raise NotFound(f"no deployment named {name!r}")
        return [_revision(r) for r in rows]

    # ---------------------------------------------------------------- feedback
    def record_feedback(self, rows: Iterable[tuple[str, int, str, Any]]) -> int:
        """Upsert (request_id, row, deployment, value) rows; the newest value wins.

        Keyed on (deployment, request_id, row): feedback for one deployment never touches
        another's. Values are JSON scalars; checking them (finite, no NUL, known ids) is
        the caller's job (``ratchet.serving.feedback``), this refuses what it cannot store.
        """
        now = now_ms()
        # One row per key (the last given wins): an upsert may not touch a row twice.
        latest = {(dep, rid, row): value for rid, row, dep, value in rows}
        values = []
        for (dep, rid, row), value in latest.items():
            try:
                text = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"feedback for request {rid!r} row {row}: {exc}; send a "
                                   "finite number, a boolean or a string") from None
            values.append({"request_id": rid, "row": row, "deployment": dep, "value": text,
                           "received_at": now})
        if not values:
            return 0
        f = t.prediction_feedback
        stmt = self.db.upsert(f)
        stmt = stmt.on_conflict_do_update(
            index_elements=["deployment", "request_id", "row"],
            set_={"value": stmt.excluded.value, "received_at": stmt.excluded.received_at})
        with self.db.write() as conn:
            conn.execute(stmt, values)
        return len(values)

    def feedback(self, deployment: str | None = None, *, since: int | None = None,
                 until: int | None = None) -> list[FeedbackRow]:
        f = t.prediction_feedback
        query = select(f).order_by(f.c.received_at, f.c.request_id, f.c.row)
        if deployment is not None:
            query = query.where(f.c.deployment == deployment)
        if since is not None:
            query = query.where(f.c.received_at >= since)
        if until is not None:
            query = query.where(f.c.received_at < until)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [FeedbackRow(r.request_id, r.row, r.deployment, json.loads(r.value),
                            r.received_at) for r in rows]


def _encode(plan: Mapping[str, Any]) -> str:
    return json.dumps(dict(plan), sort_keys=True, allow_nan=False)
