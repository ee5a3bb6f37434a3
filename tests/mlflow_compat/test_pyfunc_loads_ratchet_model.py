"""``mlflow.pyfunc.load_model(<a directory ratchet saved>)`` in the real MLflow client venvs
(2.x and 3.x): the MLmodel ratchet writes routes MLflow to ratchet's loader, predictions
match ratchet's own, MLflow sees the signature, and a cloudpickle model is refused (MLflow
never loads it without the trust only ratchet can be given).

The other way: directories the real ``mlflow.sklearn.save_model`` / ``mlflow.pyfunc``
wrote, loaded by ratchet (``manifest_for_mlflow_model`` + ``load_model``): skops without
trust, pickles only with it, a generic python_function model never without mlflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ratchet.errors import InvalidInput, Untrusted
from ratchet.packaging import load_model, save_model
from ratchet.packaging.manifest import MANIFEST_FILENAME
from ratchet.packaging.mlflow_format import MLMODEL_FILENAME, manifest_for_mlflow_model
from tests.mlflow_compat.client_processes import ClientProcesses
from tests.mlflow_compat.conftest import SCRIPT_TIMEOUT_S, client_env
from tests.packaging.test_flavors import Doubler

pytestmark = pytest.mark.e2e

# What the MLflow user runs (no ratchet import: MLflow finds the loader in the MLmodel).
CLIENT = r"""
import json, sys
import numpy as np, pandas as pd
import mlflow.pyfunc

cases = json.loads(open(sys.argv[1]).read())
out = {}
for name, case in cases.items():
    try:
        model = mlflow.pyfunc.load_model(case["path"])
        if case["input"] == "frame":
            data = pd.DataFrame(case["records"])
        else:
            data = np.asarray(case["rows"], dtype="float64")
        schema = model.metadata.get_input_schema()
        out[name] = {
            "ok": True,
            "predictions": np.asarray(model.predict(data)).tolist(),
            "schema": None if schema is None else schema.input_names(),
            "loader": model.metadata.flavors["python_function"]["loader_module"],
        }
        if case.get("missing"):
            try:
                model.predict(data.drop(columns=[case["missing"]]))
                out[name]["missing_refused"] = None
            except Exception as e:
                out[name]["missing_refused"] = type(e).__name__
    except Exception as e:
        out[name] = {"ok": False, "type": type(e).__name__, "message": str(e)}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Models saved by ratchet, the inputs to send, and ratchet's own predictions."""
    root = tmp_path_factory.mktemp("ratchet-models")
    X, y = load_iris(return_X_y=True, as_frame=True)
    X = X.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame = X.assign(size=np.where(X["sepal_length"] > 5.8, "big", "small"))
    numeric = list(X.columns)
    pipeline = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), numeric),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["size"])]),
        LogisticRegression(max_iter=1000),
    ).fit(frame, y)
    save_model(pipeline, root / "frame", input_example=frame)
    regression = LinearRegression().fit(X.to_numpy(), y)
    save_model(regression, root / "array", input_example=X.to_numpy())
    save_model(Doubler(2.0), root / "pickle")
    rows = X.to_numpy()[::7]
    records = frame.iloc[::7].to_dict(orient="records")
    return {
        "cases": {
            "frame": {"path": str(root / "frame"), "input": "frame", "records": records,
                      "missing": "size"},
            "array": {"path": str(root / "array"), "input": "array", "rows": rows.tolist()},
            "pickle": {"path": str(root / "pickle"), "input": "array", "rows": rows.tolist()},
        },
        "expected": {
            "frame": pipeline.predict(pd.DataFrame(records)).tolist(),
            "array": regression.predict(rows).tolist(),
        },
        "frame_columns": list(frame.columns),
        "root": root,
    }


