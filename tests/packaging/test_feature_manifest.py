"""The ``features`` section of a model manifest: what a model served from entity keys
records, how log_model fills it from the registered definitions, and its wrong inputs."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import ratchet
from ratchet.errors import InvalidInput, NotFound
from ratchet.features import Entity, FeatureView, OnDemandFeatureView
from ratchet.packaging import load_model, save_model
from ratchet.packaging.manifest import MANIFEST_FILENAME, Manifest
from ratchet.packaging.model_features import ModelFeatures, model_features
from ratchet.registry import RegistryClient
from ratchet.workspace import Workspace

DRIVER = Entity("driver", join_keys=["driver_id"])
RIDER = Entity("rider", join_keys=["rider_id", "city"])


def _ratios(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"trips_per_km": df["trips"] / df["km"]})


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    pd.DataFrame({"driver_id": [1, 2], "event_ts": pd.to_datetime(["2026-01-01"] * 2),
                  "trips": [3, 4], "rating": [4.5, 4.0]}).to_parquet(tmp_path / "stats.parquet")
    pd.DataFrame({"rider_id": [1], "city": ["x"], "event_ts": pd.to_datetime(["2026-01-01"]),
                  "spend": [2.0]}).to_parquet(tmp_path / "riders.parquet")
    workspace = Workspace.at(tmp_path / ".ratchet")
    ratchet.features.apply([
        DRIVER, RIDER,
        FeatureView("driver_stats", entities=[DRIVER], source="stats.parquet",
                    timestamp_field="event_ts", features=["trips", "rating"],
                    ttl=timedelta(days=7)),
        FeatureView("rider_stats", entities=[RIDER], source="riders.parquet",
                    timestamp_field="event_ts", features=["spend"]),
        OnDemandFeatureView("ratios", function=_ratios, inputs=["driver_stats:trips"],
                            request=["km"], features=["trips_per_km"]),
    ], base_dir=tmp_path, workspace=workspace)
    return workspace


def _lookup(ws: Workspace):  # the registry's lookup: the workspace's definition store
    def lookup(kind: str, name: str) -> tuple[int, dict]:
        record = ws.stores.features.get_definition(kind, name)
        return record.version, record.spec
    return lookup


def test_model_features_collects_keys_request_fields_and_versions(ws: Workspace) -> None:
    features = model_features(["driver_stats:rating", "rider_stats", "ratios:trips_per_km"],
                              lookup=_lookup(ws))
    assert features.entity_keys == ("driver_id", "rider_id", "city")
    assert features.request_fields == ("km",)
    assert features.request_columns == ("driver_id", "rider_id", "city", "km")
    assert set(features.definitions) == {("feature_view", "driver_stats", 1),
                                         ("feature_view", "rider_stats", 1),
                                         ("on_demand", "ratios", 1)}
    assert features.version_of("on_demand", "ratios") == 1
    assert features.version_of("feature_view", "nowhere") is None
    # the section survives JSON, as the manifest stores it
    again = ModelFeatures.from_dict(json.loads(json.dumps(features.to_dict())))
    assert again == features


@pytest.mark.parametrize(("refs", "message"), [
    (["nowhere:x"], "no feature view or on-demand view 'nowhere' is registered"),
    (["driver_stats:speed"], "view 'driver_stats' has no feature 'speed'"),
    (["ratios:nope"], "view 'ratios' has no feature 'nope'"),
    (["driver_stats:"], "is not 'view:feature' or 'view'"),
    (["a:b:c"], "is not 'view:feature' or 'view'"),
    (["driver_stats:trips", "driver_stats:trips"], "given more than once"),
    ([], "at least one feature reference"),
    ("driver_stats:trips", "must be a list"),
    ([7], "a feature reference is 'view:feature' or 'view'"),
])
def test_wrong_references_are_refused_with_the_reason(ws: Workspace, refs: object,
                                                      message: str) -> None:
    with pytest.raises((InvalidInput, NotFound), match=message):
        model_features(refs, lookup=_lookup(ws))  # type: ignore[arg-type]


@pytest.mark.parametrize(("section", "message"), [
    ("not an object", "field 'features' has the wrong type"),
    ({"refs": "driver_stats:trips"}, "'features.refs' must be a list"),
    ({"refs": ["v:f"], "entity_keys": "driver_id"}, "'features.entity_keys' must be a list"),
    ({"refs": ["v:f"], "entity_keys": ["a", "a"]}, "entity_keys must be distinct"),
    ({"refs": ["v:f"], "definitions": [["table", "v", 1]]}, "a definition is"),
    ({"refs": ["v:f"], "definitions": [["feature_view", "v", "1"]]}, "a definition is"),
    ({"refs": ["v:f"], "full_feature_names": "yes"}, "full_feature_names must be"),
])
def test_a_bad_features_section_fails_the_load_clearly(tmp_path: Path, section: object,
                                                       message: str) -> None:
    X = pd.DataFrame({"trips": [1.0, 2.0, 3.0]})
    directory = tmp_path / "m"
    save_model(LinearRegression().fit(X, [1.0, 2.0, 3.0]), directory, input_example=X)
    path = directory / MANIFEST_FILENAME
    data = json.loads(path.read_text())
    data["features"] = section
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match=message) as caught:
        load_model(directory)
    assert str(path) in str(caught.value)


def test_save_model_with_features_needs_a_signature(tmp_path: Path) -> None:
    X = pd.DataFrame({"trips": [1.0, 2.0, 3.0]})
    model = LinearRegression().fit(X, [1.0, 2.0, 3.0])
    with pytest.raises(InvalidInput, match="needs a signature"):
        save_model(model, tmp_path / "m", features=ModelFeatures(("driver_stats:trips",)))
    with pytest.raises(InvalidInput, match="features must be a ModelFeatures"):
        save_model(model, tmp_path / "m", input_example=X,
                   features=["driver_stats:trips"])  # type: ignore[arg-type]
    assert not (tmp_path / "m").exists()


def test_a_manifest_without_features_loads_as_before(tmp_path: Path) -> None:
    X = pd.DataFrame({"trips": [1.0, 2.0, 3.0]})
    manifest = save_model(LinearRegression().fit(X, [1.0, 2.0, 3.0]), tmp_path / "m",
                          input_example=X)
    assert manifest.features is None
    data = json.loads(manifest.to_json())
    del data["features"]  # written by a ratchet before this section existed
    assert Manifest.from_json(json.dumps(data), "old").features is None
    assert load_model(tmp_path / "m").features is None


def test_log_model_records_the_features_section(ws: Workspace) -> None:
    X = pd.DataFrame({"rating": [4.5, 4.0, 3.0], "trips_per_km": [0.1, 0.2, 0.3]})
    model = LinearRegression().fit(X, [1.0, 2.0, 3.0])
    registry = ws.client(RegistryClient)
    run = ws.stores.tracking.create_run(
        ws.stores.tracking.get_or_create_experiment("eta").experiment_id)
    version = registry.log_model(run.run_id, model, name="eta", input_example=X,
                                 features=["driver_stats:rating", "ratios:trips_per_km"])
    section = version.manifest["features"]
    assert section["refs"] == ["driver_stats:rating", "ratios:trips_per_km"]
    assert section["entity_keys"] == ["driver_id"] and section["request_fields"] == ["km"]
    assert section["full_feature_names"] is False
    loaded = registry.load("models:/eta/1")
    assert loaded.features is not None and loaded.features.refs == tuple(section["refs"])
    # a reference to nothing registered is refused before anything is logged
    with pytest.raises(NotFound, match="'nowhere' is registered"):
        registry.log_model(run.run_id, model, name="eta", input_example=X,
                           features=["nowhere:x"])
    assert [v.version for v in registry.list_versions("eta")] == [1]


def test_log_model_with_features_on_every_backend(workspace_on: Path) -> None:
    """SQLite, PostgreSQL and a live team server (remote mode): the same section."""
    pd.DataFrame({"driver_id": [1, 2], "event_ts": pd.to_datetime(["2026-01-01"] * 2),
                  "trips": [3, 4], "rating": [4.5, 4.0]}).to_parquet(
        workspace_on / "stats.parquet")
    ratchet.features.apply([DRIVER, FeatureView(
        "driver_stats", entities=[DRIVER], source="stats.parquet", timestamp_field="event_ts",
        features=["trips", "rating"])], base_dir=workspace_on)
    X = pd.DataFrame({"rating": [4.5, 4.0, 3.0]})
    with ratchet.start_run(experiment="eta"):
        version = ratchet.log_model(LinearRegression().fit(X, [1.0, 2.0, 3.0]), "eta",
                                    input_example=X, features=["driver_stats:rating"])
    assert version.manifest["features"]["entity_keys"] == ["driver_id"]
    assert version.manifest["features"]["definitions"] == [["feature_view", "driver_stats", 1]]
    assert ratchet.models.load("models:/eta/1").features is not None
