"""The model registry through the real MLflow client: log a scikit-learn model and register
it, register the run's model again, aliases, tags, search, the download URI, errors, and
``mlflow.pyfunc.load_model("models:/NAME@champion")`` predicting what the model predicts.

Usage: python registry.py PREFIX MODEL_NAME
Prints the rows it scored and the original predictions, for the test to compare with
``ratchet serve``.
"""

from __future__ import annotations

import sys
from typing import Any

import mlflow
import mlflow.sklearn
import sklearn
from _report import emit, raised, results, step
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

prefix, name = sys.argv[1], sys.argv[2]
client = MlflowClient()
state: dict[str, Any] = {}
MLFLOW3 = int(mlflow.__version__.split(".")[0]) >= 3


def version_view(mv: Any) -> dict[str, Any]:
    return {"name": mv.name, "version": str(mv.version), "run_id": mv.run_id,
            "source": mv.source, "status": mv.status, "current_stage": mv.current_stage,
            "aliases": sorted(getattr(mv, "aliases", []) or []), "tags": dict(mv.tags or {}),
            "model_id": getattr(mv, "model_id", None)}


@step("log_and_register")
def _() -> Any:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=300).fit(X, y)
    rows = X.iloc[[0, 60, 120, 149]]
    state.update(model=model, rows=rows)
    mlflow.set_experiment(f"{prefix}-registry")
    with mlflow.start_run(run_name="registry") as run:
        where = {"name": "model"} if MLFLOW3 else {"artifact_path": "model"}
        # Pickled (2.x's default; 3.x saves skops unless told): the model that needs
        # trust to be served. Requirements given: inferring them loads the model in a
        # subprocess (~10 s).
        info = mlflow.sklearn.log_model(model, registered_model_name=name,
                                        input_example=X.iloc[:3],
                                        serialization_format="cloudpickle",
                                        pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                                        **where)
    state["run_id"] = run.info.run_id
    results["experiment_id"] = {"ok": True, "value": run.info.experiment_id}
    return {"run_id": run.info.run_id, "model_uri": info.model_uri,
            "registered_version": str(info.registered_model_version),
            "model_id": getattr(info, "model_id", None),
            "rows": rows.to_dict(orient="records"),
            "predictions": [int(v) for v in model.predict(rows)]}


@step("alias")
def _() -> Any:
    client.set_registered_model_alias(name, "champion", "1")
    by_alias = client.get_model_version_by_alias(name, "champion")
    model = client.get_registered_model(name)
    return {"by_alias": version_view(by_alias), "model_aliases": dict(model.aliases),
            "latest": [version_view(v) for v in model.latest_versions]}


@step("register_again")
def _() -> Any:
    again = mlflow.register_model(f"runs:/{state['run_id']}/model", name)
    return version_view(client.get_model_version(name, str(again.version)))


@step("tags")
def _() -> Any:
    client.set_registered_model_tag(name, "team", "compat")
    client.set_model_version_tag(name, "1", "validated", "yes")
    client.set_model_version_tag(name, "1", "scratch", "x")
    client.delete_model_version_tag(name, "1", "scratch")
    client.update_registered_model(name, description="iris, through MLflow")
    client.update_model_version(name, "1", description="first")
    model = client.get_registered_model(name)
    version = client.get_model_version(name, "1")
    return {"model_tags": dict(model.tags), "description": model.description,
            "version_tags": dict(version.tags), "version_description": version.description}


@step("search")
def _() -> Any:
    exact = client.search_registered_models(filter_string=f"name = '{name}'")
    like = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'")
    versions = client.search_model_versions(f"name = '{name}'")
    by_run = client.search_model_versions(f"run_id = '{state['run_id']}'")
    return {"exact": [m.name for m in exact], "like": [m.name for m in like],
            "versions": sorted(str(v.version) for v in versions),
            "by_run": sorted(str(v.version) for v in by_run),
            "download_uri": client.get_model_version_download_uri(name, "1")}


@step("load_by_alias")
def _() -> Any:
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    rows = state["rows"]
    return {"predictions": [int(v) for v in loaded.predict(rows)],
            "by_version": [int(v) for v in
                           mlflow.pyfunc.load_model(f"models:/{name}/2").predict(rows)]}


@step("errors")
def _() -> Any:
    return {"missing_model": raised(lambda: client.get_registered_model(f"{name}-nope")),
            "duplicate_model": raised(lambda: client.create_registered_model(name)),
            "missing_alias": raised(lambda: client.get_model_version_by_alias(name, "nope")),
            "missing_version": raised(lambda: client.get_model_version(name, "99"))}


if MLFLOW3:
    @step("skops")
    def _() -> Any:
        """3.x's default format for scikit-learn: skops, which loads without running code."""
        with mlflow.start_run(run_name="skops"):
            info = mlflow.sklearn.log_model(
                state["model"], name="model", registered_model_name=f"{name}-skops",
                input_example=state["rows"].iloc[:2],
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
        loaded = mlflow.pyfunc.load_model(f"models:/{name}-skops/1")
        return {"version": str(info.registered_model_version),
                "predictions": [int(v) for v in loaded.predict(state["rows"])]}


@step("delete_alias")
def _() -> Any:
    client.set_registered_model_alias(name, "scratch", "2")
    client.delete_registered_model_alias(name, "scratch")
    return dict(client.get_registered_model(name).aliases)


results["mlflow3"] = {"ok": True, "value": MLFLOW3}
emit()
