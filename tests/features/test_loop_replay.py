"""One day replayed both ways: what the server fetched online equals what a training set
builds offline for the same entities at the same times.

A project holds the generated world's feature history up to the start of day 1 (batch
sources, materialized into the online store). The champion, trained by the example's
pipeline on day 0's labels, is served from entity keys by the real app (FastAPI's
TestClient). Day 1 is then played in time order: the feature rows computed so far are
pushed (online store and offline log) as they are computed, and each trip request is sent
with its driver and zone only, at its known time (the served app's clock is set to it:
the log's timestamp and the online lookup's "now"). The prediction log's vectors are then
compared, value for value (floats exactly), with ``training_set(created_cutoff=True)`` at
the logged times (and with a row-by-row reference); the same day is replayed once more with
the real Redis as the online store. Then the labels are fed back and a manual retrain
through the controller runs the example's pipeline on the rows it built from the log
(keys, request time, logged vector, label): its training set is again the served vectors,
and the monitor, judging the logged vectors against that pipeline's training set, sees the
drivers' acceptance drift.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import ratchet
from ratchet.serving.server_state import ServingConfig
from tests.features.test_feature_pipeline import (
    COLUMNS,
    EXAMPLE,
    FEATURES,
    KEYS,
    LABEL,
    MODEL,
    PIPELINE,
    REQUEST,
    TIME,
    Loop,
    as_of,
    expected_vectors,
    make_loop,
)

# One worker runs the module: its served day (the module fixture) is built once.
pytestmark = pytest.mark.xdist_group("loop_replay")

# the server imports the on-demand view's code as `--features-module` does
SERVING = ServingConfig(poll_interval_s=0.05, log_flush_interval_s=0.1, startup_wait_s=10,
                        features_modules=(str(EXAMPLE / "trip_features.py"),))
VIEWS = ("driver_stats", "zone_demand")
REDIS_URL = "redis://127.0.0.1:6379/11"  # this module's db
AGES = {"driver_stats": pd.Timedelta(hours=2), "zone_demand": pd.Timedelta(hours=1)}


class ServerClock:
    """The process's wall clock (``time.time_ns``) while a day is served, set by the test
    to each request's time: what the server stamps the request with (the log's
    timestamp), the online lookup's "now" and a push's time all read it, as they read the
    wall clock live."""

    def __init__(self, at: pd.Timestamp) -> None:
        self.set(at)

    def set(self, at: pd.Timestamp) -> None:
        self.ns = int(at.as_unit("ns").value)

    def __call__(self) -> int:
        return self.ns


@dataclass
class Day:
    """What happened while a day was served."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    pushes: int = 0
    pushed_rows: int = 0


def serve_day(loop: Loop, client: TestClient, clock: ServerClock, trips: pd.DataFrame,
              since: pd.Timestamp) -> Day:
    """Push what is computed and send each trip request at its time, in time order."""
    day = Day()
    pushed_until = since
    for trip in trips.itertuples(index=False):
        at = getattr(trip, TIME)
        clock.set(at)
        for view in VIEWS:  # everything computed up to the request, before it
            rows = loop.world.arrivals(view, pushed_until, at)
            if len(rows):
                ratchet.features.push(view, rows)
                day.pushes += 1
                day.pushed_rows += len(rows)
        pushed_until = at
        reply = client.post("/predict", json={"inputs": [{
            "driver_id": int(trip.driver_id), "zone_id": str(trip.zone_id),
            "distance_km": float(trip.distance_km)}]})
        assert reply.status_code == 200, (len(day.answers), str(at), reply.text)
        day.answers.append(reply.json())
    return day


@dataclass
class Replay:
    loop: Loop
    champion: int
    day: Day
    logged: pd.DataFrame


def replayed(project: Path, env: pytest.MonkeyPatch) -> Replay:
    """Day 1 served on its own clock by the champion (the pipeline trained on day 0's
    labels; the online store materialized at day 1's start); the log read back after the
    server stopped (its shutdown flushes)."""
    from ratchet.serving import create_app
    from ratchet.serving.prediction_query import predictions

    loop = make_loop(project, env)
    day0, day1 = loop.world.day(0)
    run = loop.train(loop.log_rows(loop.labeled(day0, day1), "trips-day0"))
    champion = loop.version(run)
    ratchet.models.set_alias(MODEL, "champion", champion, reason="test: trained on day 0")
    results = ratchet.features.materialize(end=day1)
    assert sorted(r.view for r in results) == sorted(VIEWS)

    begin, end = loop.world.day(1)
    trips = loop.world.trips_between(begin, end)
    clock = ServerClock(begin)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(time, "time_ns", clock)
        with TestClient(create_app(f"{MODEL}@champion", workspace=loop.workspace,
                                   config=SERVING)) as client:
            day = serve_day(loop, client, clock, trips, begin)
    return Replay(loop, champion, day, predictions(MODEL, workspace=loop.workspace))


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    """The day replayed with the default online store (SQLite), once for the module's
    tests (they read it)."""
    from ratchet.features.online_connections import close_shared_online_stores

    with pytest.MonkeyPatch.context() as env:
        yield replayed(tmp_path_factory.mktemp("project"), env)
        close_shared_online_stores()


