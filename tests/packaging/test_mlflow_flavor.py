"""Loading directories MLflow wrote (the ``mlflow`` flavor), laid out here by hand exactly as
MLflow lays them out (MLmodel YAML + the model file), with the ``ratchet-model.json`` the
registry writes beside them; and the loader MLflow calls for ratchet's own models."""

from __future__ import annotations

import copy
import importlib.util
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import skops.io
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from ratchet.errors import InvalidInput, SignatureMismatch, Untrusted
from ratchet.packaging import load_model, save_model
from ratchet.packaging.manifest import MANIFEST_FILENAME
from ratchet.packaging.mlflow_format import MLMODEL_FILENAME, manifest_for_mlflow_model
from ratchet.packaging.mlflow_pyfunc import _load_pyfunc
from tests.packaging.test_flavors import Doubler
from tests.packaging.test_mlflow_format import (
    LIGHTGBM_BOOSTER_MLMODEL,
    LIGHTGBM_PICKLED_MLMODEL,
    MLFLOW2_CLOUDPICKLE,
    MLFLOW_PYTHON_MODEL,
    XGBOOST_MLMODEL,
)

SKLEARN_SKOPS = """\
flavors:
  python_function:
    loader_module: mlflow.sklearn
    model_path: model.skops
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.skops
    serialization_format: skops
    sklearn_version: 1.9.1
    skops_trusted_types: null
mlflow_version: 3.17.2
signature:
  inputs: '[{"type": "double", "name": "a", "required": true}, {"type": "double", "name":
    "b", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
utc_time_created: '2026-12-06 08:00:00.348424'
"""


def mlflow_dir(path: Path, mlmodel: str, files: dict[str, Callable[[Path], object]]) -> Path:
    """An MLflow model directory: the MLmodel, each model file written by its writer, and
    the manifest the registry derives from the MLmodel when the version is registered."""
    path.mkdir()
    (path / MLMODEL_FILENAME).write_text(mlmodel)
    for name, write in files.items():
        write(path / name)
    manifest = manifest_for_mlflow_model(mlmodel, str(path / MLMODEL_FILENAME),
                                         [MLMODEL_FILENAME, *files])
    (path / MANIFEST_FILENAME).write_text(manifest.to_json())
    return path


def cloudpickled(model: object) -> Callable[[Path], object]:
    def write(path: Path) -> None:
        with open(path, "wb") as f:
            cloudpickle.dump(model, f)

    return write


def two_columns() -> tuple[pd.DataFrame, np.ndarray, LogisticRegression]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    frame = pd.DataFrame({"a": X.iloc[:, 0], "b": X.iloc[:, 2]})
    return frame, y.to_numpy(), LogisticRegression(max_iter=500).fit(frame, y)


# --------------------------------------------------------------------------- pickles
def test_an_mlflow_pickle_is_refused_without_trust_and_loads_with_it(tmp_path: Path) -> None:
    X, _, model = two_columns()
    directory = mlflow_dir(tmp_path / "m", MLFLOW2_CLOUDPICKLE, {"model.pkl": cloudpickled(model)})
    with pytest.raises(Untrusted) as info:
        load_model(directory)
    message = str(info.value)
    assert "logged by MLflow as a pickle (model.pkl)" in message
    assert "runs arbitrary code" in message and "--trust" in message and "skops" in message
    loaded = load_model(directory, trust=True)
    assert loaded.flavor == "mlflow"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_pickled_lightgbm_sklearn_model_needs_trust(tmp_path: Path) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    directory = mlflow_dir(tmp_path / "m", LIGHTGBM_PICKLED_MLMODEL,
                           {"model.pkl": cloudpickled(model)})
    with pytest.raises(Untrusted, match="pickle"):
        load_model(directory)
    np.testing.assert_array_equal(load_model(directory, trust=True).predict(X), model.predict(X))


def test_the_mlmodel_decides_not_the_recorded_manifest(tmp_path: Path) -> None:
    """A manifest recorded as safe (skops) does not make a pickle put there later safe."""
    _, _, model = two_columns()
    directory = mlflow_dir(tmp_path / "m", SKLEARN_SKOPS,
                           {"model.skops": lambda p: skops.io.dump(model, p)})
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))  # type: ignore[return-value]

    (directory / "model.pkl").write_bytes(pickle.dumps(Payload()))
    (directory / MLMODEL_FILENAME).write_text(MLFLOW2_CLOUDPICKLE)
    with pytest.raises(Untrusted, match="pickle"):
        load_model(directory)
    assert not marker.exists()


