"""materialize: the latest row per entity (E, created, source order) into the online store,
incremental runs, both stores (SQLite file, real Redis on 127.0.0.1:6379 db 13)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import ratchet
from ratchet.config import Settings
from ratchet.errors import InvalidInput, NotFound
from ratchet.features import Entity, FeatureView
from ratchet.features.materialization import materialize
from ratchet.features.online import get_online_features
from ratchet.features.online_connections import close_shared_online_stores, open_online_store
from ratchet.features.online_store import encode_key
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
    yield Workspace(Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                             artifacts_uri=str(home / "artifacts"), online_store=online))
    close_shared_online_stores()
    if request.param == "redis":
        _flush_redis()


def _stats_view(source: Path, **changes: Any) -> FeatureView:
    args: dict[str, Any] = {"entities": [DRIVER], "source": str(source),
                            "timestamp_field": "event_ts", "features": ["trips", "rating"]}
    args.update(changes)
    return FeatureView("driver_stats", **args)


def _online(ws: Workspace, view: str, keys: list[Any], features: list[str],
            key: str = "driver_id") -> list[list[Any]]:
    """Each entity's stored values (ignoring ttl and age: the store's entry)."""
    store = open_online_store(ws.settings.online_store_uri)
    try:
        entries = store.read([(view, encode_key([k]) or "") for k in keys])
    finally:
        store.close()
    return [[None if e is None else e.values.get(f) for f in features] for e in entries]


def test_latest_row_per_entity_by_event_created_and_source_order(ws: Workspace,
                                                                 tmp_path: Path) -> None:
    day = timedelta(days=1)
    frame = pd.DataFrame({
        "driver_id": [1, 1, 2, 2, 2, 3, 3, 4, 4],
        "event_ts": [T0, T0 + day, T0, T0, T0, T0, T0, T0, T0],
        "created": [T0, T0, T0 + day, T0 + 2 * day, T0, T0, T0, None, T0],
        "trips": [1, 2, 10, 20, 30, 100, 200, 7, 8],
        "rating": [1.0, 2.0, 1.0, 2.0, 3.0, 1.0, 2.0, 1.0, 2.0],
    })
    frame.to_parquet(tmp_path / "stats.parquet")
    view = _stats_view(tmp_path / "stats.parquet", created_timestamp_field="created")
    ratchet.features.apply([DRIVER, view], workspace=ws)
    [result] = materialize(workspace=ws)
    assert (result.view, result.view_version, result.rows, result.start_at) == (
        "driver_stats", 1, 4, None)
    got = _online(ws, "driver_stats", [1, 2, 3, 4, 5], ["trips", "rating"])
    # 1: the later event; 2: the latest created; 3: full tie, the later row; 4: null created
    # sorts lowest; 5: no rows
    assert got == [[2, 2.0], [20, 2.0], [200, 2.0], [8, 2.0], [None, None]]


def test_values_keep_their_types_nan_is_null(ws: Workspace, tmp_path: Path) -> None:
    import datetime as dt

    pd.DataFrame({"driver_id": ["a", "b"], "event_ts": [T0, T0],
                  "f32": np.array([0.1, np.nan], dtype="float32"),
                  "i": [1, 2], "s": ["x", None], "b": [True, False],
                  "when": pd.to_datetime(["2026-01-02 03:04:05.25", None]),
                  "at": pd.to_datetime(["2026-01-02 03:04:05+02:00"] * 2, utc=True),
                  "day": [dt.date(1969, 12, 30), dt.date(2026, 3, 1)],
                  "tags": [["p", "q"], []]}
                 ).to_parquet(tmp_path / "t.parquet")
    features = ["f32", "i", "s", "b", "when", "at", "day", "tags"]
    view = FeatureView("typed", entities=[Entity("d", join_keys=["driver_id"])],
                       source=str(tmp_path / "t.parquet"), timestamp_field="event_ts",
                       features=features)
    ratchet.features.apply([view], workspace=ws)
    materialize(workspace=ws)
    got = _online(ws, "typed", ["a", "b", 1], features)
    assert got[0] == [float(np.float32(0.1)), 1, "x", True,
                      dt.datetime(2026, 1, 2, 3, 4, 5, 250_000),
                      dt.datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC),
                      dt.date(1969, 12, 30), ["p", "q"]]
    assert got[1] == [None, 2, None, False, None, dt.datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC),
                      dt.date(2026, 3, 1), []]
    assert got[2] == [None] * len(features)  # the integer 1 is not the string "1"/"a"
    # the same types as the training set's
    offline = ratchet.features.training_set(
        pd.DataFrame({"driver_id": ["a"], "event_timestamp": [T0 + timedelta(days=1)]}),
        [f"typed:{f}" for f in ("when", "at", "day")], workspace=ws).to_arrow()
    assert [offline.column(f)[0].as_py() for f in ("when", "at", "day")] == got[0][4:7]


def test_incremental_runs_start_where_the_last_ended(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "stats"
    folder.mkdir()
    pd.DataFrame({"driver_id": [1, 2], "event_ts": [T0, T0], "trips": [1, 1],
                  "rating": [1.0, 1.0]}).to_parquet(folder / "a.parquet")
    ratchet.features.apply([_stats_view(folder)], workspace=ws)
    first = materialize(end=T0 + timedelta(hours=1), workspace=ws)[0]
    assert first.rows == 2 and first.start_at is None
    # new rows: one after the last end, one "late" (event time before it)
    pd.DataFrame({"driver_id": [1, 2], "event_ts": [T0 + timedelta(hours=2),
                                                    T0 + timedelta(minutes=30)],
                  "trips": [5, 6], "rating": [5.0, 6.0]}).to_parquet(folder / "b.parquet")
    second = materialize(end=T0 + timedelta(hours=3), workspace=ws)[0]
    assert second.start == T0 + timedelta(hours=1) and second.rows == 1
    assert _online(ws, "driver_stats", [1, 2], ["trips"]) == [[5], [1]]
    up_to_date = materialize(end=T0 + timedelta(hours=3), workspace=ws)[0]
    assert up_to_date.rows == 0 and up_to_date.skipped
    # the late row needs an explicit start
    again = materialize(start=T0, end=T0 + timedelta(hours=3), workspace=ws)[0]
    assert again.rows == 2
    assert _online(ws, "driver_stats", [1, 2], ["trips"]) == [[5], [6]]
    last = ws.stores.features.last_materialization("driver_stats",
                                                   open_online_store(
                                                       ws.settings.online_store_uri).uri)
    assert last is not None and last.end_at == again.end_at


def test_end_excludes_later_rows_and_start_is_exclusive(ws: Workspace, tmp_path: Path) -> None:
    pd.DataFrame({"driver_id": [1, 1, 2], "event_ts": [T0, T0 + timedelta(days=2), T0],
                  "trips": [1, 2, 3], "rating": [1.0, 2.0, 3.0]}
                 ).to_parquet(tmp_path / "s.parquet")
    ratchet.features.apply([_stats_view(tmp_path / "s.parquet")], workspace=ws)
    [r] = materialize(start=T0, end=T0 + timedelta(days=1), workspace=ws)
    assert r.rows == 0  # both rows at T0 are not after the exclusive start
    [r] = materialize(start=T0 - timedelta(seconds=1), end=T0 + timedelta(days=1),
                      workspace=ws)
    assert r.rows == 2
    assert _online(ws, "driver_stats", [1, 2], ["trips"]) == [[1], [3]]


def test_a_new_view_version_rematerializes_from_the_beginning(ws: Workspace,
                                                               tmp_path: Path) -> None:
    pd.DataFrame({"driver_id": [1], "event_ts": [T0], "trips": [1], "rating": [1.0]}
                 ).to_parquet(tmp_path / "s.parquet")
    ratchet.features.apply([_stats_view(tmp_path / "s.parquet")], workspace=ws)
    materialize(workspace=ws)
    ratchet.features.apply([_stats_view(tmp_path / "s.parquet", ttl=timedelta(days=3))],
                           workspace=ws)
    [r] = materialize(workspace=ws)
    assert r.view_version == 2 and r.start_at is None and r.rows == 1
    store = open_online_store(ws.settings.online_store_uri)
    entry = store.read([("driver_stats", "[1]")])[0]
    store.close()
    assert entry is not None and entry.view_version == 2


def test_several_keys_and_views_and_offline_only_views(ws: Workspace, tmp_path: Path) -> None:
    pair = Entity("pair", join_keys=["a", "b"])
    pd.DataFrame({"a": [1, 12, 1], "b": ["23", "3", "23"], "ts": [T0, T0, T0 + timedelta(1)],
                  "x": [1, 2, 3]}).to_parquet(tmp_path / "p.parquet")
    pairs = FeatureView("pairs", entities=[pair], source=str(tmp_path / "p.parquet"),
                        timestamp_field="ts", features=["x"])
    pd.DataFrame({"driver_id": [1], "event_ts": [T0], "trips": [1], "rating": [1.0]}
                 ).to_parquet(tmp_path / "s.parquet")
    offline = _stats_view(tmp_path / "s.parquet", online=False)
    ratchet.features.apply([pairs, offline], workspace=ws)
    results = materialize(workspace=ws)
    assert [(r.view, r.rows) for r in results] == [("pairs", 2)]
    store = open_online_store(ws.settings.online_store_uri)
    entries = store.read([("pairs", encode_key([1, "23"]) or ""),
                          ("pairs", encode_key([12, "3"]) or ""),
                          ("pairs", encode_key([1, 23]) or "")])
    store.close()
    assert [e.values["x"] if e else None for e in entries] == [3, 2, None]
    with pytest.raises(InvalidInput, match="offline-only"):
        materialize(["driver_stats"], workspace=ws)
    with pytest.raises(NotFound):
        materialize(["nope"], workspace=ws)


def test_batches_stream_with_progress(ws: Workspace, tmp_path: Path) -> None:
    n = 25
    pd.DataFrame({"driver_id": range(n), "event_ts": [T0] * n, "trips": range(n),
                  "rating": [0.5] * n}).to_csv(tmp_path / "s.csv", index=False)
    ratchet.features.apply([_stats_view(tmp_path / "s.csv")], workspace=ws)
    seen: list[tuple[str, int, int]] = []
    [r] = materialize(workspace=ws, batch_rows=10,
                      progress=lambda v, done, total: seen.append((v, done, total)))
    assert r.rows == n
    assert seen[0] == ("driver_stats", 0, n) and seen[-1] == ("driver_stats", n, n)
    assert len(seen) == 4  # 0, then three batches
    assert _online(ws, "driver_stats", [0, 24], ["trips"]) == [[0], [24]]


def test_wrong_input(ws: Workspace, tmp_path: Path) -> None:
    pd.DataFrame({"driver_id": [1], "event_ts": ["not a time"], "trips": [1], "rating": [1.0]}
                 ).to_parquet(tmp_path / "s.parquet")
    ratchet.features.apply([_stats_view(tmp_path / "s.parquet")], workspace=ws)
    with pytest.raises(InvalidInput, match="not before end"):
        materialize(start=T0, end=T0, workspace=ws)
    with pytest.raises(InvalidInput, match="ISO 8601"):
        materialize(start="yesterday", workspace=ws)
    with pytest.raises(InvalidInput, match="views must be feature view names"):
        materialize(123, workspace=ws)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="views must be feature view names"):
        materialize([1], workspace=ws)  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="batch_rows"):
        materialize(batch_rows=0, workspace=ws)
    with pytest.raises(InvalidInput, match="feature view 'driver_stats': cannot read"):
        materialize(workspace=ws)  # a text timestamp that is not a time


def test_integer_timestamps_are_refused_clearly(ws: Workspace, tmp_path: Path) -> None:
    pd.DataFrame({"driver_id": [1], "event_ts": [1_700_000_000], "trips": [1],
                  "rating": [1.0]}).to_parquet(tmp_path / "s.parquet")
    ratchet.features.apply([_stats_view(tmp_path / "s.parquet")], workspace=ws)
    with pytest.raises(InvalidInput, match="'event_ts' is BIGINT, not a timestamp"):
        materialize(workspace=ws)


def test_online_equals_a_brute_force_latest_row(ws: Workspace, tmp_path: Path) -> None:
    """Random rows with many ties, two source files: what is online equals, per entity,
    the maximum by (E, created with nulls lowest, source order) over rows with E <= end."""
    rng = random.Random(19)
    folder = tmp_path / "src"
    folder.mkdir()
    rows: list[dict[str, Any]] = []
    for part in ("a", "b"):
        chunk = [{"driver_id": rng.randrange(30),
                  "event_ts": T0 + timedelta(hours=rng.randrange(6)),
                  "created": (None if rng.random() < 0.3
                              else T0 + timedelta(hours=rng.randrange(3))),
                  "trips": rng.randrange(1000), "rating": rng.random()}
                 for _ in range(300)]
        pd.DataFrame(chunk).to_parquet(folder / f"{part}.parquet")
        rows.extend(chunk)  # source order: file a then file b, rows in file order
    view = _stats_view(folder, created_timestamp_field="created")
    ratchet.features.apply([view], workspace=ws)
    end = T0 + timedelta(hours=4)
    materialize(end=end, workspace=ws)
    lowest = datetime.min.replace(tzinfo=UTC)
    expected: dict[int, dict[str, Any]] = {}
    for order, row in enumerate(rows):
        if row["event_ts"] > end:
            continue
        rank = (row["event_ts"], row["created"] or lowest, order)
        best = expected.get(row["driver_id"])
        if best is None or rank > best["rank"]:
            expected[row["driver_id"]] = {**row, "rank": rank}
    drivers = list(range(30))
    got = _online(ws, "driver_stats", drivers, ["trips", "rating"])
    want = [[expected[d]["trips"], expected[d]["rating"]] if d in expected else [None, None]
            for d in drivers]
    assert got == want
    # and the public lookup at T=end agrees, with ages
    result = get_online_features(["driver_stats:trips"], [{"driver_id": d} for d in drivers],
                                 now=end, workspace=ws)
    assert result.columns["trips"] == [w[0] for w in want]
    ages = result.ages["driver_stats"]
    for d, age in zip(drivers, ages, strict=True):
        if d in expected:
            assert age == (end - expected[d]["event_ts"]).total_seconds()
        else:
            assert age is None


@pytest.mark.parametrize("ttl_hours", [None, 2])
def test_online_equals_the_training_set_at_now(ws: Workspace, tmp_path: Path,
                                               ttl_hours: int | None) -> None:
    """No skew: random rows with ties, late rows and pushes; once materialized, the online
    vector of each entity equals its training-set row for T = now."""
    from ratchet.features.pushing import push

    rng = random.Random(7 if ttl_hours is None else 8)
    rows = [{"driver_id": rng.randrange(20), "event_ts": T0 + timedelta(hours=rng.randrange(8)),
             "created": (None if rng.random() < 0.3
                         else T0 + timedelta(hours=rng.randrange(3))),
             "trips": rng.randrange(1000), "rating": rng.random()} for _ in range(400)]
    pd.DataFrame(rows).to_parquet(tmp_path / "s.parquet")
    view = _stats_view(tmp_path / "s.parquet", created_timestamp_field="created",
                       ttl=None if ttl_hours is None else timedelta(hours=ttl_hours))
    ratchet.features.apply([view], workspace=ws)
    now = T0 + timedelta(hours=6)
    push("driver_stats", pd.DataFrame(rows[:30]).assign(trips=-1), to="offline", workspace=ws)
    materialize(end=now, workspace=ws)
    drivers = list(range(22))
    online = get_online_features(["driver_stats:trips", "driver_stats:rating"],
                                 [{"driver_id": d} for d in drivers], now=now, workspace=ws)
    entity_df = pd.DataFrame({"driver_id": drivers, "event_timestamp": [now] * len(drivers)})
    offline = ratchet.features.training_set(
        entity_df, ["driver_stats:trips", "driver_stats:rating"], workspace=ws).to_pandas()

    def clean(values: list[Any]) -> list[Any]:
        return [None if v is None or v != v else v for v in values]

    assert clean(online.columns["trips"]) == clean(offline["trips"].tolist())
    assert clean(online.columns["rating"]) == clean(offline["rating"].tolist())
    assert any(v == -1 for v in online.columns["trips"])  # pushed rows won some ties


def test_a_missing_source_is_an_error_an_empty_one_is_no_rows(ws: Workspace,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    pd.DataFrame({"driver_id": [1], "event_ts": [T0], "trips": [1], "rating": [1.0]}
                 ).to_parquet(folder / "x.parquet")
    ratchet.features.apply([_stats_view(folder)], workspace=ws)
    (folder / "x.parquet").unlink()
    [r] = materialize(workspace=ws)
    assert (r.rows, r.skipped) == (0, "the view has no rows")
    folder.rmdir()
    with pytest.raises(NotFound, match="does not exist"):
        materialize(workspace=ws)
