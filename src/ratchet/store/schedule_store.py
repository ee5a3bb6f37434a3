"""SQL for pipeline schedules and named leases.

Two atomic primitives keep a firing from happening twice:

- ``claim_firing`` is a compare-and-swap on ``next_run_at``: one ``UPDATE ... WHERE
  next_run_at = <what the caller saw>``. On SQLite write transactions are serialized
  (``BEGIN IMMEDIATE``); on PostgreSQL a concurrent ``UPDATE`` of the same row waits for
  the first and then re-checks the ``WHERE`` against the committed row, so exactly one
  caller sees ``rowcount == 1``.
- ``acquire_lease`` is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` (the lease is free,
  expired, or already ours) with ``RETURNING``: the row comes back only to the winner.

Lease times are compared against the caller's clock (milliseconds, UTC): hosts sharing a
PostgreSQL store should keep their clocks synchronized (NTP). A skewed clock can at worst
let two holders overlap; the compare-and-swap still fires each schedule time once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ratchet.clock import now_ms
from ratchet.errors import AlreadyExists, InvalidInput, NotFound
from ratchet.ids import new_id
from ratchet.store import schema as t
from ratchet.store.database import Database
from ratchet.store.tracking_store import validate_key

MAX_HOLDER_LENGTH = 256


@dataclass(frozen=True)
class Schedule:
    """A pipeline to run on a cron schedule. Times are epoch milliseconds (UTC)."""

    schedule_id: str
    name: str
    pipeline_ref: str
    cron: str
    params: dict[str, Any] = field(default_factory=dict)
    executor: str | None = None
    enabled: bool = True
    next_run_at: int = 0
    last_run_at: int | None = None
    last_pipeline_run_id: str | None = None
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True)
class Lease:
    """A named lock with an expiry; ``holder`` owns it until ``expires_at`` (epoch ms)."""

    name: str
    holder: str
    acquired_at: int
    expires_at: int


def _schedule(row: Any) -> Schedule:
    return Schedule(
        schedule_id=row.schedule_id, name=row.name, pipeline_ref=row.pipeline_ref,
        cron=row.cron, params=json.loads(row.params), executor=row.executor,
        enabled=bool(row.enabled), next_run_at=row.next_run_at, last_run_at=row.last_run_at,
        last_pipeline_run_id=row.last_pipeline_run_id, created_at=row.created_at,
        updated_at=row.updated_at)


def _holder(holder: object) -> str:
    if not isinstance(holder, str) or not holder or len(holder) > MAX_HOLDER_LENGTH:
        raise InvalidInput(f"lease holder must be a non-empty string of at most "
                           f"{MAX_HOLDER_LENGTH} chars, got {holder!r}")
    return holder


def _ttl(ttl_ms: object) -> int:
    if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool) or ttl_ms <= 0:
        raise InvalidInput(f"lease ttl must be a positive number of milliseconds, got {ttl_ms!r}")
    return ttl_ms


class ScheduleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---------------------------------------------------------------- schedules
    def create_schedule(
        self,
        name: str,
        *,
        pipeline_ref: str,
        cron: str,
        params: Mapping[str, Any],
        next_run_at: int,
        executor: str | None = None,
        enabled: bool = True,
        replace: bool = False,
    ) -> Schedule:
        """Add a schedule; with ``replace`` an existing one of that name is redefined in
        place (its id and run history are kept). The caller validates cron and params."""
        validate_key("schedule", name)
        encoded = json.dumps(dict(params), sort_keys=True, allow_nan=False)
        now = now_ms()
        values = {"pipeline_ref": pipeline_ref, "cron": cron, "params": encoded,
                  "executor": executor, "enabled": enabled, "next_run_at": next_run_at,
                  "updated_at": now}
        s = t.schedules
        try:
            with self.db.write() as conn:
                existing = conn.execute(select(s.c.schedule_id).where(s.c.name == name)
                                        .with_for_update()).scalar()
                if existing is not None and not replace:
                    raise AlreadyExists(
                        f"schedule {name!r} already exists; pass replace=True (CLI: --replace) "
                        "to redefine it, or choose another name")
                if existing is None:
                    conn.execute(insert(s).values(schedule_id=new_id(), name=name,
                                                  created_at=now, **values))
                else:
                    conn.execute(update(s).where(s.c.schedule_id == existing).values(**values))
        except SAIntegrityError:  # a concurrent create of the same name won
            raise AlreadyExists(f"schedule {name!r} already exists") from None
        return self.get_schedule(name)

    def get_schedule(self, name: str) -> Schedule:
        with self.db.read() as conn:
            row = conn.execute(select(t.schedules).where(t.schedules.c.name == name)).first()
        if row is None:
            raise NotFound(f"no schedule named {name!r} (see `ratchet schedule list`)")
        return _schedule(row)

    def get_schedule_by_id(self, schedule_id: str) -> Schedule:
        with self.db.read() as conn:
            row = conn.execute(select(t.schedules)
                               .where(t.schedules.c.schedule_id == schedule_id)).first()
        if row is None:
            raise NotFound(f"no schedule with id {schedule_id!r}")
        return _schedule(row)

    def list_schedules(self) -> list[Schedule]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.schedules).order_by(t.schedules.c.name)).all()
        return [_schedule(r) for r in rows]

    def delete_schedule(self, name: str) -> None:
        with self.db.write() as conn:
            result = conn.execute(delete(t.schedules).where(t.schedules.c.name == name))
        if result.rowcount == 0:
            raise NotFound(f"no schedule named {name!r} (see `ratchet schedule list`)")

    def set_enabled(self, name: str, enabled: bool, *, next_run_at: int | None = None) -> Schedule:
        """Switch a schedule on or off; ``next_run_at`` (when given) replaces the stored one."""
        values: dict[str, Any] = {"enabled": enabled, "updated_at": now_ms()}
        if next_run_at is not None:
            values["next_run_at"] = next_run_at
        with self.db.write() as conn:
            result = conn.execute(update(t.schedules).where(t.schedules.c.name == name)
                                  .values(**values))
        if result.rowcount == 0:
            raise NotFound(f"no schedule named {name!r} (see `ratchet schedule list`)")
        return self.get_schedule(name)

    def due_schedules(self, now: int) -> list[Schedule]:
        """Enabled schedules whose ``next_run_at`` is at or before ``now``, oldest first."""
        s = t.schedules
        with self.db.read() as conn:
            rows = conn.execute(select(s).where(s.c.enabled.is_(True), s.c.next_run_at <= now)
                                .order_by(s.c.next_run_at, s.c.name)).all()
        return [_schedule(r) for r in rows]

    def claim_firing(self, schedule_id: str, *, expected_next_run_at: int, next_run_at: int,
                     now: int) -> bool:
        """Compare-and-swap: move ``next_run_at`` from the value the caller saw to the next
        one and stamp ``last_run_at``. True for exactly one of any concurrent callers."""
        s = t.schedules
        with self.db.write() as conn:
            result = conn.execute(
                update(s).where(s.c.schedule_id == schedule_id,
                                s.c.next_run_at == expected_next_run_at,
                                s.c.enabled.is_(True))
                .values(next_run_at=next_run_at, last_run_at=now, updated_at=now_ms()))
        return result.rowcount == 1

    def record_pipeline_run(self, schedule_id: str, pipeline_run_id: str) -> None:
        """Remember the pipeline run a firing started (a deleted schedule is left alone)."""
        with self.db.write() as conn:
            conn.execute(update(t.schedules).where(t.schedules.c.schedule_id == schedule_id)
                         .values(last_pipeline_run_id=pipeline_run_id, updated_at=now_ms()))

    # ---------------------------------------------------------------- leases
    def acquire_lease(self, name: str, holder: str, ttl_ms: int,
                      now: int | None = None) -> Lease | None:
        """Take the lease if it is free, expired, or already ``holder``'s (then it is
        extended). Returns the lease when ``holder`` has it, ``None`` when someone else does."""
        validate_key("lease", name)
        _holder(holder)
        now = now_ms() if now is None else now
        expires = now + _ttl(ttl_ms)
        lt = t.leases
        stmt = self.db.upsert(lt).values(name=name, holder=holder, acquired_at=now,
                                         expires_at=expires)
        stmt = stmt.on_conflict_do_update(
            index_elements=[lt.c.name],
            set_={
                "holder": stmt.excluded.holder,
                # A holder renewing through acquire keeps its original acquisition time.
                "acquired_at": case((lt.c.holder == stmt.excluded.holder, lt.c.acquired_at),
                                    else_=stmt.excluded.acquired_at),
                "expires_at": stmt.excluded.expires_at,
            },
            where=(lt.c.holder == stmt.excluded.holder) | (lt.c.expires_at <= now),
        ).returning(lt.c.name, lt.c.holder, lt.c.acquired_at, lt.c.expires_at)
        with self.db.write() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else Lease(row.name, row.holder, row.acquired_at,
                                              row.expires_at)

    def renew_lease(self, name: str, holder: str, ttl_ms: int,
                    now: int | None = None) -> Lease | None:
        """Extend a lease ``holder`` still holds (unexpired); ``None`` if it was lost."""
        now = now_ms() if now is None else now
        expires = now + _ttl(ttl_ms)
        lt = t.leases
        with self.db.write() as conn:
            row = conn.execute(
                update(lt).where(lt.c.name == name, lt.c.holder == holder, lt.c.expires_at > now)
                .values(expires_at=expires)
                .returning(lt.c.name, lt.c.holder, lt.c.acquired_at, lt.c.expires_at)).first()
        return None if row is None else Lease(row.name, row.holder, row.acquired_at,
                                              row.expires_at)

    def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if ``holder`` has it; False if it was not theirs (any more)."""
        lt = t.leases
        with self.db.write() as conn:
            result = conn.execute(delete(lt).where(lt.c.name == name, lt.c.holder == holder))
        return result.rowcount == 1

    def get_lease(self, name: str) -> Lease | None:
        """The lease row, expired or not (compare ``expires_at`` with the time yourself)."""
        lt = t.leases
        with self.db.read() as conn:
            row = conn.execute(select(lt).where(lt.c.name == name)).first()
        return None if row is None else Lease(row.name, row.holder, row.acquired_at,
                                              row.expires_at)
