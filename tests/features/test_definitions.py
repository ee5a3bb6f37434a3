"""Declaring entities, feature views and on-demand views: checks, specs and digests."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from ratchet.errors import InvalidInput, ModelFailed
from ratchet.features.definitions import (
    Entity,
    FeatureView,
    OnDemandFeatureView,
    loaded_on_demand,
    on_demand,
    split_feature_ref,
)

DRIVER = Entity("driver", join_keys=["driver_id"])


def stats(**changes: object) -> FeatureView:
    args: dict[str, object] = {"entities": [DRIVER], "source": "/data/stats.parquet",
                               "timestamp_field": "event_ts", "features": ["trips", "rating"],
                               "ttl": timedelta(days=7)}
    args.update(changes)
    return FeatureView("driver_stats", **args)  # type: ignore[arg-type]


def test_an_entity_joins_on_its_name_by_default() -> None:
    assert Entity("driver").join_keys == ("driver",)
    assert Entity("trip", ["city", "trip_id"]).join_keys == ("city", "trip_id")


def test_a_view_spec_round_trips_and_its_digest_follows_the_spec() -> None:
    view = stats(created_timestamp_field="created")
    assert FeatureView.from_spec(view.spec()) == view
    assert FeatureView.from_spec(view.spec()).digest == view.digest
    assert stats().digest != view.digest
    assert stats(ttl=timedelta(days=8)).digest != stats().digest
    assert stats().join_keys == ("driver_id",)
    two = FeatureView("pair", entities=[DRIVER, Entity("rider", ["rider_id", "driver_id"])],
                      source="x.csv", timestamp_field="ts", features=["n"])
    assert two.join_keys == ("driver_id", "rider_id")


@pytest.mark.parametrize(("changes", "message"), [
    ({"features": []}, "at least one"),
    ({"features": ["trips", "trips"]}, "repeats"),
    ({"features": "trips"}, "list of column names"),
    ({"features": ["driver_id"]}, "join key or timestamp"),
    ({"features": ["event_ts"]}, "join key or timestamp"),
    ({"features": ["a:b"]}, "may not contain ':'"),
    ({"ttl": timedelta(0)}, "positive timedelta"),
    ({"ttl": 7}, "positive timedelta"),
    ({"entities": []}, "non-empty list of Entity"),
    ({"entities": DRIVER}, "list of Entity"),
    ({"source": ""}, "source must be"),
    ({"timestamp_field": ""}, "timestamp_field"),
])
def test_a_wrong_view_says_what_is_wrong(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        stats(**changes)


def test_names_must_be_portable() -> None:
    with pytest.raises(InvalidInput, match="file name"):
        Entity("../driver")
    with pytest.raises(InvalidInput, match="file name"):
        FeatureView("a b", entities=[DRIVER], source="x", timestamp_field="t", features=["f"])


def test_feature_refs() -> None:
    assert split_feature_ref("driver_stats:trips") == ("driver_stats", "trips")
    assert split_feature_ref("driver_stats") == ("driver_stats", None)
    for bad in ("", ":trips", "driver_stats:", 3):
        with pytest.raises(InvalidInput):
            split_feature_ref(bad)


def test_on_demand_views_run_the_users_code_and_check_what_it_returns() -> None:
    @on_demand(inputs=["driver_stats:trips"], request=["km"], features=["trips_per_km"])
    def ratio(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"trips_per_km": df["trips"] / df["km"], "extra": 1})

    assert isinstance(ratio, OnDemandFeatureView) and loaded_on_demand("ratio") is ratio
    frame = pd.DataFrame({"trips": [4.0, 9.0], "km": [2.0, 3.0]}, index=[10, 11])
    out = ratio(frame)
    assert list(out.columns) == ["trips_per_km"] and list(out.index) == [10, 11]
    assert out["trips_per_km"].tolist() == [2.0, 3.0]
    assert ratio.spec()["function"].endswith(":test_on_demand_views_run_the_users_code_and_"
                                             "check_what_it_returns.<locals>.ratio")

    bad = OnDemandFeatureView("broken", function=lambda df: 1 / 0, request=["km"],
                              features=["x"])
    with pytest.raises(ModelFailed, match="ZeroDivisionError"):
        bad.compute(frame)
    short = OnDemandFeatureView("short", function=lambda df: df.head(1).assign(x=1),
                                request=["km"], features=["x"])
    with pytest.raises(InvalidInput, match="1 rows for 2 input rows"):
        short.compute(frame)
    missing = OnDemandFeatureView("missing", function=lambda df: {"y": df["km"]},
                                  request=["km"], features=["x"])
    with pytest.raises(InvalidInput, match="did not return 'x'"):
        missing.compute(frame)
    with pytest.raises(InvalidInput, match=r"inputs .*or request fields"):
        OnDemandFeatureView("empty", function=lambda df: df, features=["x"])
    with pytest.raises(InvalidInput, match="must name one feature"):
        OnDemandFeatureView("whole", function=lambda df: df, inputs=["driver_stats"],
                            features=["x"])


def test_the_code_digest_changes_with_the_code() -> None:
    first = OnDemandFeatureView("code", function=lambda df: {"x": df["a"]}, request=["a"],
                                features=["x"])
    second = OnDemandFeatureView("code", function=lambda df: {"x": df["a"] * 2},
                                 request=["a"], features=["x"])
    assert first.spec()["code_digest"] != second.spec()["code_digest"]
    assert first.digest != second.digest