# --------------------------------------------------------------------------- safe formats
def test_an_mlflow3_skops_model_loads_without_trust(tmp_path: Path) -> None:
    X, _, model = two_columns()
    directory = mlflow_dir(tmp_path / "m", SKLEARN_SKOPS,
                           {"model.skops": lambda p: skops.io.dump(model, p)})
    loaded = load_model(directory)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict(X.to_dict(orient="records")), model.predict(X))
    with pytest.raises(SignatureMismatch, match="column 'b': missing"):
        loaded.predict(X[["a"]])  # MLflow's signature, enforced the ratchet way


def test_a_skops_model_outside_the_allow_list_needs_trust(tmp_path: Path) -> None:
    X, y, _ = two_columns()
    model = make_pipeline(FunctionTransformer(func=copy.copy),
                          LogisticRegression(max_iter=500)).fit(X, y)
    directory = mlflow_dir(tmp_path / "m", SKLEARN_SKOPS,
                           {"model.skops": lambda p: skops.io.dump(model, p)})
    with pytest.raises(Untrusted, match=r"copy\.copy"):
        load_model(directory)
    np.testing.assert_array_equal(load_model(directory, trust=True).predict(X), model.predict(X))


@pytest.mark.parametrize("model_class", ["xgboost.sklearn.XGBClassifier",
                                         "xgboost.core.Booster"])
def test_an_xgboost_model_loads_natively_without_trust(tmp_path: Path, model_class: str) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    model = xgb.XGBClassifier(n_estimators=5).fit(X, y)
    native = model if model_class.endswith("XGBClassifier") else model.get_booster()
    mlmodel = XGBOOST_MLMODEL.replace("xgboost.sklearn.XGBClassifier", model_class)
    directory = mlflow_dir(tmp_path / "m", mlmodel,
                           {"model.ubj": lambda p: native.save_model(str(p))})
    loaded = load_model(directory)
    expected = model.predict(X) if native is model else model.predict_proba(X)[:, 1]
    np.testing.assert_allclose(loaded.predict(X), expected, rtol=1e-6)


def test_a_lightgbm_booster_loads_natively_without_trust(tmp_path: Path) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y),
                        num_boost_round=5)
    directory = mlflow_dir(tmp_path / "m", LIGHTGBM_BOOSTER_MLMODEL,
                           {"model.lgb": lambda p: booster.save_model(str(p))})
    np.testing.assert_allclose(load_model(directory).predict(X), booster.predict(X))


def test_a_malformed_native_file_is_refused_by_the_probe(tmp_path: Path) -> None:
    directory = mlflow_dir(tmp_path / "m", XGBOOST_MLMODEL,
                           {"model.ubj": lambda p: p.write_bytes(b"{not a model" * 50)})
    with pytest.raises(InvalidInput, match="refused"):
        load_model(directory)


# --------------------------------------------------------------------------- pyfunc
def test_a_generic_pyfunc_model_needs_trust_and_mlflow(tmp_path: Path) -> None:
    directory = mlflow_dir(tmp_path / "m", MLFLOW_PYTHON_MODEL,
                           {"python_model.pkl": cloudpickled(Doubler(2.0))})
    with pytest.raises(Untrusted, match=r"only MLflow can load it.*mlflow package"):
        load_model(directory)
    if importlib.util.find_spec("mlflow") is None:
        with pytest.raises(InvalidInput, match="pip install mlflow"):
            load_model(directory, trust=True)


# --------------------------------------------------------------------------- files
def test_a_model_file_outside_the_directory_is_refused(tmp_path: Path) -> None:
    _, _, model = two_columns()
    outside = tmp_path / "elsewhere.skops"
    skops.io.dump(model, outside)
    directory = mlflow_dir(tmp_path / "m", SKLEARN_SKOPS,
                           {"model.skops": lambda p: p.symlink_to(outside)})
    with pytest.raises(InvalidInput, match="outside it"):
        load_model(directory)


def test_a_missing_model_file_is_named(tmp_path: Path) -> None:
    _, _, model = two_columns()
    directory = mlflow_dir(tmp_path / "m", SKLEARN_SKOPS,
                           {"model.skops": lambda p: skops.io.dump(model, p)})
    (directory / "model.skops").unlink()
    with pytest.raises(InvalidInput, match=r"'model\.skops' the MLmodel names is missing"):
        load_model(directory)