@pytest.fixture
def replay_on_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Replay]:
    """The day replayed with the real Redis on 127.0.0.1 as the online store (a db of this
    module's own, emptied before and after)."""
    import redis

    from ratchet.features.online_connections import close_shared_online_stores

    server = redis.Redis.from_url(REDIS_URL)
    server.flushdb()
    monkeypatch.setenv("RATCHET_ONLINE_STORE", REDIS_URL)
    try:
        project = tmp_path / "project"
        project.mkdir()
        yield replayed(project, monkeypatch)
    finally:
        close_shared_online_stores()
        server.flushdb()
        server.close()


def logged_entities(logged: pd.DataFrame) -> pd.DataFrame:
    """The logged requests' entity keys, request fields and times, as an entity frame."""
    entity = pd.DataFrame({k: logged[f"input.{k}"].to_numpy() for k in [*KEYS, *REQUEST]})
    entity[TIME] = logged["timestamp"].to_numpy()
    return entity


def offline(logged: pd.DataFrame, *, created_cutoff: bool = True) -> pd.DataFrame:
    """The training set of the logged entities at the logged times."""
    return ratchet.features.training_set(logged_entities(logged), features=FEATURES,
                                         timestamp_field=TIME,
                                         created_cutoff=created_cutoff).to_pandas()


def test_the_served_vectors_equal_the_training_set_at_the_logged_times(
        replay: Replay) -> None:
    assert_served_equals_offline(replay)


def test_with_redis_online_the_served_vectors_equal_the_training_set(
        replay_on_redis: Replay) -> None:
    assert replay_on_redis.loop.workspace.settings.online_store_uri == REDIS_URL
    assert_served_equals_offline(replay_on_redis)


def assert_served_equals_offline(replay: Replay) -> None:
    loop, champion, day, logged = replay.loop, replay.champion, replay.day, replay.logged
    trips = loop.world.trips_between(*loop.world.day(1))
    # every request was answered by the champion and logged once, at its own time
    assert len(logged) == len(trips) == len(day.answers) >= 100
    assert (logged["status"] == "ok").all() and (logged["model_version"] == champion).all()
    assert logged["timestamp"].tolist() == trips[TIME].tolist()
    assert logged["input.driver_id"].tolist() == trips["driver_id"].tolist()
    assert logged["input.zone_id"].tolist() == trips["zone_id"].tolist()
    assert day.pushes > 24 and day.pushed_rows > 0  # the day's rows arrived as it went
    # the logged vector: keys, every feature, each view's age
    for column in COLUMNS:
        assert logged[f"input.{column}"].notna().all(), column
    for view, ttl in AGES.items():
        ages = logged[f"input.{view}__age_s"]
        assert (ages > 0).all() and (ages <= ttl.total_seconds()).all()
    # ... is the point-in-time value (a row-by-row reference over the world's rows)
    entity = logged_entities(logged)
    reference = expected_vectors(loop.world, entity)
    for column in COLUMNS:
        assert logged[f"input.{column}"].tolist() == reference[column].tolist(), column
    # ... and equals the training set at the logged times, value for value
    rebuilt = offline(logged)
    assert rebuilt[KEYS].astype(object).values.tolist() == \
        logged[[f"input.{k}" for k in KEYS]].astype(object).values.tolist()
    for column in COLUMNS:
        served = logged[f"input.{column}"].tolist()
        built = rebuilt[column].tolist()
        assert served == built, (column, [(i, a, b) for i, (a, b)
                                          in enumerate(zip(served, built, strict=True))
                                          if a != b][:5])
        assert [type(v) for v in served] == [type(v) for v in built]  # float is float
    # ... and so does the champion's answer on it
    model = ratchet.models.load(f"models:/{MODEL}/{champion}")
    answers = model.predict(rebuilt[COLUMNS])
    assert answers.tolist() == logged["output.prediction"].tolist()
    assert [a["predictions"][0] for a in day.answers] == answers.tolist()


def test_without_the_created_cutoff_the_training_set_would_see_rows_written_later(
        replay: Replay) -> None:
    """Without the cutoff, a training set sees rows computed after the request (the hour
    that had just closed, a correction): values the server could not have had. Only the
    cutoff gives back what was served."""
    loop, logged = replay.loop, replay.logged
    leaky = offline(logged, created_cutoff=False)
    entity = logged_entities(logged)
    stats = loop.world.driver_stats
    reference = as_of(stats, ["driver_id"], COLUMNS[:3], AGES["driver_stats"], entity,
                      created_cutoff=False)
    for column in COLUMNS[:3]:
        assert leaky[column].tolist() == reference[column].tolist(), column
    differ = np.flatnonzero(leaky["acceptance"].to_numpy()
                            != logged["input.acceptance"].to_numpy())
    assert len(differ) >= 5
    for row in differ:  # each time, a row with E <= T was written after T
        t, driver = entity[TIME].iloc[row], entity["driver_id"].iloc[row]
        late = stats[(stats["driver_id"] == driver) & (stats["event_ts"] <= t)
                     & (stats["created_ts"] > t)]
        assert len(late), (row, t, driver)
    # the zones' rows are also computed after their half hour closes
    zones = leaky[COLUMNS[3:5]].to_numpy() != logged[[f"input.{c}" for c in COLUMNS[3:5]]
                                                     ].to_numpy()
    assert zones.any()