@pytest.fixture(scope="module")
def loaded(mlflow_clients: ClientProcesses, mlflow_python: str,
           saved: dict[str, Any]) -> dict[str, Any]:
    """The client's report: each model loaded with mlflow.pyfunc.load_model in its venv."""
    root: Path = saved["root"]
    cases = root / "cases.json"
    cases.write_text(json.dumps(saved["cases"]))
    done = mlflow_clients.run(mlflow_python, ["-c", str(cases)], code=CLIENT, cwd=root,
                              env=client_env(), timeout=SCRIPT_TIMEOUT_S)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def outcome(report: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = report[name]
    if not result["ok"]:
        pytest.fail(f"mlflow.pyfunc.load_model/predict of {name!r} raised {result['type']}: "
                    f"{result['message']}", pytrace=False)
    return result


def test_a_frame_model_predicts_as_in_ratchet(loaded: dict[str, Any],
                                              saved: dict[str, Any]) -> None:
    result = outcome(loaded, "frame")
    assert result["loader"] == "ratchet.packaging.mlflow_pyfunc"
    assert result["predictions"] == saved["expected"]["frame"]
    assert result["schema"] == saved["frame_columns"]  # MLflow sees ratchet's signature
    assert result["missing_refused"] is not None  # a missing column never reaches the model


def test_an_array_model_predicts_as_in_ratchet(loaded: dict[str, Any],
                                               saved: dict[str, Any]) -> None:
    result = outcome(loaded, "array")
    np.testing.assert_allclose(result["predictions"], saved["expected"]["array"], rtol=1e-9)
    assert result["schema"] is None  # no MLflow signature for an array model; ratchet checks


def test_a_cloudpickle_model_is_refused_through_mlflow(loaded: dict[str, Any]) -> None:
    result = loaded["pickle"]
    assert result["ok"] is False
    assert result["type"] == "Untrusted"
    assert "cloudpickle" in result["message"] and "trust=True" in result["message"]


# --------------------------------------------------------------------------- MLflow -> ratchet
# MLflow writes the directories (its own defaults: skops in 3.x, cloudpickle in 2.x).
WRITER = r"""
import json, sys
import mlflow, mlflow.pyfunc, mlflow.sklearn, sklearn
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

root = sys.argv[1]
X, y = load_iris(return_X_y=True, as_frame=True)
model = LogisticRegression(max_iter=500).fit(X, y)
signature = infer_signature(X, model.predict(X))
# Requirements given: inferring them loads each model in a subprocess (5-10 s each), and
# ratchet does not read them.
needs = [f"scikit-learn=={sklearn.__version__}"]
mlflow.sklearn.save_model(model, root + "/default", signature=signature, pip_requirements=needs)
mlflow.sklearn.save_model(model, root + "/pickle", signature=signature,
                          serialization_format="pickle", pip_requirements=needs)

class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input.iloc[:, 0] * 2

mlflow.pyfunc.save_model(root + "/pyfunc", python_model=Doubler(), pip_requirements=[])
print(json.dumps({"predictions": model.predict(X).tolist(), "mlflow": mlflow.__version__}))
"""


@pytest.fixture(scope="module")
def mlflow_written(mlflow_clients: ClientProcesses, mlflow_python: str,
                   tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Directories the client's MLflow wrote, each given the manifest ratchet's registry
    derives from its MLmodel; and the predictions MLflow's side computed."""
    root = tmp_path_factory.mktemp("mlflow-models")
    done = mlflow_clients.run(mlflow_python, ["-c", str(root)], code=WRITER, cwd=root,
                              env=client_env(), timeout=SCRIPT_TIMEOUT_S)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    for name in ("default", "pickle", "pyfunc"):
        directory = root / name
        files = [p.relative_to(directory).as_posix() for p in directory.rglob("*")
                 if p.is_file()]
        text = (directory / MLMODEL_FILENAME).read_text()
        manifest = manifest_for_mlflow_model(text, f"{name}/MLmodel", files)
        (directory / MANIFEST_FILENAME).write_text(manifest.to_json())
    report: dict[str, Any] = json.loads(lines[-1])
    return root, report


def test_mlflows_default_sklearn_format_loads_in_ratchet(
        mlflow_written: tuple[Path, dict[str, Any]]) -> None:
    root, report = mlflow_written
    X, _ = load_iris(return_X_y=True, as_frame=True)
    if report["mlflow"].startswith("2."):  # cloudpickle: only with trust
        with pytest.raises(Untrusted, match="pickle"):
            load_model(root / "default")
        loaded = load_model(root / "default", trust=True)
    else:  # skops: ratchet's allow-list, no trust
        loaded = load_model(root / "default")
    assert loaded.predict(X).tolist() == report["predictions"]
    assert loaded.signature is not None and loaded.signature.input_names == list(X.columns)


def test_an_mlflow_pickle_loads_in_ratchet_only_with_trust(
        mlflow_written: tuple[Path, dict[str, Any]]) -> None:
    root, report = mlflow_written
    X, _ = load_iris(return_X_y=True, as_frame=True)
    with pytest.raises(Untrusted, match="logged by MLflow as a pickle"):
        load_model(root / "pickle")
    assert load_model(root / "pickle", trust=True).predict(X).tolist() == report["predictions"]


def test_an_mlflow_python_model_needs_trust_and_mlflow(
        mlflow_written: tuple[Path, dict[str, Any]]) -> None:
    root, _ = mlflow_written
    with pytest.raises(Untrusted, match="python_function"):
        load_model(root / "pyfunc")
    with pytest.raises(InvalidInput, match="pip install mlflow"):
        load_model(root / "pyfunc", trust=True)  # ratchet's own venv has no mlflow
