"""No training/serving skew, end to end: a model trained on ``training_set(...)`` and
served from entity keys by ``ratchet serve`` (a process of its own) over HTTP logs, for
each entity, the vector ``training_set`` gives for the same entity at the request's time
(with ``created_cutoff``), value for value, and the prediction the model makes on it.

On the default SQLite online store and on Redis. The feature rows cover the point-in-time
rule's cases: several rows per entity (the latest wins), two rows at one event time (the
later created wins), a row older than the ttl (nulls), a row from the future (not yet
valid), an entity only pushed (the online write and the offline log), an entity with no
rows at all (nulls); an on-demand view computes a feature from a fetched one and a request
field.
"""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

import ratchet
from ratchet.config import Settings
from ratchet.features import Entity, FeatureView
from ratchet.features.online_connections import close_shared_online_stores
from ratchet.registry import RegistryClient
from ratchet.serving.prediction_query import predictions
from ratchet.workspace import Workspace
from tests.serving.conftest import running_server

REFS = ["driver_stats", "trip_ratios:trips_per_km"]
FEATURES = ["trips", "rating", "trips_per_km"]
MODULE = "skew_features"
ON_DEMAND = '''
import pandas as pd
from ratchet.features import on_demand


@on_demand(inputs=["driver_stats:trips"], request=["km"], features=["trips_per_km"])
def trip_ratios(df):
    return pd.DataFrame({"trips_per_km": df["trips"] / df["km"]})
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / f"{MODULE}.py").write_text(ON_DEMAND)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(MODULE, None)
    yield tmp_path
    sys.modules.pop(MODULE, None)
    close_shared_online_stores()


@pytest.fixture(params=["sqlite", "redis"])
def online_store(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The workspace's default SQLite online store, or a private redis-server."""
    if request.param == "sqlite":
        yield None
        return
    from tests.serving.test_feature_serving import _redis

    port = _free_port()
    with _redis(port):
        yield f"redis://127.0.0.1:{port}/0"


def test_the_served_vector_is_the_training_set_row_at_the_request_time(
        project: Path, online_store: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    now = pd.Timestamp.now(tz="UTC").floor("s")
    day = pd.Timedelta(days=1)
    rows = pd.DataFrame([
        # driver, event time, created time, trips, rating
        (1, now - 5 * day, now - 5 * day, 10, 4.0),
        (1, now - 2 * day, now - 2 * day, 12, 4.2),   # driver 1: the latest row wins
        (1, now - 30 * day, now - 30 * day, 99, 1.0),
        (2, now - 3 * day, now - 3 * day, 20, 3.0),
        (2, now - 3 * day, now - 1 * day, 21, 3.1),   # same event time, created later: wins
        (3, now - 10 * day, now - 10 * day, 30, 5.0),  # older than the 7-day ttl: nulls
        (4, now - 4 * day, now - 4 * day, 40, 4.4),
        (4, now + 2 * day, now - 1 * day, 41, 4.5),   # valid only in two days: not yet
        # driver 5: pushed below; driver 6: no rows at all
    ], columns=["driver_id", "event_ts", "created_ts", "trips", "rating"])
    rows.to_parquet(project / "stats.parquet")
    home = project / "home"
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                        artifacts_uri=str(home / "artifacts"), online_store=online_store)
    ws = Workspace(settings)
    driver = Entity("driver", join_keys=["driver_id"])
    view = FeatureView("driver_stats", entities=[driver], source="stats.parquet",
                       timestamp_field="event_ts", created_timestamp_field="created_ts",
                       features=["trips", "rating"], ttl=timedelta(days=7))
    ratchet.features.apply([driver, view, importlib.import_module(MODULE).trip_ratios],
                           base_dir=project, workspace=ws)

    # Train on labels at past times, as a training pipeline does.
    rng = np.random.default_rng(0)
    labels = pd.DataFrame({
        "driver_id": rng.integers(1, 7, 200),
        "event_timestamp": [now - pd.Timedelta(hours=int(h)) for h in rng.integers(1, 900, 200)],
        "km": rng.uniform(1.0, 20.0, 200).round(2),
        "eta": rng.uniform(5.0, 60.0, 200),
    })
    train = ratchet.features.training_set(labels, REFS, created_cutoff=True,
                                          workspace=ws).to_pandas()
    X = train[FEATURES]
    assert X.isna().any().all()  # the model is trained with missing features: nullable
    model = HistGradientBoostingRegressor(max_iter=20).fit(X, train["eta"])
    registry = ws.client(RegistryClient)
    with registry.tracking.start_run(experiment="eta") as run:
        registry.log_model(run.id, model, name="eta", input_example=X, features=REFS)

    ratchet.features.materialize(workspace=ws)
    ratchet.features.push("driver_stats", pd.DataFrame({
        "driver_id": [5], "event_ts": [now - 6 * pd.Timedelta(hours=1)], "trips": [50],
        "rating": [4.9]}), workspace=ws)

    # `ratchet serve` in a process of its own, importing the on-demand code the operator
    # names (a file: imported as the module `skew_features`, as the training code did).
    entities = {"driver_id": [1, 2, 3, 4, 5, 6], "km": [2.0, 3.0, 4.0, 5.0, 10.0, 1.0]}
    if online_store is not None:  # the server process reads it from its environment
        monkeypatch.setenv("RATCHET_ONLINE_STORE", online_store)
    with running_server(settings, project, "eta/1", "--features-module",
                        f"{MODULE}.py", "--log-flush", "0.1") as url:
        reply = httpx.post(f"{url}/predict", json={"inputs": entities}, timeout=30)
        assert reply.status_code == 200, reply.text
    served = reply.json()

    logged = predictions("eta", workspace=ws).sort_values("row").reset_index(drop=True)
    assert logged["request_id"].unique().tolist() == [served["request_id"]]
    at = pd.Timestamp(logged["timestamp"].iloc[0])
    expected = ratchet.features.training_set(
        pd.DataFrame({**entities, "event_timestamp": [at] * 6}), REFS, created_cutoff=True,
        workspace=ws).to_pandas()
    assert logged["input.driver_id"].tolist() == entities["driver_id"]
    for column in FEATURES:
        got = logged[f"input.{column}"].astype("float64").to_numpy()
        want = expected[column].astype("float64").to_numpy()
        np.testing.assert_array_equal(got, want, err_msg=column)  # NaN equals NaN here
    # The cases were what they say: the rule decided each row.
    assert expected["trips"].tolist()[:2] == [12, 21]
    assert expected["trips"].isna().tolist() == [False, False, True, False, False, True]
    assert expected["trips"].iloc[3] == 40 and expected["trips"].iloc[4] == 50
    # And the model answered on that vector.
    np.testing.assert_allclose(served["predictions"], model.predict(expected[FEATURES]))
    np.testing.assert_allclose(logged["output.prediction"], served["predictions"])