def test_the_online_lookup_at_a_request_time_is_the_logged_vector(replay: Replay) -> None:
    """After the day, the online store holds the newest rows: asked as of the last
    request's time it answers what the server logged for that request."""
    last = replay.logged.iloc[-1]
    online = ratchet.features.get_online_features(
        FEATURES, [{k: last[f"input.{k}"] for k in [*KEYS, *REQUEST]}], now=last["timestamp"])
    values = online.to_pandas()
    for column in COLUMNS:
        assert values[column].iloc[0] == last[f"input.{column}"], column


def test_the_controller_retrains_on_the_served_vectors(replay: Replay) -> None:
    """The day's labels come back; a manual retrain through the controller builds its
    rows from the log and runs the example's pipeline on them: the training set it
    builds is the served vectors, and the new version serves from entity keys."""
    from ratchet.ct.controller import Controller
    from ratchet.ct.live_world import LiveWorld
    from ratchet.ct.policy import load_policy
    from ratchet.serving.deployments import DeploymentClient

    loop, logged = replay.loop, replay.logged
    trips = loop.world.trips_between(*loop.world.day(1))
    deployments = loop.workspace.client(DeploymentClient)
    end_ms = int(loop.world.day(1)[1].value // 1_000_000) + 3_600_000
    outcome = deployments.record_feedback(MODEL, {"feedback": [
        {"request_id": r, "row": 0, "value": int(v)}
        for r, v in zip(logged["request_id"], trips[LABEL], strict=True)]}, now_ms=end_ms)
    assert outcome.recorded == len(trips) and not outcome.rejected

    policy = replace(load_policy(EXAMPLE / "policy.yaml"), pipeline=PIPELINE)
    world = LiveWorld(policy, deployments, clock=lambda: end_ms)
    loop.workspace.stores.ct_state.request(MODEL, "retrain", at=end_ms, actor="test")
    result = Controller(policy, world, holder="test").tick()
    events = {e.kind: e for e in loop.workspace.stores.ct_events.history(MODEL)}
    assert [e for _, _, e in result.steps][:4] == ["trigger", "data", "retrained", "gate"], \
        (result.describe(), {k: e.summary for k, e in events.items()})
    # monitoring judged the logged vectors against the champion's training set (its
    # lineage) and saw the drivers' acceptance drift
    monitored = loop.workspace.stores.monitor.latest(MODEL)
    assert monitored is not None
    assert monitored.result["reference"]["dataset"] == "trip-completion-training-set"
    assert "acceptance" in monitored.result["drift"]["drifted_columns"]
    # the controller's rows: the oldest labeled log rows (the newest are the holdout),
    # each with its keys, request time (data.timestamp), logged vector and label
    retrained = events["retrained"].evidence
    rows = ratchet.data.get(retrained["train"]).to_pandas()
    n = len(rows)
    assert n == events["data"].evidence["train"] and 0 < n < len(logged)
    assert rows[TIME].tolist() == logged["timestamp"].iloc[:n].tolist()
    assert rows[LABEL].tolist() == trips[LABEL].iloc[:n].tolist()
    for column in [*KEYS, *REQUEST, *COLUMNS]:
        assert rows[column].tolist() == logged[f"input.{column}"].iloc[:n].tolist(), column
    # they reached the pipeline, whose training set, rebuilt from the feature store at
    # those times, is the served vectors
    from ratchet.pipelines.runs import get_pipeline_run

    run = get_pipeline_run(retrained["pipeline_run"], workspace=loop.workspace)
    assert run.record.params["data"] == retrained["train"]
    built = _training_set_of(run)
    given = [*KEYS, TIME, *REQUEST, LABEL]
    assert built[given].values.tolist() == rows[given].values.tolist()
    for column in COLUMNS:
        assert built[column].tolist() == rows[column].tolist(), column
    # the challenger serves from entity keys too, and was judged on the logged vectors
    loaded = ratchet.models.load(f"models:/{MODEL}/{retrained['version']}")
    assert loaded.features is not None and loaded.features.entity_keys == tuple(KEYS)
    assert loaded.features.request_fields == tuple(REQUEST)
    assert events["gate"].evidence["evidence"]["challenger"]["n"] == len(logged) - n


def _training_set_of(run: Any) -> pd.DataFrame:
    """The training-set dataset a pipeline run's training_frame step recorded."""
    (output,) = [o for o in run.step("training_frame").outputs if o.dataset is not None]
    name, version = output.dataset
    return ratchet.data.get(f"{name}@{version}").to_pandas()
