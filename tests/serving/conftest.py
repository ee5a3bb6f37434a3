"""A registry with churn models for serving tests.

- v1: logistic regression on age (int), income (float), plan (category), unknown plans ignored
- v2: the same with another C (answers differ a little)
- v3: a challenger whose encoder raises on a plan it never saw (a model that fails on
  some valid-looking inputs)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.tracking import TrackingClient


def churn_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": rng.normal(50.0, 10.0, n),
        "plan": rng.choice(["basic", "pro", "team"], n),
    })
    y = ((X.age > 45) ^ (X.plan == "pro")).astype(int)
    return X, y


def _pipeline(C: float, handle_unknown: str) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    encoder = make_column_transformer((OneHotEncoder(handle_unknown=handle_unknown), ["plan"]),
                                      remainder="passthrough")
    return make_pipeline(encoder, LogisticRegression(C=C, max_iter=1000))


def register_churn(settings: Settings) -> RegistryClient:
    registry = RegistryClient(TrackingClient(settings))
    X, y = churn_frame()
    for C, handle_unknown in ((1.0, "ignore"), (0.01, "ignore"), (1.0, "error")):
        model = _pipeline(C, handle_unknown).fit(X, y)
        with registry.tracking.start_run(experiment="churn") as run:
            registry.log_model(run.id, model, name="churn", input_example=X)
    registry.set_alias("churn", "champion", 1)
    return registry


@pytest.fixture
def serving_settings(tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    return Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                    artifacts_uri=str(home / "artifacts"))


@pytest.fixture
def churn_registry(serving_settings: Settings) -> RegistryClient:
    return register_churn(serving_settings)


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


ROW = {"age": 52, "income": 61.5, "plan": "pro"}


@pytest.fixture
def rows() -> Iterator[list[dict[str, Any]]]:
    X, _ = churn_frame(20, seed=1)
    yield X.to_dict(orient="records")
