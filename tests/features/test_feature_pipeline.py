"""The feature example's training pipeline (examples/features/training.py) on a real
workspace: it builds its training set with ``training_set`` as of each labeled row's time
(``created_cutoff=True``), records it, and registers a model whose manifest names its
features, so a server takes entity keys only. The generated world it learns from
(examples/features/world.py) is checked for what the loop needs. The fixtures here are
shared with test_loop_replay.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import ratchet
from ratchet.config import load_settings
from ratchet.errors import StepFailed
from ratchet.pipelines.references import load_object
from ratchet.workspace import Workspace

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "features"
PIPELINE = f"{EXAMPLE / 'training.py'}:training"
MODEL = "trip-completion"
KEYS, TIME, LABEL = ["driver_id", "zone_id"], "requested_at", "completed"
REQUEST = ["distance_km"]
FEATURES = ["driver_stats:trips", "driver_stats:acceptance", "driver_stats:rating",
            "zone_demand:open_requests", "zone_demand:surge", "trip_context:pickup_pressure"]
COLUMNS = [r.split(":")[1] for r in FEATURES]
TRIPS_PER_DAY = 160


def example(module: str, name: str) -> Any:
    """An object of the example, by file (as the controller loads its pipeline)."""
    return load_object(f"{EXAMPLE / module}.py:{name}")


@dataclass
class Loop:
    """A project whose feature views hold the world's history up to day 1's start."""

    project: Path
    workspace: Workspace
    world: Any
    day1: pd.Timestamp

    def log_rows(self, rows: pd.DataFrame, name: str) -> str:
        version = ratchet.data.log(rows.reset_index(drop=True), name)
        return f"{version.name}@{version.version}"

    def train(self, data: str, **params: Any) -> Any:
        from ratchet.pipelines.pipeline_definition import load_pipeline
        from ratchet.pipelines.runner import PipelineRunner

        return PipelineRunner(load_pipeline(PIPELINE), {"data": data, **params},
                              workspace=self.workspace).run()

    @staticmethod
    def version(run: Any) -> int:
        """The version of the model a pipeline run registered."""
        (version,) = [o.model[1] for s in run.steps for o in s.outputs if o.model is not None]
        return int(version)

    def labeled(self, begin: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The trips requested in [begin, end) whose label is known by ``end``."""
        trips = self.world.trips_between(begin, end)
        return trips[trips["label_at"] <= end][[*KEYS, TIME, *REQUEST, LABEL]]


def make_loop(project: Path, env: pytest.MonkeyPatch) -> Loop:
    """The world's history up to day 1 as the views' sources, applied in ``project``,
    whose ``.ratchet`` is the ambient workspace (``env`` sets it)."""
    home = project / ".ratchet"
    env.chdir(project)
    env.setenv("RATCHET_HOME", str(home))
    env.setenv("RATCHET_DB", f"sqlite:///{home / 'ratchet.db'}")
    env.setenv("RATCHET_ARTIFACTS", str(home / "artifacts"))
    world = example("world", "generate")(trips_per_day=TRIPS_PER_DAY)
    day1 = world.day(1)[0]
    world.write_history(str(project / "data"), until=day1)
    # the definitions imported as the pipeline and the server import them (their on-demand
    # view is registered under that module's name); the folder leaves sys.path afterwards
    env.syspath_prepend(str(EXAMPLE))
    example("training", "import_on_demand_code")()
    ratchet.features.apply(sys.modules["trip_features"].DEFINITIONS, base_dir=project)
    return Loop(project, Workspace(load_settings()), world, day1)


@pytest.fixture
def loop(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Loop]:
    yield make_loop(workspace, monkeypatch)
    from ratchet.features.online_connections import close_shared_online_stores

    close_shared_online_stores()


