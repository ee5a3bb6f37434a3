"""push: validated rows to the online store (newest wins) and the view's offline log
(Parquet files in push order, typed like the source, read with it). Both stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ratchet
from ratchet.config import Settings
from ratchet.data.duckdb_connection import duckdb_connection
from ratchet.errors import InvalidInput, NotFound
from ratchet.features import Entity, FeatureView
from ratchet.features.materialization import materialize
from ratchet.features.online import get_online_features
from ratchet.features.online_connections import close_shared_online_stores, open_online_store
from ratchet.features.pushing import push
from ratchet.features.sources import SEQ_COLUMN, pushed_dir, view_files
from ratchet.workspace import Workspace

REDIS_URL = "redis://127.0.0.1:6379/13"
pytestmark = pytest.mark.xdist_group("redis_db13")

DRIVER = Entity("driver", join_keys=["driver_id"])
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


@pytest.fixture(params=["sqlite", "redis"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    home = tmp_path / ".ratchet"
    online = (f"sqlite:///{tmp_path / 'online.sqlite'}" if request.param == "sqlite"
              else REDIS_URL)
    if request.param == "redis":
        _flush_redis()
    workspace = Workspace(Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                                   artifacts_uri=str(home / "artifacts"), online_store=online))
    # the source: naive timestamps (UTC), int32 trips, float32 rating
    pq.write_table(pa.table({
        "driver_id": pa.array([1, 2], pa.int64()),
        "event_ts": pa.array([datetime(2026, 1, 1), datetime(2026, 1, 1)], pa.timestamp("us")),
        "created": pa.array([datetime(2026, 1, 1)] * 2, pa.timestamp("us")),
        "trips": pa.array([10, 20], pa.int32()),
        "rating": pa.array([4.0, 3.0], pa.float32())}), tmp_path / "stats.parquet")
    view = FeatureView("driver_stats", entities=[DRIVER], source=str(tmp_path / "stats.parquet"),
                       timestamp_field="event_ts", created_timestamp_field="created",
                       features=["trips", "rating"])
    ratchet.features.apply([view], workspace=workspace)
    materialize(end=T0 + timedelta(days=1), workspace=workspace)
    yield workspace
    close_shared_online_stores()
    if request.param == "redis":
        _flush_redis()


def _online(ws: Workspace, ids: list[int], now: datetime) -> list[object]:
    result = get_online_features(["driver_stats:trips"], [{"driver_id": i} for i in ids],
                                 now=now, workspace=ws)
    return result.columns["trips"]


def _all_rows(ws: Workspace, view: str = "driver_stats") -> list[tuple[object, ...]]:
    """Every row a training set reads for the view, in source order."""
    feature_view, _version = ratchet.features.FeatureCatalog(ws).view(view)
    with duckdb_connection() as con:
        return con.execute(f"SELECT driver_id, trips FROM {view_files(feature_view, ws).sql()} "
                           f"ORDER BY {SEQ_COLUMN}").fetchall()


def test_push_goes_online_and_to_the_offline_log(ws: Workspace) -> None:
    now = T0 + timedelta(days=2)
    result = push("driver_stats", pd.DataFrame({
        "driver_id": [1, 3, 3], "event_ts": [T0 + timedelta(hours=1)] * 3,
        "trips": [11, 30, 31], "rating": [4.1, 2.0, 2.5]}), workspace=ws)
    assert (result.rows, result.online_rows) == (3, 2)
    assert _online(ws, [1, 2, 3], now) == [11, 20, 31]  # 3: the later row of the push
    files = sorted(pushed_dir(ws, "driver_stats").glob("*.parquet"))
    assert [str(f) for f in files] == [result.offline_file]
    assert _all_rows(ws) == [(1, 10), (2, 20), (1, 11), (3, 30), (3, 31)]


def test_pushed_files_are_typed_like_the_source(ws: Workspace, tmp_path: Path) -> None:
    result = push("driver_stats", [{"driver_id": 5, "event_ts": "2026-01-01T02:00:00+01:00",
                                    "trips": 1, "rating": 0.1}], workspace=ws)
    assert result.offline_file is not None
    schema = pq.read_schema(result.offline_file)
    source = pq.read_schema(tmp_path / "stats.parquet")
    assert schema.names == source.names
    assert [schema.field(n).type for n in schema.names] == [source.field(n).type
                                                            for n in source.names]
    table = pq.read_table(result.offline_file)
    # the offset was honoured: 02:00+01:00 is 01:00 UTC, stored naive like the source
    assert table.column("event_ts")[0].as_py() == datetime(2026, 1, 1, 1, 0)
    # created filled with the push's time
    created = table.column("created")[0].as_py()
    assert abs((created - datetime.now(UTC).replace(tzinfo=None)).total_seconds()) < 60


def test_an_older_pushed_row_does_not_replace_a_newer_one(ws: Workspace) -> None:
    push("driver_stats", {"driver_id": [1], "event_ts": [T0 - timedelta(days=1)],
                          "trips": [0], "rating": [0.0]}, workspace=ws)
    assert _online(ws, [1], T0 + timedelta(days=1)) == [10]
    # same event time, later created time: replaces
    push("driver_stats", {"driver_id": [1], "event_ts": [T0], "created": [T0 + timedelta(1)],
                          "trips": [12], "rating": [0.0]}, workspace=ws)
    assert _online(ws, [1], T0 + timedelta(days=2)) == [12]


def test_to_offline_or_online_only(ws: Workspace) -> None:
    rows = {"driver_id": [2], "event_ts": [T0 + timedelta(hours=1)], "trips": [21],
            "rating": [1.0]}
    offline = push("driver_stats", rows, to="offline", workspace=ws)
    assert offline.online_rows == 0 and offline.offline_file is not None
    assert _online(ws, [2], T0 + timedelta(days=1)) == [20]
    online = push("driver_stats", {**rows, "trips": [22]}, to="online", workspace=ws)
    assert online.offline_file is None and online.online_rows == 1
    assert _online(ws, [2], T0 + timedelta(days=1)) == [22]
    assert [r for r in _all_rows(ws) if r[0] == 2] == [(2, 20), (2, 21)]


def test_future_rows_wait_in_the_offline_log_for_materialize(ws: Workspace) -> None:
    future = datetime.now(UTC) + timedelta(days=1)
    result = push("driver_stats", {"driver_id": [1], "event_ts": [future], "trips": [99],
                                   "rating": [1.0]}, workspace=ws)
    assert result.online_rows == 0 and result.offline_file is not None
    assert _online(ws, [1], T0 + timedelta(days=1)) == [10]
    materialize(start=T0, end=future + timedelta(seconds=1), workspace=ws)
    assert _online(ws, [1], future + timedelta(seconds=2)) == [99]


def test_pushes_sort_in_push_order(ws: Workspace) -> None:
    for i in range(6):
        push("driver_stats", {"driver_id": [7], "event_ts": [T0], "trips": [i],
                              "rating": [1.0]}, to="offline", workspace=ws)
    assert [r[1] for r in _all_rows(ws) if r[0] == 7] == list(range(6))
    # so materialize's source-order tie-break takes the last push
    materialize(start=T0 - timedelta(days=1), end=T0 + timedelta(days=1), workspace=ws)
    assert _online(ws, [7], T0 + timedelta(days=1)) == [5]


def test_concurrent_pushes_all_land(ws: Workspace) -> None:
    errors: list[BaseException] = []

    def pusher(k: int) -> None:
        try:
            push("driver_stats", {"driver_id": [100 + k], "event_ts": [T0], "trips": [k],
                                  "rating": [1.0]}, workspace=ws)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=pusher, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _online(ws, [100, 101, 102, 103], T0 + timedelta(days=1)) == [0, 1, 2, 3]
    assert len(list(pushed_dir(ws, "driver_stats").glob("*.parquet"))) == 4


def test_an_empty_push_does_nothing(ws: Workspace) -> None:
    result = push("driver_stats", pd.DataFrame({"driver_id": pd.Series([], dtype="int64"),
                                                "event_ts": pd.Series([], dtype="datetime64[us]"),
                                                "trips": [], "rating": []}), workspace=ws)
    assert (result.rows, result.offline_file) == (0, None)
    assert not pushed_dir(ws, "driver_stats").exists()


def test_wrong_input(ws: Workspace) -> None:
    good = {"driver_id": [1], "event_ts": [T0], "trips": [1], "rating": [1.0]}
    with pytest.raises(InvalidInput, match="missing column 'rating'"):
        push("driver_stats", {k: v for k, v in good.items() if k != "rating"}, workspace=ws)
    with pytest.raises(InvalidInput, match="unknown column 'speed'"):
        push("driver_stats", {**good, "speed": [3]}, workspace=ws)
    with pytest.raises(InvalidInput, match="1 rows have no 'driver_id'"):
        push("driver_stats", {**good, "driver_id": [None]}, workspace=ws)
    with pytest.raises(InvalidInput, match="1 rows have no 'event_ts'"):
        push("driver_stats", {**good, "event_ts": [None]}, workspace=ws)
    with pytest.raises(InvalidInput, match="do not fit the view's column types"):
        push("driver_stats", {**good, "trips": ["many"]}, workspace=ws)
    with pytest.raises(InvalidInput, match="do not fit the view's column types"):
        push("driver_stats", {**good, "event_ts": ["tomorrow"]}, workspace=ws)
    with pytest.raises(InvalidInput, match="to='sideways'"):
        push("driver_stats", good, to="sideways", workspace=ws)
    with pytest.raises(InvalidInput, match="rows must be dicts"):
        push("driver_stats", [1, 2], workspace=ws)
    with pytest.raises(InvalidInput, match="cannot be read as a table"):
        push("driver_stats", [{"driver_id": 1, "event_ts": T0, "trips": 1, "rating": 1.0},
                              {"driver_id": "x", "event_ts": T0, "trips": 1, "rating": 1.0}],
             workspace=ws)
    with pytest.raises(InvalidInput, match="push a pandas DataFrame"):
        push("driver_stats", 42, workspace=ws)
    with pytest.raises(InvalidInput, match="the view is a feature view's name"):
        push(7, good, workspace=ws)  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="no feature view 'nope'"):
        push("nope", good, workspace=ws)
    # nothing was written by any of them
    assert not pushed_dir(ws, "driver_stats").exists()
    assert _online(ws, [1], T0 + timedelta(days=1)) == [10]


def test_offline_only_views_take_offline_pushes_only(ws: Workspace, tmp_path: Path) -> None:
    view = FeatureView("archive", entities=[DRIVER], source=str(tmp_path / "stats.parquet"),
                       timestamp_field="event_ts", features=["trips"], online=False)
    ratchet.features.apply([view], workspace=ws)
    rows = {"driver_id": [1], "event_ts": [T0], "trips": [5]}
    with pytest.raises(InvalidInput, match="offline-only"):
        push("archive", rows, workspace=ws)
    assert push("archive", rows, to="offline", workspace=ws).offline_file is not None
    store = open_online_store(ws.settings.online_store_uri)
    assert store.count("archive") == 0
    store.close()


def test_zoned_times_are_converted_to_utc(ws: Workspace) -> None:
    paris = pd.Timestamp("2026-01-01 03:00", tz="Europe/Paris")  # 02:00 UTC
    result = push("driver_stats", pd.DataFrame({"driver_id": [8], "event_ts": [paris],
                                                "created": [paris], "trips": [1],
                                                "rating": [1.0]}), workspace=ws)
    assert result.offline_file is not None
    table = pq.read_table(result.offline_file)
    assert table.column("event_ts")[0].as_py() == datetime(2026, 1, 1, 2, 0)
    assert table.column("created")[0].as_py() == datetime(2026, 1, 1, 2, 0)
    got = get_online_features(["driver_stats:trips"], [{"driver_id": 8}],
                              now=T0 + timedelta(hours=3), workspace=ws)
    assert got.ages["driver_stats"] == [3600.0]


def test_repeated_columns_are_refused(ws: Workspace) -> None:
    frame = pd.DataFrame([[1, T0, 1, 1.0, 2]],
                         columns=["driver_id", "event_ts", "trips", "rating", "trips"])
    with pytest.raises(InvalidInput, match="Duplicate column names"):
        push("driver_stats", frame, workspace=ws)
