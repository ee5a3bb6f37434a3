"""One rule for reading times, offline and online: µs since the epoch, UTC, floored."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import pytest

from ratchet.errors import InvalidInput
from ratchet.features.time_sql import epoch_us_sql, from_us, to_us

MIDNIGHT_US = to_us(datetime(2026, 1, 2), "t")


@pytest.mark.parametrize(("literal", "duckdb_type"), [
    ("TIMESTAMP_NS '2026-01-01 23:59:59.999999999'", "TIMESTAMP_NS"),
    ("TIMESTAMPTZ '2026-01-01 23:59:59.999999+00'", "TIMESTAMP WITH TIME ZONE"),
    ("TIMESTAMP '2026-01-01 23:59:59.999999'", "TIMESTAMP"),
    ("'2026-01-01T23:59:59.999999Z'", "VARCHAR"),
])
def test_a_time_just_before_midnight_stays_before_it(literal: str, duckdb_type: str) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    sql = epoch_us_sql("t", duckdb_type, where="test")
    (value,) = con.execute(f"SELECT {sql} FROM (SELECT {literal} AS t)").fetchone()
    assert value == MIDNIGHT_US - 1


def test_nanoseconds_with_a_time_zone_are_floored_too() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE x AS SELECT CAST('2026-01-01 23:59:59.999999999+00'"
                " AS TIMESTAMP_NS) AS t")
    sql = epoch_us_sql("t", "TIMESTAMPTZ_NS", where="test")
    (value,) = con.execute(f"SELECT {sql} FROM x").fetchone()
    assert value == MIDNIGHT_US - 1


def test_python_times() -> None:
    assert to_us(date(2026, 1, 2), "t") == MIDNIGHT_US
    assert to_us("2026-01-02T00:00:00Z", "t") == MIDNIGHT_US
    assert to_us(datetime(2026, 1, 2, tzinfo=UTC), "t") == MIDNIGHT_US
    assert from_us(MIDNIGHT_US) == datetime(2026, 1, 2, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="ISO 8601"):
        to_us("yesterday", "start")
    with pytest.raises(InvalidInput, match="not a timestamp"):
        epoch_us_sql("t", "DOUBLE", where="view 'x'")
