"""SQL for the continuous-training event log: append and read, nothing else."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from ratchet.clock import now_ms
from ratchet.errors import InvalidInput
from ratchet.ids import new_id
from ratchet.store import schema as t
from ratchet.store.database import Database

MAX_KIND_LENGTH = 64


@dataclass(frozen=True)
class CTEvent:
    event_id: str
    model: str
    kind: str
    summary: str
    evidence: dict[str, Any]
    actor: str | None
    at: int


class CTEventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, model: str, kind: str, summary: str, *,
               evidence: Mapping[str, Any] | None = None, actor: str | None = None,
               at: int | None = None, conn: Any = None) -> CTEvent:
        """Record one event; with ``conn``, inside the caller's transaction (a state change
        and its event commit together)."""
        if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND_LENGTH:
            raise InvalidInput(f"event kind must be 1-{MAX_KIND_LENGTH} characters, got "
                               f"{kind!r}")
        try:
            encoded = json.dumps(dict(evidence or {}), allow_nan=False, default=str,
                                 sort_keys=True)
        except ValueError as exc:
            raise InvalidInput(f"event evidence must be JSON without NaN: {exc}") from None
        event = CTEvent(new_id(), model, kind, summary, json.loads(encoded), actor,
                        at if at is not None else now_ms())
        values = {"event_id": event.event_id, "model": model, "kind": kind,
                  "summary": summary, "evidence": encoded, "actor": actor, "at": event.at}
        if conn is not None:
            conn.execute(insert(t.ct_events).values(**values))
        else:
            with self.db.write() as own:
                own.execute(insert(t.ct_events).values(**values))
        return event

    def history(self, model: str, *, since: int | None = None,
                kinds: tuple[str, ...] | None = None) -> list[CTEvent]:
        """A model's events, oldest first."""
        e = t.ct_events
        query = select(e).where(e.c.model == model).order_by(e.c.at, e.c.event_id)
        if since is not None:
            query = query.where(e.c.at >= since)
        if kinds:
            query = query.where(e.c.kind.in_(kinds))
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [CTEvent(r.event_id, r.model, r.kind, r.summary, json.loads(r.evidence),
                        r.actor, r.at) for r in rows]
