"""Models served from entity keys: the server fetches the online features, runs the
on-demand views, validates, predicts and logs the vector it used; and the wrong inputs
(keys missing or mistyped, unknown entities, request fields missing, the online store
down, on-demand code that is not the registered one)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression

import ratchet
from ratchet.config import Settings
from ratchet.features import Entity, FeatureView
from ratchet.features.online_connections import close_shared_online_stores
from ratchet.registry import RegistryClient
from ratchet.serving import create_app
from ratchet.serving.prediction_query import predictions
from ratchet.serving.server_state import ServingConfig
from ratchet.workspace import Workspace

REFS = ["driver_stats:rating", "trip_ratios:trips_per_km"]
ON_DEMAND = '''
import pandas as pd
from ratchet.features import on_demand


@on_demand(inputs=["driver_stats:trips"], request=["km"], features=["trips_per_km"])
def trip_ratios(df):
    """Trips per km of the requested trip."""
    return pd.DataFrame({{"trips_per_km": df["trips"] / df["km"]{change}}})
'''


def _module(folder: Path, change: str = "") -> str:
    """A module declaring the on-demand view, under a name no other test uses."""
    name = f"eta_features_{uuid.uuid4().hex[:10]}"
    (folder / f"{name}.py").write_text(ON_DEMAND.format(change=change))
    return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A private redis-server on 127.0.0.1:``port`` (no persistence), stopped after."""
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                        timeout=0.2):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


class Setup:
    def __init__(self, root: Path, online_store: str | None = None) -> None:
        self.root = root
        self.now = pd.Timestamp.now(tz="UTC").floor("s")
        days = pd.Timedelta(days=1)
        pd.DataFrame({
            "driver_id": [1, 1, 2, 3],
            "event_ts": [self.now - 3 * days, self.now - days, self.now - 2 * days,
                         self.now - 10 * days],  # driver 3: older than the 7-day ttl
            "trips": [10, 20, 30, 40], "rating": [4.0, 4.5, 3.5, 5.0],
        }).to_parquet(root / "stats.parquet")
        home = root / "home"
        self.settings = Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                                 artifacts_uri=str(home / "artifacts"),
                                 online_store=online_store)
        self.ws = Workspace(self.settings)
        self.module = _module(root)
        self.driver = Entity("driver", join_keys=["driver_id"])
        self.view = FeatureView("driver_stats", entities=[self.driver], source="stats.parquet",
                                timestamp_field="event_ts", features=["trips", "rating"],
                                ttl=timedelta(days=7))

    def apply(self, module: str) -> None:
        import importlib

        declared = importlib.import_module(module).trip_ratios
        ratchet.features.apply([self.driver, self.view, declared], base_dir=self.root,
                               workspace=self.ws)

    def log(self, name: str, model: Any, X: pd.DataFrame) -> None:
        registry = self.ws.client(RegistryClient)
        with registry.tracking.start_run(experiment="eta") as run:
            registry.log_model(run.id, model, name=name, input_example=X, features=REFS)

    def app(self, model: str, **config: Any) -> Any:
        base = ServingConfig(poll_interval_s=0.05, log_flush_interval_s=0.1,
                             startup_wait_s=10, features_modules=(self.module,))
        return create_app(model, workspace=self.ws, config=replace(base, **config))


TRAIN = pd.DataFrame({"rating": [3.0, 4.0, 4.5, 5.0], "trips_per_km": [1.0, 5.0, 10.0, 2.0]})
Y = [1.0, 2.0, 3.0, 4.0]


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.syspath_prepend(str(tmp_path))
    s = Setup(tmp_path)
    s.apply(s.module)
    s.log("eta", LinearRegression().fit(TRAIN, Y), TRAIN)  # no nulls in training: strict
    with_nulls = pd.concat([TRAIN, pd.DataFrame({"rating": [np.nan],
                                                 "trips_per_km": [np.nan]})])
    s.log("eta_nullable", HistGradientBoostingRegressor(max_iter=5, min_samples_leaf=1)
          .fit(with_nulls, [*Y, 0.0]), with_nulls)
    ratchet.features.materialize(workspace=s.ws)
    yield s
    close_shared_online_stores()


