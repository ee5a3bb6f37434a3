"""``mlflow.pyfunc.load_model(<a directory ratchet saved>)`` in the real MLflow client venvs
(2.x and 3.x): the MLmodel ratchet writes routes MLflow to ratchet's loader, predictions
match ratchet's own, MLflow sees the signature, and a cloudpickle model is refused (MLflow
never loads it without the trust only ratchet can be given)."""

from __future__ import annotations

import json
import os
import subprocess
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

from ratchet.packaging import save_model
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
def loaded(mlflow_python: str, saved: dict[str, Any]) -> dict[str, Any]:
    """The client's report: each model loaded with mlflow.pyfunc.load_model in its venv."""
    root: Path = saved["root"]
    cases = root / "cases.json"
    cases.write_text(json.dumps(saved["cases"]))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RATCHET_", "MLFLOW_", "PYTEST_", "COV_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([mlflow_python, "-c", CLIENT, str(cases)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=240, check=False)
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