# ------------------------------------------------------------------ a reference as-of
def as_of(rows: pd.DataFrame, keys: list[str], features: list[str], ttl: pd.Timedelta,
          entity: pd.DataFrame, *, created_cutoff: bool = True) -> pd.DataFrame:
    """Each entity row's feature values by the point-in-time rule, row by row in pandas
    (greatest event time <= T within the ttl, then greatest created time; with the cutoff
    only rows created <= T)."""
    out: dict[str, list[Any]] = {f: [] for f in features}
    for _, row in entity.iterrows():
        t = row[TIME]
        seen = rows[(rows[keys] == row[keys].to_numpy()).all(axis=1)
                    & (rows["event_ts"] <= t) & (rows["event_ts"] >= t - ttl)]
        if created_cutoff:
            seen = seen[seen["created_ts"] <= t]
        best = seen.sort_values(["event_ts", "created_ts"], kind="stable").tail(1)
        for f in features:
            out[f].append(best[f].iloc[0] if len(best) else None)
    return pd.DataFrame(out)


def expected_vectors(world: Any, entity: pd.DataFrame) -> pd.DataFrame:
    """The model's columns for ``entity`` (keys, time, distance) by the reference:
    both views as of each time with the cutoff, and the on-demand formula written out."""
    frame = pd.concat([
        as_of(world.driver_stats, ["driver_id"], COLUMNS[:3], pd.Timedelta(hours=2), entity),
        as_of(world.zone_demand, ["zone_id"], COLUMNS[3:5], pd.Timedelta(hours=1), entity)],
        axis=1)
    frame["pickup_pressure"] = (frame["surge"].astype(float)
                                * entity["distance_km"].to_numpy()
                                / frame["acceptance"].astype(float).clip(lower=0.05))
    return frame


# ------------------------------------------------------------------ the world
def test_the_world_is_reproducible_and_has_what_the_loop_needs() -> None:
    generate = example("world", "generate")
    world, again = generate(), generate()
    pd.testing.assert_frame_equal(world.driver_stats, again.driver_stats)
    pd.testing.assert_frame_equal(world.trips, again.trips)
    assert not generate(seed=8).trips.equals(world.trips)
    stats = world.driver_stats
    # every row is computed after the hour it covers; labels arrive after the request
    assert (stats["created_ts"] > stats["event_ts"]).all()
    assert (world.trips["label_at"] - world.trips[TIME] == pd.Timedelta("30min")).all()
    assert (world.trips[TIME].dt.microsecond == 0).all()  # whole seconds, like the log's ms
    # corrections: the same hour written again later, with another value
    repeated = stats[stats.duplicated(["driver_id", "event_ts"], keep=False)]
    assert len(repeated) >= 2 * 10
    first = repeated.groupby(["driver_id", "event_ts"])["acceptance"].agg(["first", "last"])
    assert (first["first"] != first["last"]).all()
    # the drift: half the drivers accept less on the second day
    day = (stats["event_ts"] - world.start) // pd.Timedelta(days=1)
    means = stats.groupby([day, "driver_id"])["acceptance"].mean().unstack(0)
    dropped = (means[0] - means[1] > 0.1).sum()
    assert dropped == len(means) // 2
    # history and arrivals split the rows at a time, in the order they were computed
    day1 = world.day(1)[0]
    history = world.history("driver_stats", day1)
    arrived = world.arrivals("driver_stats", day1, stats["created_ts"].max())
    assert len(history) + len(arrived) == len(stats)
    assert history["created_ts"].max() <= day1 < arrived["created_ts"].min()
    assert arrived["created_ts"].is_monotonic_increasing