def test_entity_keys_only_are_answered_and_the_vector_is_logged(setup: Setup) -> None:
    model = LinearRegression().fit(TRAIN, Y)
    with TestClient(setup.app("eta/1")) as client:
        r = client.post("/predict", json={"inputs": [{"driver_id": 1, "km": 2.0},
                                                     {"driver_id": 2, "km": 4.0}]})
        assert r.status_code == 200, r.text
        # driver 1's latest row (a day old): rating 4.5, 20 trips; driver 2: 3.5, 30
        expected = model.predict(pd.DataFrame({"rating": [4.5, 3.5],
                                               "trips_per_km": [10.0, 7.5]}))
        np.testing.assert_allclose(r.json()["predictions"], expected)
        # the MLflow CSV format: keys arrive as text and are read as the integers they are
        csv = client.post("/invocations", content=b"driver_id,km\n1,2.0\n",
                          headers={"content-type": "text/csv"})
        assert csv.status_code == 200, csv.text
        np.testing.assert_allclose(csv.json()["predictions"], expected[:1])
    logged = predictions("eta", workspace=setup.ws).sort_values(["request_id", "row"])
    assert len(logged) == 3
    first = logged[logged.request_id == r.json()["request_id"]]
    assert first["input.driver_id"].tolist() == [1, 2]
    assert first["input.km"].tolist() == [2.0, 4.0]
    assert first["input.rating"].tolist() == [4.5, 3.5]
    assert first["input.trips_per_km"].tolist() == [10.0, 7.5]
    ages = first["input.driver_stats__age_s"].to_numpy()
    arrival = pd.Timestamp(first["timestamp"].iloc[0])
    expected_ages = [(arrival - (setup.now - pd.Timedelta(days=d))).total_seconds()
                     for d in (1, 2)]
    np.testing.assert_allclose(ages, expected_ages, atol=1e-6)  # as of the arrival time


@pytest.mark.parametrize(("row", "field", "words"), [
    ({"km": 2.0}, "driver_id", "missing"),
    ({"driver_id": None, "km": 2.0}, "driver_id", "an entity key is needed"),
    ({"driver_id": 1.5, "km": 2.0}, "driver_id", "expected an integer"),
    ({"driver_id": "1", "km": 2.0}, "driver_id",
     "expected an integer (the feature views' sources hold integer driver_id values), "
     "got '1'"),
    ({"driver_id": True, "km": 2.0}, "driver_id", "expected an integer"),
    ({"driver_id": {"id": 1}, "km": 2.0}, "driver_id", ""),
    ({"driver_id": 1}, "km", "missing"),
    ({"driver_id": 1, "km": 2.0, "rating": 5.0}, "rating", "not an input of the model"),
])
def test_wrong_keys_and_fields_are_422_naming_them(setup: Setup, row: dict[str, Any],
                                                   field: str, words: str) -> None:
    with TestClient(setup.app("eta/1")) as client:
        r = client.post("/predict", json={"inputs": [row]})
        assert r.status_code == 422, r.text
        body = r.json()
        assert field in body["error"] and words in body["error"]
        assert any(field in p["msg"] for p in body["detail"])


def test_an_on_demand_view_failing_on_the_requests_data_is_422(setup: Setup) -> None:
    with TestClient(setup.app("eta/1")) as client:
        r = client.post("/predict", json={"inputs": [{"driver_id": 1, "km": "far"}]})
        assert r.status_code == 422, r.text
        assert "trip_ratios" in r.json()["error"] and "from this request" in r.json()["error"]
        ok = client.post("/predict", json={"inputs": [{"driver_id": 1, "km": 2.0}]})
        assert ok.status_code == 200, ok.text  # one bad request costs no other


def test_an_unknown_or_expired_entity_is_null_features(setup: Setup) -> None:
    rows = [{"driver_id": 999, "km": 1.0}, {"driver_id": 3, "km": 1.0},
            {"driver_id": 1, "km": 2.0}]
    with TestClient(setup.app("eta/1")) as client:  # trained without nulls: a 422
        r = client.post("/predict", json={"inputs": rows})
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert any("feature view 'driver_stats' has no online features for driver_id=999"
                   in p["msg"] and p["loc"][2] == 0 for p in detail)
        assert any("for driver_id=3" in p["msg"] and p["loc"][2] == 1 for p in detail)
        assert not any(p["loc"][2] == 2 for p in detail)
    with TestClient(setup.app("eta_nullable/1")) as client:  # trained with nulls: answered
        r = client.post("/predict", json={"inputs": rows})
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == 3
    logged = predictions("eta_nullable", workspace=setup.ws).sort_values("row")
    assert logged["input.rating"].isna().tolist() == [True, True, False]
    assert logged["input.driver_stats__age_s"].isna().tolist() == [True, True, False]
    assert logged["input.driver_id"].tolist() == [999, 3, 1]


