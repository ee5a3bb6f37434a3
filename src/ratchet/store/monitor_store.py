"""SQL for monitor results: one row per evaluation, the whole result kept as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from ratchet.clock import now_ms
from ratchet.errors import NotFound
from ratchet.ids import new_id
from ratchet.store import schema as t
from ratchet.store.database import Database


@dataclass(frozen=True)
class StoredMonitorResult:
    result_id: str
    deployment: str
    window_start: int
    window_end: int
    verdict: str
    rows: int
    result: dict[str, Any]
    report_path: str | None
    created_at: int


def _record(row: Any) -> StoredMonitorResult:
    return StoredMonitorResult(row.result_id, row.deployment, row.window_start, row.window_end,
                               row.verdict, row.rows, json.loads(row.result), row.report_path,
                               row.created_at)


class MonitorStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, deployment: str, *, window_start: int, window_end: int, verdict: str,
            rows: int, result: Mapping[str, Any]) -> StoredMonitorResult:
        record = StoredMonitorResult(new_id(), deployment, window_start, window_end, verdict,
                                     rows, dict(result), None, now_ms())
        with self.db.write() as conn:
            conn.execute(insert(t.monitor_results).values(
                result_id=record.result_id, deployment=deployment, window_start=window_start,
                window_end=window_end, verdict=verdict, rows=rows,
                result=json.dumps(record.result, allow_nan=False, default=str),
                report_path=None, created_at=record.created_at))
        return record

    def set_report_path(self, result_id: str, path: str) -> None:
        with self.db.write() as conn:
            conn.execute(update(t.monitor_results).where(
                t.monitor_results.c.result_id == result_id).values(report_path=path))

    def set_result(self, result_id: str, result: Mapping[str, Any]) -> None:
        """Replace a stored result (the monitor adds how its alert went)."""
        with self.db.write() as conn:
            conn.execute(update(t.monitor_results).where(
                t.monitor_results.c.result_id == result_id).values(
                    result=json.dumps(dict(result), allow_nan=False, default=str)))

    def get(self, result_id: str) -> StoredMonitorResult:
        """One stored result by id (NotFound if there is none)."""
        m = t.monitor_results
        with self.db.read() as conn:
            row = conn.execute(select(m).where(m.c.result_id == result_id)).first()
        if row is None:
            raise NotFound(f"no monitor result with id {result_id!r}")
        return _record(row)

    def history(self, deployment: str, *, limit: int | None = None) -> list[StoredMonitorResult]:
        """Results of a deployment, oldest first (the newest ``limit`` when given)."""
        m = t.monitor_results
        query = select(m).where(m.c.deployment == deployment).order_by(
            m.c.created_at.desc(), m.c.result_id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [_record(r) for r in reversed(rows)]

    def latest(self, deployment: str) -> StoredMonitorResult | None:
        found = self.history(deployment, limit=1)
        return found[0] if found else None
