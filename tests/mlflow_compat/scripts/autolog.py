"""``mlflow.sklearn.autolog()`` with a scikit-learn fit, through the real MLflow client:
the params, metrics, tags, dataset inputs and model it logs, and the model loaded back
with ``mlflow.pyfunc`` predicting what the fitted estimator predicts.

Usage: python autolog.py PREFIX
"""

from __future__ import annotations

import sys
from typing import Any

import mlflow
import mlflow.sklearn
from _report import emit, results, step
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

prefix = sys.argv[1]
client = MlflowClient()
state: dict[str, Any] = {}
MLFLOW3 = int(mlflow.__version__.split(".")[0]) >= 3


@step("fit")
def _() -> Any:
    X, y = load_iris(return_X_y=True, as_frame=True)
    state["X"] = X
    mlflow.set_experiment(f"{prefix}-autolog")
    mlflow.sklearn.autolog(log_input_examples=True, silent=True)
    with mlflow.start_run(run_name="autolog") as run:
        model = LogisticRegression(max_iter=300, C=0.5).fit(X, y)
    mlflow.sklearn.autolog(disable=True)
    state["model"] = model
    state["run_id"] = run.info.run_id
    got = client.get_run(run.info.run_id)
    inputs = getattr(got, "inputs", None)
    datasets = [d.dataset.name for d in inputs.dataset_inputs] if inputs else []
    logged_model_id = None
    if MLFLOW3:
        found = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                            output_format="list")
        logged_model_id = found[0].model_id if found else None
    state["model_id"] = logged_model_id
    return {"run_id": run.info.run_id, "status": got.info.status,
            "params": got.data.params, "metric_keys": sorted(got.data.metrics),
            "training_accuracy": got.data.metrics.get("training_accuracy_score"),
            "tags": {k: v for k, v in got.data.tags.items()
                     if k in ("estimator_name", "estimator_class")},
            "datasets": datasets, "logged_model_id": logged_model_id,
            "artifacts": sorted(f.path for f in client.list_artifacts(run.info.run_id))}


@step("load")
def _() -> Any:
    uri = (f"models:/{state['model_id']}" if MLFLOW3 else f"runs:/{state['run_id']}/model")
    loaded = mlflow.pyfunc.load_model(uri)
    X = state["X"]
    return {"uri": uri, "same": [int(v) for v in loaded.predict(X)] ==
            [int(v) for v in state["model"].predict(X)]}


results["mlflow3"] = {"ok": True, "value": MLFLOW3}
emit()
