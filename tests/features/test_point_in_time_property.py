"""The ASOF point-in-time join equals a brute-force reference on random data.

Times sit on a coarse grid so that equal event times, equal created times, rows exactly on
the ttl edge (E == T - ttl) and late rows (created after E, after T) are common; keys have
one or two columns, nulls on both sides; views may be empty; rows may come in any physical
order with an explicit source-order column.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratchet.features.point_in_time import JoinView, point_in_time_join
from tests.features.reference_join import ReferenceView, reference_join

BASE = datetime(2024, 3, 1, tzinfo=UTC)
# (arrow type, how a grid point in half-days becomes a value of it)
TIME_KINDS = {
    "us naive": pa.timestamp("us"),
    "s utc": pa.timestamp("s", "UTC"),
    "ms tokyo": pa.timestamp("ms", "Asia/Tokyo"),
    "date": pa.date32(),
}


def _time(kind: str, grid: int | None) -> Any:
    if grid is None:
        return None
    if kind == "date":
        return (BASE + timedelta(days=grid // 2)).date()
    value = BASE + timedelta(hours=12 * grid)
    return value.replace(tzinfo=None) if kind == "us naive" else value


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


grid = st.integers(0, 8)


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, Any]:
    n_keys = draw(st.integers(1, 2))
    text_keys = draw(st.booleans())
    null_keys = draw(st.booleans())

    def key() -> Any:
        if null_keys and draw(st.integers(0, 7)) == 0:
            return None
        value = draw(st.integers(0, 2))
        return f"id{value}" if text_keys else value

    entity_kind = draw(st.sampled_from(sorted(TIME_KINDS)))
    entity = [{**{f"k{i}": key() for i in range(n_keys)},
               "t": draw(grid), "label": n} for n in range(draw(st.integers(0, 10)))]
    views = []
    for v in range(draw(st.integers(1, 3))):
        keys = tuple(f"k{i}" for i in range(n_keys)) if v == 0 or n_keys == 1 else \
            draw(st.sampled_from([("k0",), ("k1",), ("k0", "k1"), ("k1", "k0")]))
        has_created = draw(st.booleans())
        rows = []
        for n in range(draw(st.integers(0, 14))):
            event = None if draw(st.integers(0, 15)) == 0 else draw(grid)
            created = None
            if has_created and draw(st.integers(0, 4)) > 0:
                created = (event or 0) + draw(st.integers(-1, 4))  # late rows: created > E
            rows.append({**{k: key() for k in keys}, "ts": event, "cr": created,
                         "a": n, "b": draw(st.one_of(st.none(), st.text("xyz", max_size=2)))})
        views.append({
            "keys": keys, "rows": rows, "has_created": has_created,
            "kind": draw(st.sampled_from(sorted(TIME_KINDS))),
            "created_kind": draw(st.sampled_from(sorted(TIME_KINDS))),
            "ttl": draw(st.sampled_from([None, timedelta(hours=12), timedelta(days=1),
                                         timedelta(days=2)])),
            "shuffle": draw(st.permutations(range(len(rows)))) if draw(st.booleans()) else None,
        })
    return {"entity": entity, "entity_kind": entity_kind, "views": views, "n_keys": n_keys,
            "text_keys": text_keys,
            "created_cutoff": draw(st.booleans())}


def _entity_table(s: dict[str, Any]) -> pa.Table:
    rows = s["entity"]
    columns: dict[str, pa.Array] = {}
    for i in range(s["n_keys"]):
        columns[f"k{i}"] = pa.array([r[f"k{i}"] for r in rows],
                                    pa.string() if s["text_keys"] else pa.int64())
    columns["t"] = pa.array([_time(s["entity_kind"], r["t"]) for r in rows],
                            TIME_KINDS[s["entity_kind"]])
    columns["label"] = pa.array([r["label"] for r in rows], pa.int64())
    return pa.table(columns)


def _view_table(view: dict[str, Any], text_keys: bool) -> pa.Table:
    rows = view["rows"]
    order = view["shuffle"] if view["shuffle"] is not None else list(range(len(rows)))
    placed = [rows[i] for i in order]
    columns: dict[str, pa.Array] = {}
    for key in view["keys"]:
        columns[key] = pa.array([r[key] for r in placed],
                                pa.string() if text_keys else pa.int64())
    columns["ts"] = pa.array([_time(view["kind"], r["ts"]) for r in placed],
                             TIME_KINDS[view["kind"]])
    if view["has_created"]:
        columns["cr"] = pa.array([_time(view["created_kind"], r["cr"]) for r in placed],
                                 TIME_KINDS[view["created_kind"]])
    columns["a"] = pa.array([r["a"] for r in placed], pa.int64())
    columns["b"] = pa.array([r["b"] for r in placed], pa.string())
    columns["seq"] = pa.array(order, pa.int64())
    return pa.table(columns)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario())
def test_the_asof_join_equals_the_brute_force_reference(
        con: duckdb.DuckDBPyConnection, s: dict[str, Any]) -> None:
    entity = _entity_table(s)
    text_keys = s["text_keys"]
    join_views, reference_views = [], []
    for v, view in enumerate(s["views"]):
        table = _view_table(view, text_keys)
        con.register(f"v{v}", table)
        created = "cr" if view["has_created"] else None
        columns = (f"v{v}_a", f"v{v}_b")
        join_views.append(JoinView(
            f"v{v}", f"v{v}", view["keys"], "ts", created, ("a", "b"), columns, ttl=view["ttl"],
            order_column="seq" if view["shuffle"] is not None else None))
        # The reference reads the rows in source order, as Python values.
        in_order = table.sort_by("seq").to_pylist()
        reference_views.append(ReferenceView(in_order, view["keys"], "ts", created,
                                             ("a", "b"), columns, view["ttl"]))
    got = point_in_time_join(entity, timestamp_column="t", views=join_views,
                             created_cutoff=s["created_cutoff"], connection=con)
    expected = reference_join(entity.to_pylist(), "t", reference_views,
                              created_cutoff=s["created_cutoff"])
    assert got.column_names == [*entity.column_names, *expected]
    assert got.select(entity.column_names).equals(entity)
    for column, values in expected.items():
        assert got.column(column).to_pylist() == values, column


def test_the_reference_itself_on_a_hand_checked_case() -> None:
    """The reference is the oracle: check it once by hand (equal E: greatest created wins;
    equal created: the later row; the ttl edge is inclusive; a created cutoff hides a late
    row)."""
    t0 = datetime(2024, 1, 1)
    rows = [{"k": 1, "ts": t0, "cr": t0, "x": "first"},
            {"k": 1, "ts": t0, "cr": t0 + timedelta(hours=1), "x": "later write"},
            {"k": 1, "ts": t0, "cr": t0 + timedelta(hours=1), "x": "same write, later row"},
            {"k": 1, "ts": t0 + timedelta(days=1), "cr": t0 + timedelta(days=5), "x": "late"}]
    view = ReferenceView(rows, ("k",), "ts", "cr", ("x",), ("x",), timedelta(days=1))
    entity = [{"k": 1, "t": t0 + timedelta(hours=2)},
              {"k": 1, "t": t0 + timedelta(days=1, hours=1)},
              {"k": 1, "t": t0 + timedelta(days=2, hours=1)},
              {"k": 2, "t": t0 + timedelta(hours=2)},
              {"k": None, "t": t0 + timedelta(hours=2)},
              {"k": 1, "t": date(2024, 1, 2)}]
    assert reference_join(entity, "t", [view])["x"] == [
        "same write, later row", "late", None, None, None, "late"]
    assert reference_join(entity, "t", [view], created_cutoff=True)["x"] == [
        "same write, later row", None, None, None, None, "same write, later row"]
