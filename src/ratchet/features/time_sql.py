"""Time and SQL text shared by the offline join, materialize, push and the online lookup,
so that offline and online read a time by the same rule: µs since the epoch, UTC, naive
times taken as UTC, nanoseconds floored."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    import duckdb


def to_us(value: object, what: str) -> int:
    """A datetime (naive means UTC), a date, an ISO 8601 text or a pandas Timestamp as
    microseconds since the epoch."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{what} {value!r} is not an ISO 8601 time "
                               "(e.g. 2024-05-01T12:00:00Z)") from None
    if isinstance(value, datetime):  # also pandas.Timestamp
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, date):
        return to_us(datetime(value.year, value.month, value.day), what)
    raise InvalidInput(f"{what} must be a datetime, a date or an ISO 8601 text, got "
                       f"{type(value).__name__} {value!r}")


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def now_us() -> int:
    return time.time_ns() // 1000


# ---------------------------------------------------------------------------- SQL

def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def epoch_us_sql(column: str, duckdb_type: str, *, where: str) -> str:
    """SQL for a timestamp column's value as µs since the epoch (naive times are UTC: the
    connection's TimeZone is UTC). Nanosecond times are floored to the µs, never rounded:
    a time a nanosecond before a row's event time must not see that row, offline or
    online."""
    ident = quote_ident(column)
    kind = duckdb_type.upper()
    if kind == "TIMESTAMP_NS":
        return f"epoch_us({ident})"  # floors
    if kind in ("TIMESTAMPTZ_NS", "TIMESTAMP_NS WITH TIME ZONE"):
        ns = f"epoch_ns({ident})"
        return f"(({ns} - (({ns} % 1000) + 1000) % 1000) // 1000)"
    if kind == "TIMESTAMP WITH TIME ZONE":
        return f"epoch_us({ident})"
    if kind.startswith("TIMESTAMP") or kind == "DATE":
        return f"epoch_us(CAST({ident} AS TIMESTAMP))"
    if kind == "VARCHAR":
        return f"epoch_us(CAST({ident} AS TIMESTAMPTZ))"
    raise InvalidInput(f"{where}: column {column!r} is {duckdb_type}, not a timestamp or "
                       "date (store event and created times as timestamps)")


def column_types(con: duckdb.DuckDBPyConnection, table_sql: str, *, where: str
                 ) -> dict[str, str]:
    import duckdb

    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {table_sql}").fetchall()
    except duckdb.Error as exc:
        raise InvalidInput(f"{where}: cannot read its rows: {str(exc).splitlines()[0]}"
                           ) from None
    return {str(r[0]): str(r[1]) for r in rows}
