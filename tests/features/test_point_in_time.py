"""point_in_time_join, rule by rule, on small hand-made tables (and Parquet files)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratchet.errors import InvalidInput
from ratchet.features.point_in_time import JoinView, point_in_time_join
from ratchet.features.sources import SEQ_COLUMN, SourceScan

T0 = datetime(2024, 1, 1)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def view(con: duckdb.DuckDBPyConnection, rows: dict[str, list[Any]], *, name: str = "v",
         keys: tuple[str, ...] = ("k",), created: str | None = None,
         features: tuple[str, ...] = ("x",), columns: tuple[str, ...] | None = None,
         ttl: timedelta | None = None, types: dict[str, pa.DataType] | None = None,
         order_column: str | None = None) -> JoinView:
    table = pa.table({c: pa.array(v, (types or {}).get(c)) for c, v in rows.items()})
    con.register(name, table)
    return JoinView(name, name, keys, "ts", created, features, columns or features, ttl=ttl,
                    order_column=order_column)


def entity(rows: dict[str, list[Any]], **types: pa.DataType) -> pa.Table:
    return pa.table({c: pa.array(v, types.get(c)) for c, v in rows.items()})


def join(con: duckdb.DuckDBPyConnection, ent: pa.Table, *views: JoinView,
         cutoff: bool = False) -> dict[str, list[Any]]:
    return point_in_time_join(ent, timestamp_column="t", views=list(views),
                              created_cutoff=cutoff, connection=con).to_pydict()


# ------------------------------------------------------------------------------ the rule

def test_the_latest_row_at_or_before_the_row_time_never_a_later_one(con) -> None:
    v = view(con, {"k": [1, 1, 1, 2], "ts": [at(0), at(2), at(5), at(1)],
                   "x": ["h0", "h2", "h5", "other key"]})
    ent = entity({"k": [1, 1, 1, 1, 3], "t": [at(-1), at(0), at(3), at(5), at(9)]})
    assert join(con, ent, v)["x"] == [None, "h0", "h2", "h5", None]


def test_equal_event_times_the_greatest_created_wins_then_the_last_row(con) -> None:
    v = view(con, {"k": [1, 1, 1, 1], "ts": [at(1)] * 4,
                   "cr": [at(3), None, at(2), at(3)],
                   "x": ["created 3, first", "no created", "created 2", "created 3, last"]},
             created="cr")
    assert join(con, entity({"k": [1], "t": [at(1)]}), v)["x"] == ["created 3, last"]
    # without a created field only source order breaks the tie
    plain = view(con, {"k": [1, 1, 1], "ts": [at(1)] * 3, "x": ["a", "b", "c"]}, name="p")
    assert join(con, entity({"k": [1], "t": [at(4)]}), plain)["x"] == ["c"]


def test_a_missing_created_time_ranks_lowest(con) -> None:
    v = view(con, {"k": [1, 1], "ts": [at(1), at(1)], "cr": [at(1), None],
                   "x": ["created", "none"]}, created="cr")
    assert join(con, entity({"k": [1], "t": [at(2)]}), v)["x"] == ["created"]


def test_the_ttl_edge_is_inclusive_and_older_values_are_null(con) -> None:
    v = view(con, {"k": [1], "ts": [at(0)], "x": [7]}, ttl=timedelta(hours=2))
    ent = entity({"k": [1, 1, 1], "t": [at(2), at(2) + timedelta(microseconds=1), at(1)]})
    assert join(con, ent, v)["x"] == [7, None, 7]


def test_a_ttl_beyond_any_time_span_expires_nothing(con) -> None:
    v = view(con, {"k": [1], "ts": [datetime(1900, 1, 1)], "x": [7]}, ttl=timedelta.max)
    assert join(con, entity({"k": [1], "t": [datetime(9999, 1, 1)]}), v)["x"] == [7]


def test_a_given_connection_is_left_as_it_was(con) -> None:
    v = view(con, {"k": [1], "ts": [at(0)], "x": [7]})
    before = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    with pytest.raises(InvalidInput):
        join(con, entity({"k": [1], "t": [at(0)]}), v,
             JoinView("bad", "v", ("k",), "ts", None, ("nope",), ("nope",)))
    join(con, entity({"k": [1], "t": [at(0)]}), v)
    assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == before
    assert [name for (name,) in con.execute("SHOW TABLES").fetchall()] == ["v"]


def test_a_null_value_in_the_winning_row_stays_null(con) -> None:
    v = view(con, {"k": [1, 1], "ts": [at(0), at(1)], "x": [1.5, None]})
    assert join(con, entity({"k": [1], "t": [at(2)]}), v)["x"] == [None]


def test_entity_rows_keep_their_order_duplicates_and_all_their_columns(con) -> None:
    v = view(con, {"k": [1, 2], "ts": [at(0), at(0)], "x": [10, 20]})
    ent = entity({"label": ["c", "a", "b", "a"], "k": [2, 1, 2, 2],
                  "t": [at(1), at(1), at(1), at(1)]})
    out = join(con, ent, v)
    assert list(out) == ["label", "k", "t", "x"]
    assert out["label"] == ["c", "a", "b", "a"] and out["x"] == [20, 10, 20, 20]


def test_created_cutoff_hides_rows_written_after_the_row_time(con) -> None:
    # the 9:00 value of hour 1 was a backfill written at hour 6
    v = view(con, {"k": [1, 1, 1], "ts": [at(0), at(1), at(2)],
                   "cr": [at(0), at(6), None], "x": ["h0", "backfill", "no created"]},
             created="cr")
    ent = entity({"k": [1, 1, 1], "t": [at(1), at(1.5), at(6)]})
    assert join(con, ent, v)["x"] == ["backfill", "backfill", "no created"]
    assert join(con, ent, v, cutoff=True)["x"] == ["h0", "h0", "no created"]


def test_created_cutoff_keeps_the_ttl_on_the_winner_event_time(con) -> None:
    # the first row becomes visible at hour 5, when its event time (hour 0) is already
    # older than the ttl: the ttl is on event time, not on visibility
    v = view(con, {"k": [1, 1], "ts": [at(0), at(4)], "cr": [at(5), at(6)], "x": [1, 2]},
             created="cr", ttl=timedelta(hours=3))
    ent = entity({"k": [1, 1, 1, 1], "t": [at(2), at(5), at(6), at(8)]})
    assert join(con, ent, v, cutoff=True)["x"] == [None, None, 2, None]
    assert join(con, ent, v)["x"] == [1, 2, 2, None]


def test_created_cutoff_on_a_view_without_created_times_changes_nothing(con) -> None:
    v = view(con, {"k": [1, 1], "ts": [at(0), at(1)], "x": [1, 2]})
    ent = entity({"k": [1, 1], "t": [at(0.5), at(3)]})
    assert join(con, ent, v, cutoff=True)["x"] == join(con, ent, v)["x"] == [1, 2]


# ------------------------------------------------------------------------------ keys

def test_several_key_columns_in_any_order_and_null_keys_never_match(con) -> None:
    a = view(con, {"user": [1, 1, None], "item": ["x", "y", "x"], "ts": [at(0)] * 3,
                   "score": [1, 2, 3]}, name="a", keys=("user", "item"), features=("score",))
    b = view(con, {"item": ["x", None], "ts": [at(0)] * 2, "pop": [100, 999]}, name="b",
             keys=("item",), features=("pop",))
    ent = entity({"user": [1, 1, None, 2], "item": ["y", "x", "x", None],
                  "t": [at(1)] * 4})
    out = join(con, ent, a, b)
    assert out["score"] == [2, 1, None, None]
    assert out["pop"] == [None, 100, 100, None]


def test_integer_keys_of_different_widths_match(con) -> None:
    v = view(con, {"k": [1, 2], "ts": [at(0)] * 2, "x": [1, 2]}, types={"k": pa.int16()})
    ent = entity({"k": [2], "t": [at(1)]}, k=pa.uint64())
    assert join(con, ent, v)["x"] == [2]


def test_an_all_null_entity_key_column_matches_nothing(con) -> None:
    v = view(con, {"k": ["a"], "ts": [at(0)], "x": [1]})
    ent = pa.table({"k": pa.array([None, None], pa.null()), "t": pa.array([at(1)] * 2)})
    assert join(con, ent, v)["x"] == [None, None]


def test_a_dictionary_encoded_entity_key_matches_text(con) -> None:
    v = view(con, {"k": ["a", "b"], "ts": [at(0)] * 2, "x": [1, 2]})
    ent = pa.table({"k": pa.array(["b", "a", "b"]).dictionary_encode(),
                    "t": pa.array([at(1)] * 3)})
    assert join(con, ent, v)["x"] == [2, 1, 2]


# ------------------------------------------------------------------------------ time types

def test_time_zones_are_instants_and_naive_times_are_utc(con) -> None:
    # Zoned Arrow columns (Paris, Tokyo) hold instants. The Python datetimes are made UTC
    # first: in some processes of the full suite pyarrow converted a fixed-offset datetime
    # by its wall clock, which is pyarrow's conversion, not the join's.
    def utc(moment: datetime) -> datetime:
        return moment.astimezone(UTC)

    paris = timezone(timedelta(hours=1))
    v = view(con, {"k": [1, 1], "ts": [utc(datetime(2024, 1, 1, 10, tzinfo=paris)),  # 09:00
                                       datetime(2024, 1, 1, 11, tzinfo=UTC)],
                   "x": ["nine", "eleven"]},
             types={"ts": pa.timestamp("us", "Europe/Paris")})
    ent = entity({"k": [1, 1, 1], "t": [utc(datetime(2024, 1, 1, 18, tzinfo=timezone(
        timedelta(hours=9)))),  # 09:00 UTC
        datetime(2024, 1, 1, 8, 59, tzinfo=UTC), utc(datetime(2024, 1, 1, 6, 0, tzinfo=timezone(
            timedelta(hours=-5))))]},  # 11:00 UTC
        t=pa.timestamp("ms", "Asia/Tokyo"))
    assert ent.column("t").type.tz == "Asia/Tokyo"
    # the view's naive times are read as UTC
    naive = view(con, {"k": [1], "ts": [datetime(2024, 1, 1, 11)], "x": ["eleven"]},
                 name="naive")
    assert join(con, ent, v)["x"] == ["nine", None, "eleven"]
    assert join(con, ent, naive)["x"] == [None, None, "eleven"]


def test_dates_nanoseconds_and_iso_texts(con) -> None:
    v = view(con, {"k": [1, 1], "ts": [date(2024, 1, 1), date(2024, 1, 3)], "x": [1, 3]})
    ent = pa.table({"k": [1, 1, 1],
                    "t": pa.array(np.array(["2024-01-02T23:59:59.999999999",
                                            "2024-01-03T00:00:00", "2023-12-31"],
                                           dtype="datetime64[ns]"))})
    assert join(con, ent, v)["x"] == [1, 3, None]  # ns are floored to µs, never rounded up
    aware = ent.set_column(1, "t", ent.column("t").cast(pa.timestamp("ns", "UTC")))
    assert join(con, aware, v)["x"] == [1, 3, None]
    texts = pa.table({"k": [1, 1], "t": ["2024-01-03T00:00:00Z", "2024-01-02 12:00"]})
    assert join(con, texts, v)["x"] == [3, 1]
    days = pa.table({"k": [1, 1], "t": pa.array([date(2024, 1, 2), date(2024, 1, 3)])})
    assert join(con, days, v)["x"] == [1, 3]


# ------------------------------------------------------------------------------ sources

def test_source_order_across_files_and_pushes_breaks_ties(tmp_path: Path) -> None:
    files = []
    for name, value in (("a.parquet", "from a"), ("b.parquet", "from b"),
                        ("push-001.parquet", "first push"), ("push-002.parquet", "last push")):
        path = tmp_path / name
        pq.write_table(pa.table({"k": [1, 2], "ts": [at(0), at(0)], "x": [value, value]}),
                       path)
        files.append(str(path))
    ent = entity({"k": [1, 2], "t": [at(1), at(1)]})
    scan = SourceScan("v", tuple(files[:2]), tuple(files[2:]))
    pushed = JoinView("v", scan.sql(), ("k",), "ts", None, ("x",), ("x",),
                      order_column=SEQ_COLUMN)
    assert point_in_time_join(ent, timestamp_column="t", views=[pushed]
                              ).column("x").to_pylist() == ["last push"] * 2
    sources_only = SourceScan("v", tuple(files[:2]))
    joined = point_in_time_join(ent, timestamp_column="t", views=[JoinView(
        "v", sources_only.sql(), ("k",), "ts", None, ("x",), ("x",),
        order_column=SEQ_COLUMN)])
    assert joined.column("x").to_pylist() == ["from b"] * 2


def test_without_an_order_column_the_scan_order_breaks_ties(tmp_path: Path) -> None:
    n = 300_000  # several row groups, read by several threads
    path = tmp_path / "many.parquet"
    pq.write_table(pa.table({"k": np.zeros(n, np.int64), "ts": pa.array([at(0)] * n),
                             "x": np.arange(n)}), path, row_group_size=20_000)
    v = JoinView("v", f"read_parquet(['{path}', '{path}'])", ("k",), "ts", None, ("x",),
                 ("x",))
    ent = entity({"k": [0], "t": [at(1)]})
    assert point_in_time_join(ent, timestamp_column="t", views=[v]
                              ).column("x").to_pylist() == [n - 1]
    # created_cutoff finds the winner, then joins its features back by its place in order
    created = JoinView("v", v.scan_sql, ("k",), "ts", "ts", ("x",), ("x",))
    assert point_in_time_join(ent, timestamp_column="t", views=[created], created_cutoff=True
                              ).column("x").to_pylist() == [n - 1]


def test_an_empty_view_gives_nulls_and_no_entity_rows_give_an_empty_table(con) -> None:
    v = view(con, {"k": [], "ts": [], "x": []},
             types={"k": pa.int64(), "ts": pa.timestamp("us"), "x": pa.float64()})
    ent = entity({"k": [1, 2], "t": [at(0), at(1)]})
    assert join(con, ent, v)["x"] == [None, None]
    empty = entity({"k": [], "t": []}, k=pa.int64(), t=pa.timestamp("us"))
    out = point_in_time_join(empty, timestamp_column="t", views=[v], connection=con)
    assert out.num_rows == 0 and out.schema.field("x").type == pa.float64()


def test_history_times_entity_rows_is_never_materialized() -> None:
    """20,000 entity rows x 20,000 rows of one key: a merge-then-filter would make 400M pairs;
    the ASOF join runs within a 100 MB limit."""
    n = 20_000
    base = np.datetime64("2024-01-01T00:00:00", "us")
    con = duckdb.connect(config={"memory_limit": "100MB"})
    try:
        con.register("v", pa.table({"k": np.zeros(n, np.int64),
                                    "ts": base + np.arange(n) * np.timedelta64(2, "s"),
                                    "x": np.arange(n)}))
        ent = pa.table({"k": np.zeros(n, np.int64),
                        "t": base + np.arange(n) * np.timedelta64(2, "s") + np.timedelta64(1, "s")})
        out = point_in_time_join(ent, timestamp_column="t", connection=con, views=[
            JoinView("v", "v", ("k",), "ts", None, ("x",), ("x",))])
    finally:
        con.close()
    assert out.column("x").to_pylist() == list(range(n))


# ------------------------------------------------------------------------------ wrong input

def test_entity_rows_without_times_name_the_count(con) -> None:
    v = view(con, {"k": [1], "ts": [at(0)], "x": [1]})
    with pytest.raises(InvalidInput, match=r"2 of 3 entity rows have no time \(null 't'\)"):
        join(con, entity({"k": [1, 1, 1], "t": [at(0), None, None]}), v)


@pytest.mark.parametrize(("rows", "message"), [
    ({"k": [1], "when": [at(0)]}, "no timestamp column 't'.*'k', 'when'"),
    ({"k": [1], "t": [1.5]}, "timestamp column 't' is double, not a timestamp or date"),
    ({"key": [1], "t": [at(0)]}, "no join key 'k' of feature view 'v'"),
    ({"k": [1], "t": [at(0)], "x": [0]}, "feature column 'x' of view 'v' is already a column"),
    ({"k": ["1"], "t": [at(0)]}, "join key 'k' is BIGINT in its rows but VARCHAR in the entity"),
    ({"k": [1], "t": ["yesterday"]}, "entity rows' column 't'"),
])
def test_wrong_entity_rows_say_what_is_wrong(con, rows: dict[str, list[Any]],
                                             message: str) -> None:
    v = view(con, {"k": [1], "ts": [at(0)], "x": [1]})
    with pytest.raises(InvalidInput, match=message):
        point_in_time_join(pa.table(rows), timestamp_column="t", views=[v], connection=con)


def test_wrong_views_say_what_is_wrong(con) -> None:
    ent = entity({"k": [1], "t": [at(0)]})
    good = view(con, {"k": [1], "ts": [at(0)], "x": [1], "y": ["a"]}, features=("x", "y"))
    with pytest.raises(InvalidInput, match="feature column 'x' comes from views 'v' and 'w'"):
        point_in_time_join(ent, timestamp_column="t", connection=con, views=[
            good, JoinView("w", "v", ("k",), "ts", None, ("x",), ("x",))])
    with pytest.raises(InvalidInput, match=r"feature view 'w': its rows have no column "
                                           r"'speed', 'made' \(they have 'k', 'ts', 'x', 'y'\)"):
        point_in_time_join(ent, timestamp_column="t", connection=con, views=[
            JoinView("w", "v", ("k",), "ts", "made", ("speed",), ("speed",))])
    with pytest.raises(InvalidInput, match="feature view 'w': cannot read its rows: Conversion"):
        point_in_time_join(ent, timestamp_column="t", connection=con, views=[
            JoinView("w", "(SELECT k, x, 'soon' AS y FROM v)", ("k",), "y", None, ("x",),
                     ("x",))])
    with pytest.raises(InvalidInput, match="feature view 'w': cannot read its rows"):
        point_in_time_join(ent, timestamp_column="t", connection=con, views=[
            JoinView("w", "read_parquet('/nonexistent/x.parquet')", ("k",), "ts", None,
                     ("x",), ("x",))])
    with pytest.raises(InvalidInput, match="order column 'dup' must be unique"):
        point_in_time_join(ent, timestamp_column="t", connection=con, created_cutoff=True,
                           views=[JoinView("w", "(SELECT *, 1 AS dup FROM v UNION ALL "
                                                "SELECT *, 1 AS dup FROM v)", ("k",), "ts",
                                           "ts", ("x",), ("x",), order_column="dup")])
    with pytest.raises(InvalidInput, match="2 features but 1 output columns"):
        JoinView("w", "v", ("k",), "ts", None, ("x", "y"), ("x",))
    with pytest.raises(InvalidInput, match="has no join keys"):
        JoinView("w", "v", (), "ts", None, ("x",), ("x",))
    with pytest.raises(InvalidInput, match="ttl must be a positive timedelta"):
        JoinView("w", "v", ("k",), "ts", None, ("x",), ("x",), ttl=timedelta(0))
    with pytest.raises(InvalidInput, match="must be a pyarrow Table"):
        point_in_time_join({"k": [1]}, timestamp_column="t", views=[good])  # type: ignore[arg-type]
