"""A brute-force point-in-time join, for tests only: pure Python loops over every entity row
and every feature row, written straight from the rule (no sorting, no ASOF, no DuckDB).

For an entity row with keys K and time T, a view's value is its feature row with the same K
(no key null) whose event time E ≤ T, and E ≥ T - ttl with a ttl; with ``created_cutoff``
also created ≤ T (a missing created time always passes); among those the greatest
(E, created with nulls lowest, position in the rows); no row: None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(value: Any) -> int | None:
    """A datetime (naive is UTC) or date as µs since the epoch."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - EPOCH) // timedelta(microseconds=1)
    if isinstance(value, date):
        return micros(datetime(value.year, value.month, value.day))
    raise TypeError(f"not a time: {value!r}")


@dataclass
class ReferenceView:
    rows: list[dict[str, Any]]          # in source order
    join_keys: tuple[str, ...]
    timestamp_field: str
    created_timestamp_field: str | None
    features: tuple[str, ...]
    columns: tuple[str, ...]
    ttl: timedelta | None = None


def reference_join(entity_rows: list[dict[str, Any]], timestamp_column: str,
                   views: list[ReferenceView], created_cutoff: bool = False
                   ) -> dict[str, list[Any]]:
    """Each view's output columns, one value per entity row, in entity row order."""
    out: dict[str, list[Any]] = {c: [] for v in views for c in v.columns}
    for entity in entity_rows:
        t = micros(entity[timestamp_column])
        assert t is not None
        for view in views:
            best: tuple[int, float, int] | None = None
            winner: dict[str, Any] | None = None
            for position, row in enumerate(view.rows):
                keys = [row[k] for k in view.join_keys]
                wanted = [entity[k] for k in view.join_keys]
                if any(k is None for k in keys) or any(k is None for k in wanted):
                    continue
                if keys != wanted:
                    continue
                e = micros(row[view.timestamp_field])
                if e is None or e > t:
                    continue
                if view.ttl is not None and e < t - view.ttl // timedelta(microseconds=1):
                    continue
                c = (None if view.created_timestamp_field is None
                     else micros(row[view.created_timestamp_field]))
                if created_cutoff and c is not None and c > t:
                    continue
                rank = (e, float("-inf") if c is None else c, position)
                if best is None or rank > best:
                    best, winner = rank, row
            for feature, column in zip(view.features, view.columns, strict=True):
                out[column].append(None if winner is None else winner[feature])
    return out
