"""get_online_features / OnlineLookup: values and ages, ttl, missing entities as nulls,
entity rows in every accepted shape, on-demand views, one store round trip per call, and
wrong input. Both stores: a SQLite file and the real Redis on 127.0.0.1:6379 db 13."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import ratchet
from ratchet.config import Settings
from ratchet.errors import InvalidInput, NotFound
from ratchet.features import Entity, FeatureView, OnDemandFeatureView
from ratchet.features.materialization import materialize
from ratchet.features.online import get_online_features, online_lookup
from ratchet.features.online_connections import close_shared_online_stores
from ratchet.workspace import Workspace

REDIS_URL = "redis://127.0.0.1:6379/13"
pytestmark = pytest.mark.xdist_group("redis_db13")

DRIVER = Entity("driver", join_keys=["driver_id"])
CITY = Entity("city", join_keys=["city"])
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=10)


def _flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


def per_km(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"trips_per_km": frame["trips"] / frame["km"]})


PER_KM = OnDemandFeatureView("per_km", function=per_km, inputs=["driver_stats:trips"],
                             request=["km"], features=["trips_per_km"])


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def ws(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[Workspace]:
    """One workspace per store for the module: the tests only read (one adds a view)."""
    tmp_path = tmp_path_factory.mktemp("online")
    home = tmp_path / ".ratchet"
    online = (f"sqlite:///{tmp_path / 'online.sqlite'}" if request.param == "sqlite"
              else REDIS_URL)
    if request.param == "redis":
        _flush_redis()
    workspace = Workspace(Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                                   artifacts_uri=str(home / "artifacts"), online_store=online))
    pd.DataFrame({"driver_id": [1, 1, 2, 3],
                  "event_ts": [T0, T0 + timedelta(days=9), T0 + timedelta(days=3),
                               T0 + timedelta(days=20)],
                  "trips": [10, 20, 30, 40], "rating": [4.0, 4.5, 3.0, 5.0]}
                 ).to_parquet(tmp_path / "stats.parquet")
    pd.DataFrame({"city": ["SF", "NY"], "ts": [T0, T0 + timedelta(days=9)],
                  "trips": [100, 200]}).to_parquet(tmp_path / "cities.parquet")
    stats = FeatureView("driver_stats", entities=[DRIVER], source=str(tmp_path / "stats.parquet"),
                        timestamp_field="event_ts", features=["trips", "rating"],
                        ttl=timedelta(days=7))
    cities = FeatureView("city_stats", entities=[CITY], source=str(tmp_path / "cities.parquet"),
                         timestamp_field="ts", features=["trips"])
    ratchet.features.apply([stats, cities, PER_KM], workspace=workspace)
    materialize(end=T0 + timedelta(days=30), workspace=workspace)
    yield workspace
    close_shared_online_stores()
    if request.param == "redis":
        _flush_redis()


def test_values_ages_and_missing_entities(ws: Workspace) -> None:
    result = get_online_features(["driver_stats:trips", "driver_stats:rating"],
                                 [{"driver_id": 2}, {"driver_id": 1}, {"driver_id": 99}],
                                 now=NOW, workspace=ws)
    assert result.columns == {"driver_id": [2, 1, 99], "trips": [30, 20, None],
                              "rating": [3.0, 4.5, None]}
    assert result.ages == {"driver_stats": [7 * 86_400.0, 86_400.0, None]}
    assert result.to_dict()["driver_stats__age_s"] == [7 * 86_400.0, 86_400.0, None]
    assert "driver_stats__age_s" not in result.to_dict(ages=False)
    assert len(result) == 3
    assert result.rows() == [{"driver_id": 2, "trips": 30, "rating": 3.0},
                             {"driver_id": 1, "trips": 20, "rating": 4.5},
                             {"driver_id": 99, "trips": None, "rating": None}]
    frame = result.to_pandas(ages=True)
    assert list(frame.columns) == ["driver_id", "trips", "rating", "driver_stats__age_s"]


def test_ttl_edge_is_inclusive_then_null(ws: Workspace) -> None:
    # driver 2's row is at T0 + 3 days; ttl 7 days
    edge = T0 + timedelta(days=10)
    inside = get_online_features(["driver_stats:trips"], [{"driver_id": 2}], now=edge,
                                 workspace=ws)
    assert inside.columns["trips"] == [30]
    past = get_online_features(["driver_stats:trips"], [{"driver_id": 2}],
                               now=edge + timedelta(microseconds=1), workspace=ws)
    assert past.columns["trips"] == [None] and past.ages["driver_stats"] == [None]
    # now as µs since the epoch (what a server passes), same edges
    edge_us = int(edge.timestamp()) * 1_000_000
    lookup = online_lookup(["driver_stats:trips"], workspace=ws)
    assert lookup.get([{"driver_id": 2}], now=edge_us).columns["trips"] == [30]
    assert lookup.get([{"driver_id": 2}], now=edge_us + 1).columns["trips"] == [None]


def test_a_value_from_the_future_is_not_served(ws: Workspace) -> None:
    # driver 3's only row is at T0 + 20 days
    before = get_online_features(["driver_stats:trips"], [{"driver_id": 3}], now=NOW,
                                 workspace=ws)
    assert before.columns["trips"] == [None]
    after = get_online_features(["driver_stats:trips"], [{"driver_id": 3}],
                                now=T0 + timedelta(days=21), workspace=ws)
    assert after.columns["trips"] == [40]


def test_whole_view_refs_and_full_feature_names(ws: Workspace) -> None:
    rows = [{"driver_id": 1, "city": "NY"}, {"driver_id": 2, "city": "LA"}]
    with pytest.raises(InvalidInput, match="full_feature_names=True"):
        get_online_features(["driver_stats", "city_stats"], rows, now=NOW, workspace=ws)
    result = get_online_features(["city_stats", "driver_stats:rating"], rows,
                                 full_feature_names=True, now=NOW, workspace=ws)
    assert result.columns == {"driver_id": [1, 2], "city": ["NY", "LA"],
                              "city_stats__trips": [200, None],
                              "driver_stats__rating": [4.5, 3.0]}
    assert result.ages == {"city_stats": [86_400.0, None],
                           "driver_stats": [86_400.0, 7 * 86_400.0]}


@pytest.mark.parametrize("shape", ["dicts", "columns", "pandas", "arrow"])
def test_entity_rows_in_every_shape_keep_their_order(ws: Workspace, shape: str) -> None:
    ids = [2, 99, 1, 2]
    rows: Any = {"dicts": [{"driver_id": i} for i in ids],
                 "columns": {"driver_id": ids},
                 "pandas": pd.DataFrame({"driver_id": ids}),
                 "arrow": pa.table({"driver_id": ids})}[shape]
    result = get_online_features(["driver_stats:trips"], rows, now=NOW, workspace=ws)
    assert result.columns["trips"] == [30, None, 20, 30]


def test_keys_are_typed(ws: Workspace) -> None:
    result = get_online_features(["driver_stats:trips"],
                                 [{"driver_id": "1"}, {"driver_id": 1.0}, {"driver_id": None},
                                  {"driver_id": float("nan")}], now=NOW, workspace=ws)
    assert result.columns["trips"] == [None, 20, None, None]


def test_on_demand_views_run_on_the_fetched_values(ws: Workspace) -> None:
    result = get_online_features(["per_km:trips_per_km", "driver_stats:rating"],
                                 [{"driver_id": 1, "km": 4.0}, {"driver_id": 99, "km": 2.0}],
                                 now=NOW, workspace=ws)
    # trips is fetched only as the function's input: not in the output
    assert result.columns == {"driver_id": [1, 99], "trips_per_km": [5.0, None],
                              "rating": [4.5, None]}
    # a request whose only entity is missing: the function sees NaN, as in a training set
    alone = get_online_features(["per_km"], [{"driver_id": 99, "km": 2.0}], now=NOW,
                                workspace=ws)
    assert alone.columns["trips_per_km"] == [None]
    with pytest.raises(InvalidInput, match="entity row 0 has no 'km'"):
        get_online_features(["per_km"], [{"driver_id": 1}], now=NOW, workspace=ws)


def log_trips(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"log_trips": np.log1p(frame["trips"]),
                         "busy": frame["trips"] > 15})


def test_on_demand_inputs_are_typed_like_a_training_set(ws: Workspace) -> None:
    """All inputs missing: the function gets float NaN (not object None, which NumPy and
    comparisons refuse), the same frame a training set would give it."""
    view = OnDemandFeatureView("log_trips", function=log_trips, inputs=["driver_stats:trips"],
                               features=["log_trips", "busy"])
    ratchet.features.apply([view], workspace=ws)
    alone = get_online_features(["log_trips"], [{"driver_id": 99}], now=NOW, workspace=ws)
    assert alone.columns == {"driver_id": [99], "log_trips": [None], "busy": [False]}
    both = get_online_features(["log_trips"], [{"driver_id": 1}, {"driver_id": 99}], now=NOW,
                               workspace=ws)
    assert both.columns["log_trips"] == [pytest.approx(np.log1p(20)), None]
    assert both.columns["busy"] == [True, False]


def test_one_lookup_is_one_store_read(ws: Workspace) -> None:
    """Redis: one MGET for every view of the call; SQLite: one primary-key query per view."""
    lookup = online_lookup(["driver_stats", "city_stats:trips"], full_feature_names=True,
                           workspace=ws)
    rows = [{"driver_id": 1, "city": "SF"}]
    if ws.settings.online_store_uri.startswith("redis"):
        import redis

        client = redis.Redis.from_url(REDIS_URL)

        def calls() -> int:
            stats = client.info("commandstats")
            return int(sum(v["calls"] for k, v in stats.items() if k.startswith("cmdstat_")))

        before = calls()
        result = lookup.get(rows, now=NOW)
        after = calls()
        client.close()
        assert after - before == 2  # the lookup's MGET, and the INFO call itself
    else:
        statements: list[str] = []
        connection = lookup.store._conn()  # type: ignore[attr-defined]
        connection.set_trace_callback(statements.append)
        try:
            result = lookup.get(rows, now=NOW)
        finally:
            connection.set_trace_callback(None)
        assert len(statements) == 2 and all(s.startswith("SELECT") for s in statements)
    assert result.columns["city_stats__trips"] == [100]
    assert result.columns["driver_stats__trips"] == [20]


def test_wrong_input(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="entity row 1 has no 'driver_id'"):
        get_online_features(["driver_stats:trips"], [{"driver_id": 1}, {"id": 2}],
                            workspace=ws)
    with pytest.raises(InvalidInput, match="entity rows have no 'driver_id'"):
        get_online_features(["driver_stats:trips"], pd.DataFrame({"id": [1]}), workspace=ws)
    with pytest.raises(InvalidInput, match="one length"):
        get_online_features(["driver_stats:trips", "per_km"], {"driver_id": [1, 2], "km": [1]},
                            workspace=ws)
    with pytest.raises(InvalidInput, match="entity row 0 is int"):
        get_online_features(["driver_stats:trips"], [1], workspace=ws)
    with pytest.raises(InvalidInput, match="list of dicts"):
        get_online_features(["driver_stats:trips"], "driver_id=1", workspace=ws)
    with pytest.raises(InvalidInput, match="'driver_id' of feature view 'driver_stats': an "
                       "entity key must be an integer, a string or a bool, got list"):
        get_online_features(["driver_stats:trips"], [{"driver_id": [1]}], workspace=ws)
    with pytest.raises(InvalidInput, match="ISO 8601"):
        get_online_features(["driver_stats:trips"], [{"driver_id": 1}], now="soon",
                            workspace=ws)
    with pytest.raises(NotFound, match="no feature view or on-demand view 'nope'"):
        get_online_features(["nope:x"], [{"driver_id": 1}], workspace=ws)
    with pytest.raises(NotFound, match="has no feature 'speed'"):
        get_online_features(["driver_stats:speed"], [{"driver_id": 1}], workspace=ws)
    assert len(get_online_features(["driver_stats"], [], workspace=ws)) == 0


def test_offline_only_views_are_refused(ws: Workspace) -> None:
    offline = FeatureView("archive", entities=[DRIVER],
                          source=str(ws.settings.home.parent / "stats.parquet"),
                          timestamp_field="event_ts", features=["trips"], online=False)
    ratchet.features.apply([offline], workspace=ws)
    with pytest.raises(InvalidInput, match="offline-only"):
        get_online_features(["archive:trips"], [{"driver_id": 1}], workspace=ws)


def test_store_down_is_a_503(tmp_path: Path) -> None:
    from ratchet.errors import StoreUnavailable

    home = tmp_path / ".ratchet"
    pd.DataFrame({"driver_id": [1], "event_ts": [T0], "trips": [1]}
                 ).to_parquet(tmp_path / "s.parquet")
    ws = Workspace(Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                            artifacts_uri=str(home / "artifacts"),
                            online_store="redis://127.0.0.1:1/0"))
    view = FeatureView("s", entities=[DRIVER], source=str(tmp_path / "s.parquet"),
                       timestamp_field="event_ts", features=["trips"])
    ratchet.features.apply([view], workspace=ws)
    try:
        with pytest.raises(StoreUnavailable, match="cannot be reached") as info:
            get_online_features(["s:trips"], [{"driver_id": 1}], workspace=ws)
        assert info.value.http_status == 503
    finally:
        close_shared_online_stores()
