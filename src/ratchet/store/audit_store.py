"""SQL for the audit log: one row per state change made through the team server (who, what,
when, from where), append-only, read newest first."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, insert, or_, select

from ratchet.clock import now_ms
from ratchet.errors import InvalidInput, NotFound
from ratchet.ids import new_id
from ratchet.json_safe import dumps
from ratchet.store import schema as t
from ratchet.store.database import Database

MAX_ACTOR_LENGTH = 256
MAX_ACTION_LENGTH = 128
MAX_KIND_LENGTH = 16
MAX_RESOURCE_LENGTH = 256
MAX_CLIENT_LENGTH = 128
# A summary, not a copy of the request: larger details are cut (and say so).
MAX_DETAIL_LENGTH = 4096
MAX_LIMIT = 1000

_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")


@dataclass(frozen=True)
class AuditEvent:
    """One recorded state change. ``at`` is epoch ms (UTC); ``client`` the remote address;
    ``detail`` a short JSON summary of the arguments."""

    event_id: str
    at: int
    actor: str
    action: str
    kind: str | None = None
    resource: str | None = None
    client: str | None = None
    detail: dict[str, Any] | None = None


def _cut(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters: the change it records has already happened,
    so an over-long actor, resource or address is shortened (marked with "…"), never
    refused."""
    return value if len(value) <= limit else value[:limit - 1] + "…"


def _detail(detail: Mapping[str, Any] | None) -> str | None:
    if detail is None:
        return None
    if not isinstance(detail, Mapping):
        raise InvalidInput(f"audit detail must be a mapping; got {type(detail).__name__}")
    encoded = dumps(dict(detail), sort_keys=True, ensure_ascii=False)
    if len(encoded) > MAX_DETAIL_LENGTH:
        cut = encoded[:MAX_DETAIL_LENGTH - 100]
        encoded = dumps({"truncated": True, "summary": cut}, ensure_ascii=False)
    return encoded


def _limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive whole number; got {limit!r}")
    return min(limit, MAX_LIMIT)


def event_row(actor: str, action: str, *, kind: str | None = None,
              resource: str | None = None, client: str | None = None,
              detail: Mapping[str, Any] | None = None, at: int | None = None
              ) -> dict[str, Any]:
    """One checked ``audit_log`` row (for ``AuditStore.record``, or to be written inside
    another store's transaction, as the team server's idempotent replies do)."""
    if (not isinstance(action, str) or len(action) > MAX_ACTION_LENGTH
            or not _ACTION.fullmatch(action)):
        raise InvalidInput(f"audit action must be dotted lower-case words such as "
                           f"'registry.set_alias' (at most {MAX_ACTION_LENGTH} "
                           f"characters); got {action!r}")
    if kind is not None and (not isinstance(kind, str) or not kind
                             or len(kind) > MAX_KIND_LENGTH):
        raise InvalidInput(f"audit kind must be 1-{MAX_KIND_LENGTH} characters, such as "
                           f"'model'; got {kind!r}")
    if not isinstance(actor, str) or not actor:
        raise InvalidInput(f"audit actor must be non-empty text; got {actor!r}")
    if resource is not None and not isinstance(resource, str):
        raise InvalidInput(f"audit resource must be text; got {resource!r}")
    return {"event_id": new_id(), "at": now_ms() if at is None else int(at),
            "actor": _cut(actor, MAX_ACTOR_LENGTH), "action": action, "kind": kind,
            "resource": None if not resource else _cut(resource, MAX_RESOURCE_LENGTH),
            "client": None if not client else _cut(str(client), MAX_CLIENT_LENGTH),
            "detail": _detail(detail)}


class AuditStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, actor: str, action: str, *, kind: str | None = None,
               resource: str | None = None, client: str | None = None,
               detail: Mapping[str, Any] | None = None, at: int | None = None) -> str:
        """Append one event; returns its id. ``action`` is dotted lower case
        (``registry.set_alias``); an over-long actor, resource or client address is cut,
        not refused (the change it records has happened)."""
        row = event_row(actor, action, kind=kind, resource=resource, client=client,
                        detail=detail, at=at)
        with self.db.write() as conn:
            conn.execute(insert(t.audit_log).values(**row))
        return str(row["event_id"])

    def list_events(self, *, since: int | None = None, until: int | None = None,
                    actor: str | None = None, action: str | None = None,
                    kind: str | None = None, resource: str | None = None,
                    before: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """Events newest first: at or after ``since``, before ``until`` (epoch ms), of one
        actor, action, kind or resource when given; at most ``limit`` (capped at 1000).
        ``before`` is an event id: only events older than it (the next page)."""
        a = t.audit_log
        query = select(a).order_by(a.c.at.desc(), a.c.event_id.desc()).limit(_limit(limit))
        if before is not None:
            with self.db.read() as conn:
                cursor = conn.execute(select(a.c.at).where(a.c.event_id == str(before))).first()
            if cursor is None:
                raise NotFound(f"no audit event with id {before!r} to page back from")
            query = query.where(or_(a.c.at < cursor.at,
                                    and_(a.c.at == cursor.at, a.c.event_id < str(before))))
        if since is not None:
            query = query.where(a.c.at >= since)
        if until is not None:
            query = query.where(a.c.at < until)
        for column, value in ((a.c.actor, actor), (a.c.action, action), (a.c.kind, kind),
                              (a.c.resource, resource)):
            if value is not None:
                query = query.where(column == value)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [AuditEvent(event_id=r.event_id, at=r.at, actor=r.actor, action=r.action,
                           kind=r.kind, resource=r.resource, client=r.client,
                           detail=None if r.detail is None else json.loads(r.detail))
                for r in rows]


__all__ = ["MAX_LIMIT", "AuditEvent", "AuditStore"]
