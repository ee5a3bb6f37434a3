"""SQL for the continuous-training controller: its persisted state, its lease and the
requests people leave for it (retrain, approve, reject).

Every state change is a compare-and-swap: it names the ``seq`` it read and succeeds only
if nobody changed the row since and the caller still holds an unexpired lease. The event
that records the change is written in the same transaction, so a step and its record
commit together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ratchet.clock import now_ms
from ratchet.errors import LeaseLost
from ratchet.store import schema as t
from ratchet.store.ct_event_store import CTEventStore
from ratchet.store.database import Database

INITIAL_STATE = "watching"


@dataclass(frozen=True)
class ControllerState:
    model: str
    state: str
    seq: int
    cycle: int
    data: dict[str, Any]
    requests: list[dict[str, Any]]
    updated_at: int
    lease_holder: str | None
    lease_expires_at: int | None


@dataclass(frozen=True)
class EventSpec:
    """An event to record with a state change: what happened and the evidence."""

    kind: str
    summary: str
    evidence: Mapping[str, Any] | None = None
    actor: str | None = None


class CTStateStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.events = CTEventStore(db)

    # ------------------------------------------------------------------ reading
    def get(self, model: str) -> ControllerState | None:
        with self.db.read() as conn:
            row = conn.execute(select(t.ct_controllers).where(
                t.ct_controllers.c.model == model)).first()
        return None if row is None else _state(row)

    def list_states(self) -> list[ControllerState]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.ct_controllers).order_by(
                t.ct_controllers.c.model)).all()
        return [_state(r) for r in rows]

    # ------------------------------------------------------------------ lease
    def acquire(self, model: str, holder: str, ttl_ms: int) -> ControllerState | None:
        """Take or renew the lease on ``model``'s controller (creating it, watching, if it
        does not exist). None: another holder's lease has not expired."""
        self._ensure(model)
        c = t.ct_controllers.c
        now = now_ms()
        with self.db.write() as conn:
            done = conn.execute(
                update(t.ct_controllers)
                .where(c.model == model)
                .where((c.lease_holder.is_(None)) | (c.lease_holder == holder)
                       | (c.lease_expires_at < now))
                .values(lease_holder=holder, lease_expires_at=now + ttl_ms)).rowcount
            row = conn.execute(select(t.ct_controllers).where(c.model == model)).first()
        return _state(row) if done else None

    def release(self, model: str, holder: str) -> None:
        c = t.ct_controllers.c
        with self.db.write() as conn:
            conn.execute(update(t.ct_controllers)
                         .where(c.model == model).where(c.lease_holder == holder)
                         .values(lease_holder=None, lease_expires_at=None))

    # ------------------------------------------------------------------ changes
    def commit(self, current: ControllerState, holder: str, *, state: str,
               data: Mapping[str, Any], cycle: int | None = None,
               consumed_requests: int = 0, event: EventSpec | None = None,
               at: int | None = None) -> ControllerState:
        """Move ``current`` to ``state`` (with its new working data) and record ``event``,
        atomically; raises ``LeaseLost`` if the row changed since ``current`` was read or
        the lease is no longer ours. ``consumed_requests``: how many of the oldest pending
        requests this change answered (requests added meanwhile stay)."""
        c = t.ct_controllers.c
        now = now_ms()
        encoded = _json(data)
        with self.db.write() as conn:
            row = conn.execute(select(t.ct_controllers).where(c.model == current.model)
                               .with_for_update()).first()
            if row is None or row.seq != current.seq or row.lease_holder != holder or \
                    (row.lease_expires_at or 0) < now:
                raise LeaseLost(f"controller {current.model!r}: the lease or the state "
                                f"changed (expected seq {current.seq}, holder {holder})")
            remaining = json.loads(row.requests)[consumed_requests:]
            conn.execute(update(t.ct_controllers).where(c.model == current.model).values(
                state=state, seq=row.seq + 1, cycle=row.cycle if cycle is None else cycle,
                data=encoded, requests=_json(remaining), updated_at=now))
            if event is not None:
                self.events.append(current.model, event.kind, event.summary,
                                   evidence=event.evidence, actor=event.actor, at=at,
                                   conn=conn)
            fresh = conn.execute(select(t.ct_controllers).where(
                c.model == current.model)).first()
        return _state(fresh)

    def request(self, model: str, kind: str, *, actor: str | None = None,
                reason: str | None = None, cycle: int | None = None,
                at: int | None = None) -> ControllerState:
        """Leave a request for the controller (retrain, approve, reject), recorded as an
        event too. Needs no lease: requests are appended, and only consumed by a commit."""
        self._ensure(model)
        c = t.ct_controllers.c
        with self.db.write() as conn:
            row = conn.execute(select(t.ct_controllers).where(c.model == model)
                               .with_for_update()).one()
            pending = json.loads(row.requests)
            when = at if at is not None else now_ms()
            item = {"kind": kind, "actor": actor, "reason": reason, "cycle": cycle,
                    "at": when}
            conn.execute(update(t.ct_controllers).where(c.model == model).values(
                requests=_json([*pending, item])))
            summary = f"{kind} requested" + (f": {reason}" if reason else "")
            self.events.append(model, f"{kind}-requested", summary, evidence=item,
                               actor=actor, at=when, conn=conn)
            fresh = conn.execute(select(t.ct_controllers).where(c.model == model)).first()
        return _state(fresh)

    def _ensure(self, model: str) -> None:
        if self.get(model) is not None:
            return
        try:
            with self.db.write() as conn:
                conn.execute(insert(t.ct_controllers).values(
                    model=model, state=INITIAL_STATE, seq=0, cycle=0, data="{}",
                    requests="[]", updated_at=now_ms(), lease_holder=None,
                    lease_expires_at=None))
        except SAIntegrityError:
            pass  # created by someone else meanwhile: the same row


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=False, default=str, sort_keys=True)


def _state(row: Any) -> ControllerState:
    return ControllerState(row.model, row.state, row.seq, row.cycle, json.loads(row.data),
                           json.loads(row.requests), row.updated_at, row.lease_holder,
                           row.lease_expires_at)