def test_the_live_example_serves_fresh_features_now(workspace: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``python world.py DIR --live`` (README): the history ends now, so once applied and
    materialized every driver and zone has features within their ttl at the wall clock."""
    from ratchet.features.online_connections import close_shared_online_stores

    home = workspace / ".ratchet"
    monkeypatch.setenv("RATCHET_HOME", str(home))
    monkeypatch.setenv("RATCHET_DB", f"sqlite:///{home / 'ratchet.db'}")
    monkeypatch.setenv("RATCHET_ARTIFACTS", str(home / "artifacts"))
    written = example("world", "write_example")(str(workspace), live=True)
    assert sorted(written) == ["driver_stats", "trips", "zone_demand"]
    trips = pd.read_parquet(written["trips"])
    assert list(trips.columns) == [*KEYS, TIME, *REQUEST, LABEL] and len(trips) > 500
    assert trips[TIME].max() <= pd.Timestamp.now(tz="UTC")
    monkeypatch.syspath_prepend(str(EXAMPLE))
    example("training", "import_on_demand_code")()
    ratchet.features.apply(sys.modules["trip_features"].DEFINITIONS, base_dir=workspace)
    try:
        ratchet.features.materialize()
        rows = [{"driver_id": d, "zone_id": f"z{d % 3}", "distance_km": 2.0}
                for d in range(1001, 1013)]
        online = ratchet.features.get_online_features(FEATURES, rows).to_pandas()
    finally:
        close_shared_online_stores()
    assert online[COLUMNS].notna().all().all(), online


# ------------------------------------------------------------------ the pipeline
def test_the_pipeline_trains_on_features_as_of_each_label_and_logs_a_keys_only_model(
        loop: Loop) -> None:
    day0, day1 = loop.world.day(0)
    rows = loop.labeled(day0, day1)
    data = loop.log_rows(rows, "trips-day0")
    run = loop.train(data)
    version = loop.version(run)
    # the training set the pipeline built and recorded
    (output,) = [o for s in run.steps for o in s.outputs if o.dataset is not None]
    name, number = output.dataset
    recorded = ratchet.data.get(f"{name}@{number}").to_pandas()
    assert list(recorded.columns) == [*KEYS, TIME, *REQUEST, LABEL, *COLUMNS]
    assert len(recorded) == len(rows)
    pd.testing.assert_frame_equal(recorded[[*KEYS, LABEL]], rows[[*KEYS, LABEL]]
                                  .reset_index(drop=True), check_dtype=False)
    # ... equals training_set called directly, and a row-by-row reference
    direct = ratchet.features.training_set(rows, features=FEATURES, timestamp_field=TIME,
                                           created_cutoff=True).to_pandas()
    pd.testing.assert_frame_equal(recorded, direct, check_dtype=False)
    expected = expected_vectors(loop.world, rows.reset_index(drop=True))
    for column in COLUMNS:
        assert recorded[column].tolist() == expected[column].tolist(), column
    # the model takes entity keys: its manifest names the features it reads
    loaded = ratchet.models.load(f"models:/{MODEL}/{version}")
    assert loaded.features is not None
    assert loaded.features.refs == tuple(FEATURES)
    assert loaded.features.entity_keys == tuple(KEYS)
    assert loaded.features.request_fields == tuple(REQUEST)
    assert sorted(d[1] for d in loaded.features.definitions) == [
        "driver_stats", "trip_context", "zone_demand"]
    assert loaded.signature is not None and loaded.signature.input_names == COLUMNS
    assert loaded.predict(recorded[COLUMNS]).shape == (len(rows),)


def test_the_training_set_never_sees_a_correction_written_after_the_label_time(
        loop: Loop) -> None:
    """Rows requested between an hour's first write and its correction train on the first
    value (what the server had then); without the cutoff they would see the correction."""
    stats = loop.world.driver_stats
    hour = ["driver_id", "event_ts"]
    written = stats[stats.duplicated(hour, keep=False)]
    pairs = written.groupby(hour, sort=False).agg(
        first_at=("created_ts", "first"), fixed_at=("created_ts", "last"),
        first=("acceptance", "first"), fixed=("acceptance", "last")).reset_index()
    pairs = pairs[pairs["fixed_at"] < loop.day1]  # corrections in the history
    assert len(pairs) >= 5 and (pairs["first"] != pairs["fixed"]).all()
    entity = pd.DataFrame({"driver_id": pairs["driver_id"], "zone_id": "z0",
                           TIME: pairs["first_at"] + (pairs["fixed_at"] - pairs["first_at"]) / 2})
    cut = ratchet.features.training_set(entity, features=FEATURES[:3], timestamp_field=TIME,
                                        created_cutoff=True).to_pandas()
    leaky = ratchet.features.training_set(entity, features=FEATURES[:3],
                                          timestamp_field=TIME).to_pandas()
    assert cut["acceptance"].tolist() == pairs["first"].tolist()
    assert leaky["acceptance"].tolist() == pairs["fixed"].tolist()


def test_rows_without_their_time_are_refused_naming_the_column(loop: Loop) -> None:
    day0, day1 = loop.world.day(0)
    data = loop.log_rows(loop.labeled(day0, day1).drop(columns=[TIME]), "no-time")
    with pytest.raises(StepFailed) as failed:
        loop.train(data)
    message = str(failed.value.__cause__)
    assert "'requested_at'" in message and "data.timestamp" in message
    assert "driver_id, zone_id, distance_km, completed" in message  # what the rows have


def test_rows_without_a_label_are_refused(loop: Loop) -> None:
    day0, day1 = loop.world.day(0)
    rows = loop.labeled(day0, day1).reset_index(drop=True)
    rows[LABEL] = rows[LABEL].astype("Int64")
    rows.loc[rows.index[-2:], LABEL] = None
    with pytest.raises(StepFailed) as failed:
        loop.train(loop.log_rows(rows, "unlabeled"))
    assert f"2 of {len(rows)} rows have no 'completed'" in str(failed.value.__cause__)


def test_times_that_are_not_times_are_refused_naming_the_column(loop: Loop) -> None:
    day0, day1 = loop.world.day(0)
    rows = loop.labeled(day0, day1).reset_index(drop=True)
    rows[TIME] = rows[TIME].astype(str)  # ISO text is read as times ...
    rows.loc[rows.index[-1], TIME] = "yesterday-ish"  # ... this is not
    with pytest.raises(StepFailed) as failed:
        loop.train(loop.log_rows(rows, "bad-times"))
    message = str(failed.value.__cause__)
    assert "column 'requested_at' must hold the time each row was answered" in message
    assert "yesterday-ish" in message


def test_a_time_column_under_another_name_is_a_parameter(loop: Loop) -> None:
    day0, day1 = loop.world.day(0)
    rows = loop.labeled(day0, day1).rename(columns={TIME: "timestamp"})
    run = loop.train(loop.log_rows(rows, "trips-day0-renamed"), timestamp="timestamp")
    assert loop.version(run) == 1


def test_a_regularization_that_is_not_positive_is_refused(loop: Loop) -> None:
    day0, day1 = loop.world.day(0)
    with pytest.raises(StepFailed) as failed:
        loop.train(loop.log_rows(loop.labeled(day0, day1), "trips-day0"), C=0)
    assert "C (the inverse regularization strength) must be a number > 0, got 0" in \
        str(failed.value.__cause__)


def test_labels_from_before_any_feature_row_cannot_train(loop: Loop) -> None:
    """Every row's features are null (nothing was computed yet): a clear refusal, not a
    model fitted on nothing."""
    day0 = loop.world.day(0)[0]
    rows = pd.DataFrame({"driver_id": [1001] * 30, "zone_id": ["z0"] * 30,
                         TIME: day0 + pd.to_timedelta(np.arange(30), unit="s"),
                         "distance_km": 3.5, LABEL: [0, 1] * 15})
    with pytest.raises(StepFailed) as failed:
        loop.train(loop.log_rows(rows, "too-early"))
    message = str(failed.value.__cause__)
    assert "only 0 of 30 training rows have every feature" in message
