"""scikit-learn autologging, with real estimators."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ratchet
from ratchet.tracking import fluent


@pytest.fixture
def autologging(workspace: Path) -> Iterator[None]:
    ratchet.autolog()
    yield
    ratchet.autolog(disable=True)


def _runs() -> list:
    return ratchet.search_runs(order_by=["attributes.start_time"])


def test_fit_outside_a_run_gets_its_own_run(autologging: None) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(C=0.5, max_iter=300).fit(X, y)
    (run,) = _runs()
    assert run.status == "finished" and run.name == "LogisticRegression"
    assert run.params["C"] == "0.5" and run.params["max_iter"] == "300"
    assert run.metrics["training_accuracy"] == pytest.approx(model.score(X, y))
    assert {"training_f1", "training_log_loss", "training_roc_auc"} <= set(run.metrics)
    loaded = ratchet.models.load(f"runs:/{run.run_id}/model")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.signature is not None
    assert [c.name for c in loaded.signature.inputs] == list(X.columns)


def test_fit_inside_a_run_logs_into_it_and_registers(workspace: Path) -> None:
    ratchet.autolog(registered_model_name="diabetes")
    try:
        X, y = load_diabetes(return_X_y=True, as_frame=True)
        with ratchet.start_run(experiment="auto") as run:
            Ridge(alpha=2.0).fit(X, y)
    finally:
        ratchet.autolog(disable=True)
    got = ratchet.get_run(run.id)
    assert got.params["alpha"] == "2.0"
    assert {"training_mse", "training_rmse", "training_mae", "training_r2"} <= set(got.metrics)
    assert ratchet.models.get_version("diabetes", 1).run_id == run.id


def test_nested_fits_log_once(autologging: None) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
                          {"logisticregression__C": [0.1, 1.0]}, cv=2)
    search.fit(X, y)
    (run,) = _runs()  # the inner pipeline and estimator fits did not make runs
    assert run.name == "GridSearchCV"
    assert "estimator__logisticregression__C" in run.params
    assert "training_accuracy" in run.metrics


def test_failed_fit_marks_run_failed_and_raises(autologging: None) -> None:
    with pytest.raises(ValueError):
        LogisticRegression().fit([[1.0], [2.0]], [0, 0])  # one class only
    (run,) = _runs()
    assert run.status == "failed" and "ValueError" in (run.error or "")


def test_classes_imported_later_are_patched(autologging: None) -> None:
    from sklearn.base import BaseEstimator, RegressorMixin

    class MeanRegressor(RegressorMixin, BaseEstimator):  # defined after autolog()
        def fit(self, X, y):
            self.mean_ = float(np.mean(y))
            return self

        def predict(self, X):
            return np.full(len(X), self.mean_)

    MeanRegressor().fit([[1.0], [2.0]], [1.0, 3.0])
    (run,) = _runs()
    assert run.name == "MeanRegressor" and run.metrics["training_mse"] == 1.0


def test_disable_restores_plain_fit(workspace: Path) -> None:
    ratchet.autolog()
    ratchet.autolog(disable=True)
    X, y = load_iris(return_X_y=True)
    LogisticRegression(max_iter=300).fit(X, y)
    assert fluent.client().search_runs()[0] == []
