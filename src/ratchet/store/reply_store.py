"""SQL for idempotent requests: the first reply to a write, kept by its client-chosen key.

A client that loses the connection after sending a write cannot know whether it ran; it
retries with the same ``Idempotency-Key``. The first request claims the key (an insert
on the primary key, so two server processes cannot both claim it), runs, and stores its
reply; a retry finds the reply and gets it back instead of logging the metric, creating
the run or the version twice. Replies are kept for a day.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ratchet.clock import now_ms
from ratchet.errors import Conflict
from ratchet.store import schema as t
from ratchet.store.database import Database

KEEP_MS = 24 * 3600 * 1000
WAIT_S = 30.0
_PURGE_EVERY = 1000


@dataclass(frozen=True)
class StoredReply:
    status: int
    body: bytes


class ReplyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._claims = 0

    def claim(self, key: str, actor: str) -> StoredReply | None:
        """None: the key is ours, run the request and ``finish`` it. Otherwise the reply
        an earlier request with this key gave (waiting while that one still runs)."""
        self._claims += 1
        if self._claims % _PURGE_EVERY == 0:
            self.purge(now_ms() - KEEP_MS)
        try:
            with self.db.write() as conn:
                conn.execute(insert(t.server_replies).values(
                    key=key, actor=actor, created_at=now_ms(), status=None, body=None))
            return None
        except SAIntegrityError:
            pass
        deadline = time.monotonic() + WAIT_S
        while True:
            with self.db.read() as conn:
                row = conn.execute(select(t.server_replies).where(
                    t.server_replies.c.key == key)).first()
            if row is None:  # the first attempt failed and gave the key back: ours now
                return self.claim(key, actor)
            if row.actor != actor:
                raise Conflict("this Idempotency-Key was used by another caller; send a "
                               "new random key with each request")
            if row.status is not None:
                return StoredReply(int(row.status), bytes(row.body or b""))
            if time.monotonic() > deadline:
                raise Conflict("a request with this Idempotency-Key is still running; "
                               "retry later")
            time.sleep(0.05)

    def finish(self, key: str, status: int, body: bytes,
               audit: Mapping[str, Any] | None = None) -> None:
        """Keep the reply; with ``audit`` (an ``audit_store.event_row``), record the change
        in the same transaction (one commit fewer per write)."""
        with self.db.write() as conn:
            conn.execute(update(t.server_replies).where(t.server_replies.c.key == key)
                         .values(status=status, body=body))
            if audit is not None:
                conn.execute(insert(t.audit_log).values(**audit))

    def release(self, key: str) -> None:
        """Give the key back (the request failed on the server's side: a retry runs it)."""
        with self.db.write() as conn:
            conn.execute(delete(t.server_replies).where(t.server_replies.c.key == key))

    def purge(self, created_before: int) -> int:
        with self.db.write() as conn:
            result = conn.execute(delete(t.server_replies).where(
                t.server_replies.c.created_at < created_before))
        return int(result.rowcount or 0)