def test_on_demand_code_other_than_the_registered_refuses_to_load(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    # A server whose --features-module declares trip_ratios with other code (in a process
    # that has not imported the registered module): it refuses the model, saying why, and
    # answers nothing with other code.
    from ratchet.features import definitions

    other = _module(setup.root, change=" * 2")
    setup.module = other
    monkeypatch.setattr(definitions, "_loaded", {})  # a fresh process's declarations
    with TestClient(setup.app("eta/1")) as client:
        r = client.post("/predict", json={"inputs": [{"driver_id": 1, "km": 2.0}]})
        assert r.status_code == 503, r.text
        assert "trip_ratios" in r.json()["error"]
        assert "differs from its registered version" in r.json()["error"]
    # Registered as a new version, the new code is the current one: a model logged with
    # version 1 is still refused (it was trained on other code); a new model is served.
    setup.apply(other)
    with TestClient(setup.app("eta/1")) as client:
        r = client.post("/predict", json={"inputs": [{"driver_id": 1, "km": 2.0}]})
        assert r.status_code == 503
        assert "logged with on-demand view 'trip_ratios' version 1" in r.json()["error"]
    setup.log("eta2", LinearRegression().fit(TRAIN, Y), TRAIN)
    with TestClient(setup.app("eta2/1")) as client:
        r = client.post("/predict", json={"inputs": [{"driver_id": 1, "km": 2.0}]})
        assert r.status_code == 200, r.text


def test_a_features_module_that_cannot_be_imported_stops_the_app(setup: Setup) -> None:
    from ratchet.errors import InvalidInput, NotFound

    with pytest.raises(NotFound, match="no such file or module"):
        setup.app("eta/1", features_modules=("no_such_features_module",))
    (setup.root / "broken_features.py").write_text("def f(:\n")
    with pytest.raises(InvalidInput, match=r"broken_features\.py:1: SyntaxError"):
        setup.app("eta/1", features_modules=(str(setup.root / "broken_features.py"),))
    with pytest.raises(NotFound, match=r"absent\.py: does not exist"):
        setup.app("eta/1", features_modules=(str(setup.root / "absent.py"),))


def test_redis_online_store_down_is_503_then_recovers(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    port = _free_port()
    s = Setup(tmp_path, online_store=f"redis://127.0.0.1:{port}/0")
    s.apply(s.module)
    s.log("eta", LinearRegression().fit(TRAIN, Y), TRAIN)
    body = {"inputs": [{"driver_id": 1, "km": 2.0}]}
    try:
        with _redis(port):
            ratchet.features.materialize(workspace=s.ws)
            with TestClient(s.app("eta/1")) as client:
                assert client.post("/predict", json=body).status_code == 200
                redis_stopped = True
        with TestClient(s.app("eta/1")) as client:  # Redis is stopped now
            assert redis_stopped
            r = client.post("/predict", json=body)
            assert r.status_code == 503, r.text
            assert "online store" in r.json()["error"] and "cannot be reached" in \
                r.json()["error"]
            with _redis(port):  # back (empty: no persistence): null features, a 422
                r = client.post("/predict", json=body)
                assert r.status_code == 422, r.text
                assert "no online features for driver_id=1" in r.text
                ratchet.features.materialize(workspace=s.ws, start="1970-01-01T00:00:00")
                r = client.post("/predict", json=body)
                assert r.status_code == 200, r.text
    finally:
        close_shared_online_stores()


def test_batch_scoring_reads_the_features_of_each_row(setup: Setup) -> None:
    from ratchet.serving.batch_scoring import score_file

    source = setup.root / "requests.parquet"
    pd.DataFrame({"driver_id": [2, 1, 999], "km": [4.0, 2.0, 1.0]}).to_parquet(source)
    result = score_file("eta_nullable/1", source, setup.root / "scored.parquet",
                        workspace=setup.ws)
    assert result.rows == 3
    scored = pd.read_parquet(setup.root / "scored.parquet")
    assert scored["driver_id"].tolist() == [2, 1, 999] and scored["prediction"].notna().all()
    logged = predictions("eta_nullable", workspace=setup.ws).sort_values("row")
    assert logged["input.driver_id"].tolist() == [2, 1, 999]
    assert logged["input.trips_per_km"].tolist()[:2] == [7.5, 10.0]
    assert np.isnan(logged["input.trips_per_km"].iloc[2])


def test_openapi_documents_the_keys_a_features_model_takes(setup: Setup) -> None:
    with TestClient(setup.app("eta/1")) as client:
        client.post("/predict", json={"inputs": [{"driver_id": 1, "km": 2.0}]})
        record = client.get("/openapi.json").json()["components"]["schemas"]["Record"]
    assert record["required"] == ["driver_id", "km"]
    assert record["properties"]["driver_id"]["type"] == ["integer", "string"]
    assert "rating" not in record["properties"]


def test_features_the_model_does_not_take_are_logged_not_given(setup: Setup) -> None:
    registry = setup.ws.client(RegistryClient)
    with registry.tracking.start_run(experiment="eta") as run:  # the whole view referenced
        registry.log_model(run.id, LinearRegression().fit(TRAIN, Y), name="eta_view",
                           input_example=TRAIN, features=["driver_stats", *REFS[1:]])
    with TestClient(setup.app("eta_view/1")) as client:
        r = client.post("/predict", json={"inputs": [{"driver_id": 1, "km": 2.0}]})
        assert r.status_code == 200, r.text
    logged = predictions("eta_view", workspace=setup.ws)
    assert logged["input.trips"].tolist() == [20] and logged["input.rating"].tolist() == [4.5]


def test_on_demand_code_not_imported_refuses_to_load_saying_how(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    from ratchet.features import definitions

    monkeypatch.delitem(definitions._loaded, "trip_ratios")  # as in a fresh process
    with TestClient(setup.app("eta/1", features_modules=())) as client:
        r = client.post("/predict", json={"inputs": [{"driver_id": 1, "km": 2.0}]})
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert "'trip_ratios'" in error and "not loaded" in error
        assert "--features-module" in error


def test_open_inference_protocol_takes_the_keys(setup: Setup) -> None:
    with TestClient(setup.app("eta/1")) as client:
        client.post("/predict", json={"inputs": [{"driver_id": 1, "km": 2.0}]})  # loaded
        meta = client.get("/v2/models/eta").json()
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
            ("driver_id", "INT64"), ("km", "FP64")]
        tensors = [{"name": "driver_id", "shape": [2], "datatype": "INT64", "data": [1, 2]},
                   {"name": "km", "shape": [2], "datatype": "FP64", "data": [2.0, 4.0]}]
        r = client.post("/v2/models/eta/infer", json={"inputs": tensors})
        assert r.status_code == 200, r.text
        expected = client.post("/predict", json={"inputs": {"driver_id": [1, 2],
                                                            "km": [2.0, 4.0]}}).json()
        assert r.json()["outputs"][0]["data"] == expected["predictions"]


def test_full_feature_names_and_a_features_model_without_a_workspace(setup: Setup) -> None:
    from ratchet.errors import InvalidInput
    from ratchet.serving.served_model import ModelVersionRef, ServedModel

    full = TRAIN.rename(columns={"rating": "driver_stats__rating",
                                 "trips_per_km": "trip_ratios__trips_per_km"})
    registry = setup.ws.client(RegistryClient)
    with registry.tracking.start_run(experiment="eta") as run:
        registry.log_model(run.id, LinearRegression().fit(full, Y), name="eta_full",
                           input_example=full, features=REFS, full_feature_names=True)
    with TestClient(setup.app("eta_full/1")) as client:
        r = client.post("/predict", json={"inputs": [{"driver_id": 2, "km": 4.0}]})
        assert r.status_code == 200, r.text
    logged = predictions("eta_full", workspace=setup.ws)
    assert logged["input.driver_stats__rating"].tolist() == [3.5]
    assert logged["input.trip_ratios__trips_per_km"].tolist() == [7.5]
    loaded = registry.load("models:/eta_full/1")
    with pytest.raises(InvalidInput, match="serve it with a workspace"):
        ServedModel(ModelVersionRef("eta_full", 1), loaded)


def test_an_unusable_sqlite_online_store_is_503(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = tmp_path / "online.sqlite"
    broken.write_bytes(b"this is not a SQLite database" * 100)
    s = Setup(tmp_path, online_store=f"sqlite:///{broken}")
    s.apply(s.module)
    s.log("eta", LinearRegression().fit(TRAIN, Y), TRAIN)
    try:
        with TestClient(s.app("eta/1")) as client:
            r = client.post("/predict", json={"inputs": [{"driver_id": 1, "km": 2.0}]})
            assert r.status_code == 503, r.text
            assert "online store" in r.json()["error"]
    finally:
        close_shared_online_stores()


def test_serve_checks_the_features_modules_before_binding(setup: Setup) -> None:
    from ratchet.errors import NotFound
    from ratchet.serving.workers import serve

    with pytest.raises(NotFound, match="no_such_features_module: no such file or module"):
        serve("eta/1", port=_free_port(), workspace=setup.ws,
              config=ServingConfig(features_modules=("no_such_features_module",)))


def test_monitoring_sees_the_served_features(setup: Setup) -> None:
    from ratchet.monitoring.monitor import run_monitor

    with TestClient(setup.app("eta/1")) as client:
        for _ in range(20):
            r = client.post("/predict", json={"inputs": {"driver_id": [1, 2] * 10,
                                                         "km": [2.0, 4.0] * 10}})
            assert r.status_code == 200, r.text
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"rating": rng.uniform(3.0, 5.0, 100),
                              "trips_per_km": rng.uniform(1.0, 10.0, 100)})
    run = run_monitor("eta", workspace=setup.ws, reference=reference, store=False)
    assert run.result["rows"] == 400
    drift = run.result["drift"]  # the fetched features, as served, against the reference
    assert [c["column"] for c in drift["columns"]] == ["rating", "trips_per_km"]
    assert all(c["n_current"] == 400 for c in drift["columns"])
    assert drift["drifted_columns"] == ["rating", "trips_per_km"]  # two drivers only


def test_string_keys_are_checked_by_the_sources_kind(setup: Setup) -> None:
    pd.DataFrame({"zone": ["007", "12"], "event_ts": [setup.now - pd.Timedelta(hours=1)] * 2,
                  "surge": [1.5, 2.0]}).to_parquet(setup.root / "zones.parquet")
    zone = Entity("zone")
    ratchet.features.apply([zone, FeatureView(
        "zone_stats", entities=[zone], source="zones.parquet", timestamp_field="event_ts",
        features=["surge"])], base_dir=setup.root, workspace=setup.ws)
    ratchet.features.materialize(["zone_stats"], workspace=setup.ws)
    X = pd.DataFrame({"surge": [1.0, 1.5, 2.0, 3.0]})
    registry = setup.ws.client(RegistryClient)
    with registry.tracking.start_run(experiment="eta") as run:
        registry.log_model(run.id, LinearRegression().fit(X, Y), name="surge",
                           input_example=X, features=["zone_stats:surge"])
    with TestClient(setup.app("surge/1")) as client:
        ok = client.post("/invocations", content=b"zone\n007\n12\n",  # CSV text stays text
                         headers={"content-type": "text/csv"})
        assert ok.status_code == 200, ok.text
        r = client.post("/predict", json={"inputs": [{"zone": 12}]})
        assert r.status_code == 422
        assert "expected a string (the feature views' sources hold string zone values), " \
               "got 12" in r.json()["error"]
    logged = predictions("surge", workspace=setup.ws)
    assert logged["input.zone"].tolist() == ["007", "12"]
    assert logged["input.surge"].tolist() == [1.5, 2.0]


def test_requests_read_no_definitions_once_the_model_is_loaded(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    from ratchet.store.feature_definition_store import FeatureDefinitionStore

    body = {"inputs": [{"driver_id": 1, "km": 2.0}, {"driver_id": 999, "km": 1.0}]}
    with TestClient(setup.app("eta_nullable/1")) as client:
        assert client.post("/predict", json=body).status_code == 200  # loaded now
        reads: list[str] = []

        def no_reads(self: object, *args: object, **kwargs: object) -> None:
            reads.append(repr(args))
            raise AssertionError("a definition was read on the request path")

        for name in ("get_definition", "list_definitions", "definition_history"):
            monkeypatch.setattr(FeatureDefinitionStore, name, no_reads)
        for _ in range(5):
            r = client.post("/predict", json=body)
            assert r.status_code == 200, r.text
        assert reads == []
