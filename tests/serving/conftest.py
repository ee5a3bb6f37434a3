"""A registry with churn models for serving tests.

- v1: logistic regression on age (int), income (float), plan (category), unknown plans ignored
- v2: the same with another C (answers differ a little)
- v3: a challenger whose encoder raises on a plan it never saw (a model that fails on
  some valid-looking inputs)
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.workspace import Workspace


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


@functools.cache
def _fitted_churn(C: float, handle_unknown: str) -> Any:
    """The churn pipeline fitted on ``churn_frame()``, once a process: the fit is the same
    every time (lbfgs is deterministic) and took half of ``register_churn``."""
    X, y = churn_frame()
    return _pipeline(C, handle_unknown).fit(X, y)


def register_churn(settings: Settings) -> RegistryClient:
    registry = RegistryClient(Workspace(settings))
    X, _ = churn_frame()
    for C, handle_unknown in ((1.0, "ignore"), (0.01, "ignore"), (1.0, "error")):
        model = copy.deepcopy(_fitted_churn(C, handle_unknown))  # each test its own object
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_process(settings: Settings, tmp_path: Path, command: list[str],
                    port: int) -> Iterator[tuple[str, Path]]:
    """``command`` (a server listening on loopback ``port``) against ``settings``' store,
    until ready; yields its URL and log file; stopped by its process group."""
    env = {**os.environ, "RATCHET_HOME": str(settings.home), "RATCHET_DB": settings.db_url,
           "RATCHET_ARTIFACTS": settings.artifacts_uri}
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            def ready() -> bool:
                assert process.poll() is None, log_path.read_text()
                try:
                    return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, timeout=90, what="server ready")
            yield url, log_path
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def running_server(settings: Settings, tmp_path: Path, *args: str) -> Iterator[str]:
    """``ratchet serve ARGS`` on a free loopback port; stopped by its process group."""
    port = _free_port()
    command = [sys.executable, "-m", "ratchet.cli.main", "serve", *args, "--port", str(port)]
    with running_process(settings, tmp_path, command, port) as (url, _):
        yield url