def test_the_mlflow_flavor_never_saves(tmp_path: Path) -> None:
    _, _, model = two_columns()
    with pytest.raises(InvalidInput, match="flavor 'mlflow' cannot save"):
        save_model(model, tmp_path / "m", flavor="mlflow")


# --------------------------------------------------------------------------- MLflow's loader
def test_the_mlflow_loader_loads_ratchet_models_the_ratchet_way(tmp_path: Path) -> None:
    X, _, model = two_columns()
    save_model(model, tmp_path / "m", input_example=X)
    pyfunc = _load_pyfunc(str(tmp_path / "m"))
    np.testing.assert_array_equal(pyfunc.predict(X, params=None), model.predict(X))
    assert pyfunc.get_raw_model().__class__ is LogisticRegression
    with pytest.raises(SignatureMismatch):
        pyfunc.predict(X[["b"]])


def test_the_mlflow_loader_never_implies_trust(tmp_path: Path) -> None:
    save_model(Doubler(2.0), tmp_path / "m")
    with pytest.raises(Untrusted, match="cloudpickle"):
        _load_pyfunc(str(tmp_path / "m"))


# --------------------------------------------------------------------------- served
def register_mlflow_dir(tmp_path: Path, directory: Path, name: str) -> Any:
    """The MLflow directory logged as a run's artifacts and registered, as the MLflow
    routes leave it (the manifest beside the MLmodel); a workspace of its own."""
    from ratchet.config import Settings
    from ratchet.registry import RegistryClient
    from ratchet.workspace import Workspace

    home = tmp_path / "home"
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                        artifacts_uri=str(home / "artifacts"))
    registry = RegistryClient(Workspace(settings))
    with registry.tracking.start_run(experiment="mlflow-models") as run:
        registry.tracking.log_artifacts(run.id, directory, "model")
    registry.register(f"runs:/{run.id}/model", name)
    registry.set_alias(name, "champion", 1)
    return registry


def serve_and_predict(registry: Any, model: str, rows: list[dict[str, float]], *,
                      trust: bool) -> Any:
    from fastapi.testclient import TestClient

    from ratchet.serving import create_app
    from ratchet.serving.app import ServingConfig
    from tests.serving.conftest import wait_until

    config = ServingConfig(poll_interval_s=0.05, log_flush_interval_s=0.1, startup_wait_s=10)
    app = create_app(model, workspace=registry.workspace, config=config, trust=trust)
    with TestClient(app) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        answer = client.post("/predict", json={"inputs": rows})
        assert answer.status_code == 200, answer.text
        return answer.json()["predictions"]


def test_an_mlflow_skops_model_is_served_without_trust(tmp_path: Path) -> None:
    X, _, model = two_columns()
    directory = mlflow_dir(tmp_path / "m", SKLEARN_SKOPS,
                           {"model.skops": lambda p: skops.io.dump(model, p)})
    registry = register_mlflow_dir(tmp_path, directory, "mlflow_iris")
    rows = X.head(5).to_dict(orient="records")
    predictions = serve_and_predict(registry, "mlflow_iris@champion", rows, trust=False)
    assert predictions == model.predict(X.head(5)).tolist()


def test_ratchet_serve_refuses_an_mlflow_pickle_without_trust(tmp_path: Path) -> None:
    from ratchet.serving.deployments import DeploymentClient
    from ratchet.serving.workers import refuse_untrusted

    X, _, model = two_columns()
    # Served models need a signature: MLflow writes one when logged with an input example.
    signature = SKLEARN_SKOPS[SKLEARN_SKOPS.index("signature:"):
                              SKLEARN_SKOPS.index("utc_time_created")]
    directory = mlflow_dir(tmp_path / "m", MLFLOW2_CLOUDPICKLE + signature,
                           {"model.pkl": cloudpickled(model)})
    registry = register_mlflow_dir(tmp_path, directory, "mlflow_pickle")
    client = registry.workspace.client(DeploymentClient)
    # What `ratchet serve mlflow_pickle@champion` checks before it binds its port.
    with pytest.raises(Untrusted, match=r"runs arbitrary code.*--trust"):
        refuse_untrusted(client, {"main": ("mlflow_pickle", 1)}, trust=False)
    refuse_untrusted(client, {"main": ("mlflow_pickle", 1)}, trust=True)
    with pytest.raises(Untrusted, match="logged by MLflow as a pickle"):
        registry.load("models:/mlflow_pickle/1")
    rows = X.head(5).to_dict(orient="records")
    predictions = serve_and_predict(registry, "mlflow_pickle@champion", rows, trust=True)
    assert predictions == model.predict(X.head(5)).tolist()
