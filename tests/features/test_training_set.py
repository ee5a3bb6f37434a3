"""training_set end to end on a real workspace: Parquet, CSV and dataset sources, pushed
rows, on-demand views, every accepted kind of entity rows, logging with lineage, and the
wrong inputs."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ratchet
import ratchet.data
from ratchet.errors import InvalidInput, NotFound
from ratchet.features import Entity, FeatureView, OnDemandFeatureView
from ratchet.features.sources import pushed_dir
from ratchet.features.training_sets import training_set
from ratchet.workspace import Workspace

DRIVER = Entity("driver", join_keys=["driver_id"])
ZONE = Entity("zone", join_keys=["zone"])
T0 = datetime(2026, 1, 1)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def per_km(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"trips_per_km": df["trips"] / df["km"]})


RATIOS = OnDemandFeatureView("ratios", function=per_km, inputs=["driver_stats:trips"],
                             request=["km"], features=["trips_per_km"])


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.at(tmp_path / ".ratchet")
    pd.DataFrame({"driver_id": [1, 1, 2, 2], "event_ts": [day(0), day(2), day(0), day(5)],
                  "trips": [10, 12, 20, 25], "rating": [4.0, 4.5, 3.0, 3.5]}
                 ).to_parquet(tmp_path / "stats.parquet")
    pd.DataFrame({"zone": ["north", "south", "north"],
                  "ts": ["2026-01-01 00:00:00", "2026-01-01 00:00:00", "2026-01-03 00:00:00"],
                  "demand": [1.5, 2.5, 3.5]}).to_csv(tmp_path / "zones.csv", index=False)
    ratchet.data.log(pd.DataFrame({"driver_id": [1, 2], "ts": [day(1), day(1)],
                                   "speed": [50.0, 60.0]}), "speeds", workspace=workspace)
    ratchet.features.apply([
        DRIVER, ZONE,
        FeatureView("driver_stats", entities=[DRIVER], source="stats.parquet",
                    timestamp_field="event_ts", features=["trips", "rating"],
                    ttl=timedelta(days=3)),
        FeatureView("zones", entities=[ZONE], source="zones.csv", timestamp_field="ts",
                    features=["demand"]),
        FeatureView("speeds", entities=[DRIVER], source="dataset:speeds",
                    timestamp_field="ts", features=["speed"]),
        RATIOS], base_dir=tmp_path, workspace=workspace)
    return workspace


def labels() -> pd.DataFrame:
    return pd.DataFrame({"driver_id": [2, 1, 1, 3, 2], "zone": ["north", "south", "x", "north",
                                                                  "north"],
                         "event_timestamp": [day(1), day(2.5), day(6), day(3), day(7)],
                         "km": [2.0, 4.0, 1.0, 1.0, 5.0], "label": [1, 0, 1, 0, 1]})


def test_each_row_gets_each_feature_as_of_its_time(ws: Workspace) -> None:
    result = training_set(labels(), ["driver_stats", "zones:demand", "speeds:speed"],
                          workspace=ws)
    frame = result.to_pandas()
    assert list(frame.columns) == ["driver_id", "zone", "event_timestamp", "km", "label",
                                   "trips", "rating", "demand", "speed"]
    assert frame["label"].tolist() == [1, 0, 1, 0, 1]  # the rows, in order
    # driver 1 at day 6: its day-2 row is older than the 3-day ttl
    assert frame["trips"].fillna(-1).tolist() == [20, 12, -1, -1, 25]
    assert frame["rating"].fillna(-1).tolist() == [3.0, 4.5, -1, -1, 3.5]
    assert frame["demand"].fillna(-1).tolist() == [1.5, 2.5, -1, 3.5, 3.5]  # CSV, no ttl
    assert frame["speed"].fillna(-1).tolist() == [60.0, 50.0, 50.0, -1, 60.0]  # a dataset
    assert result.num_rows == 5 and result.selection.refs == (
        "driver_stats", "zones:demand", "speeds:speed")
    assert result.source_datasets == (("speeds", 1),)


def test_on_demand_features_run_on_the_fetched_inputs_and_request_fields(
        ws: Workspace) -> None:
    result = training_set(labels(), ["driver_stats:rating", "ratios:trips_per_km"],
                          workspace=ws)
    table = result.to_arrow()
    # trips is fetched only as the on-demand view's input: not in the output
    assert table.column_names == ["driver_id", "zone", "event_timestamp", "km", "label",
                                  "rating", "trips_per_km"]
    assert table.column("trips_per_km").to_pylist() == [10.0, 3.0, None, None, 5.0]
    full = training_set(labels(), ["ratios", "driver_stats:trips"], full_feature_names=True,
                        workspace=ws).to_arrow()
    assert full.column_names[-2:] == ["ratios__trips_per_km", "driver_stats__trips"]
    assert full.column("ratios__trips_per_km").to_pylist() == [10.0, 3.0, None, None, 5.0]


def test_every_kind_of_entity_rows_gives_the_same_set(ws: Workspace, tmp_path: Path) -> None:
    features = ["driver_stats:trips", "zones:demand"]
    expected = training_set(labels(), features, workspace=ws).to_arrow()
    pq.write_table(pa.Table.from_pandas(labels(), preserve_index=False),
                   tmp_path / "labels.parquet")
    labels().to_csv(tmp_path / "labels.csv", index=False)
    logged = ratchet.data.log(labels(), "labels", workspace=ws)
    for given in (pa.Table.from_pandas(labels(), preserve_index=False),
                  tmp_path / "labels.parquet", str(tmp_path / "labels.parquet"),
                  tmp_path / "labels.csv", logged, "dataset:labels", "dataset:labels@1"):
        built = training_set(given, features, workspace=ws)
        got = built.to_arrow()
        for column in ("trips", "demand", "label"):
            assert got.column(column).to_pylist() == expected.column(column).to_pylist(), given
        if (isinstance(given, str) and given.startswith("dataset:")) or given is logged:
            assert built.source_datasets == (("labels", 1),)


def test_pushed_rows_come_after_the_source_rows(ws: Workspace) -> None:
    folder = pushed_dir(ws, "driver_stats")
    folder.mkdir(parents=True)
    for name, trips in (("0001.parquet", 99), ("0002.parquet", 100)):
        pq.write_table(pa.table({"driver_id": pa.array([2], pa.int64()),
                                 "event_ts": pa.array([day(5)], pa.timestamp("ns")),
                                 "trips": pa.array([trips], pa.int64()),
                                 "rating": [1.0]}), folder / name)
    frame = training_set(labels(), ["driver_stats:trips"], workspace=ws).to_pandas()
    assert frame["trips"].tolist()[-1] == 100  # same event time: the last push wins


def test_created_cutoff_ignores_rows_written_after_the_row_time(ws: Workspace,
                                                                  tmp_path: Path) -> None:
    pd.DataFrame({"driver_id": [1, 1], "ts": [day(0), day(1)],
                  "written": [day(0), day(4)], "score": [1.0, 2.0]}
                 ).to_parquet(tmp_path / "scores.parquet")
    ratchet.features.apply([FeatureView("scores", entities=[DRIVER], source="scores.parquet",
                                        timestamp_field="ts", created_timestamp_field="written",
                                        features=["score"])], base_dir=tmp_path, workspace=ws)
    rows = pd.DataFrame({"driver_id": [1, 1], "event_timestamp": [day(2), day(5)]})
    leaky = training_set(rows, ["scores"], workspace=ws).to_pandas()
    honest = training_set(rows, ["scores"], created_cutoff=True, workspace=ws).to_pandas()
    assert leaky["score"].tolist() == [2.0, 2.0]
    assert honest["score"].tolist() == [1.0, 2.0]


def test_log_stores_the_set_with_lineage(ws: Workspace) -> None:
    result = training_set(labels(), ["driver_stats:trips", "speeds", "ratios"], workspace=ws)
    version = result.log("train", role=None)
    assert (version.name, version.version, version.row_count) == ("train", 1, 5)
    assert version.source is not None and version.source.startswith("features:training_set")
    assert "driver_stats:trips" in version.source
    links = ws.stores.features.training_set_definitions("train", 1)
    assert sorted((link.kind, link.name, link.version) for link in links) == [
        ("dataset", "speeds", 1), ("feature_view", "driver_stats", 1),
        ("feature_view", "speeds", 1), ("on_demand", "ratios", 1)]
    assert ratchet.data.get_version("train@1", workspace=ws).to_pandas()[
        "trips_per_km"].tolist()[:2] == [10.0, 3.0]


# ------------------------------------------------------------------------------ wrong input

def test_missing_entity_columns_are_all_named(ws: Workspace) -> None:
    rows = labels().drop(columns=["event_timestamp", "driver_id", "km"])
    with pytest.raises(InvalidInput) as caught:
        training_set(rows, ["driver_stats:trips", "ratios"], workspace=ws)
    text = str(caught.value)
    assert "no timestamp column 'event_timestamp'" in text
    assert "no join key 'driver_id'" in text
    assert "no request field 'km' (on-demand view 'ratios' reads it" in text
    assert "they have 'zone', 'label'" in text
    with pytest.raises(InvalidInput, match="no timestamp column 'when'"):
        training_set(labels(), ["zones"], timestamp_field="when", workspace=ws)


def test_entity_rows_without_times_are_refused(ws: Workspace) -> None:
    rows = labels()
    rows.loc[[1, 3], "event_timestamp"] = pd.NaT
    with pytest.raises(InvalidInput, match="2 of 5 entity rows have no time"):
        training_set(rows, ["zones"], workspace=ws)
    rows = labels().assign(event_timestamp=range(5))
    with pytest.raises(InvalidInput, match="is int64, not a timestamp or date"):
        training_set(rows, ["zones"], workspace=ws)


def test_unknown_features_and_views(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="no feature view or on-demand view 'nope'"):
        training_set(labels(), ["nope:x"], workspace=ws)
    with pytest.raises(NotFound, match="feature view 'zones' has no feature 'speed'"):
        training_set(labels(), ["zones:speed"], workspace=ws)
    with pytest.raises(InvalidInput, match="non-empty list"):
        training_set(labels(), [], workspace=ws)


def test_bad_entity_rows(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        training_set(tmp_path / "missing.parquet", ["zones"], workspace=ws)
    with pytest.raises(NotFound):
        training_set("dataset:no_such_dataset", ["zones"], workspace=ws)
    with pytest.raises(InvalidInput, match="must be a pandas DataFrame, a pyarrow Table"):
        training_set([{"zone": "north"}], ["zones"], workspace=ws)
    with pytest.raises(InvalidInput, match="timestamp_field must be a column name"):
        training_set(labels(), ["zones"], timestamp_field="", workspace=ws)
    clash = labels().assign(trips_per_km=1.0)
    with pytest.raises(InvalidInput, match="already a column 'trips_per_km'"):
        training_set(clash, ["ratios"], workspace=ws)
    clash = labels().assign(demand=1.0)
    with pytest.raises(InvalidInput, match="'demand' of view 'zones' is already a column"):
        training_set(clash, ["zones"], workspace=ws)
    wrong_type = labels().assign(zone=[1, 2, 3, 4, 5])
    with pytest.raises(InvalidInput, match="join key 'zone' is VARCHAR in its rows but BIGINT"):
        training_set(wrong_type, ["zones"], workspace=ws)
