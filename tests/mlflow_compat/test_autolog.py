"""``mlflow.sklearn.autolog()`` against ``ratchet server``: the run it logs, its dataset
input and its model (a run artifact in 2.x, a logged model in 3.x) loaded back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mlflow_compat.conftest import RatchetServer
from tests.mlflow_compat.steps import value

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def report(ratchet_server: RatchetServer, mlflow_python: str,
           mlflow_version: str) -> dict[str, Any]:
    return ratchet_server.run_client(mlflow_python, "autolog.py", f"compat-{mlflow_version}")


def test_autolog_logs_params_metrics_and_tags(report: dict[str, Any]) -> None:
    fit = value(report, "fit")
    assert fit["status"] == "FINISHED"
    assert fit["params"]["C"] == "0.5" and fit["params"]["max_iter"] == "300"
    assert "training_accuracy_score" in fit["metric_keys"]
    assert fit["training_accuracy"] > 0.9
    assert fit["tags"] == {"estimator_name": "LogisticRegression",
                           "estimator_class": "sklearn.linear_model._logistic.LogisticRegression"}


def test_autolog_logs_the_training_dataset(report: dict[str, Any]) -> None:
    assert value(report, "fit")["datasets"], "autolog's dataset input is missing from the run"


def test_autolog_model_is_stored_and_loads(report: dict[str, Any]) -> None:
    fit = value(report, "fit")
    if value(report, "mlflow3"):
        assert fit["logged_model_id"] and fit["logged_model_id"].startswith("m-")
    else:
        assert "model" in fit["artifacts"]
    loaded = value(report, "load")
    assert loaded["same"] is True


def test_autolog_run_is_a_ratchet_run(ratchet_server: RatchetServer,
                                      report: dict[str, Any]) -> None:
    from ratchet.tracking.client import TrackingClient

    fit = value(report, "fit")
    run = ratchet_server.workspace.client(TrackingClient).get_run(fit["run_id"])
    assert run.status == "finished"
    assert run.params["C"] == "0.5"
    assert run.metrics["training_accuracy_score"] == pytest.approx(fit["training_accuracy"])
    assert run.inputs, "the dataset MLflow logged is not a ratchet input of the run"
