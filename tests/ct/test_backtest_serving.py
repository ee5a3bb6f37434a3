"""The backtest answers through the live server's code: the same requests sent to the HTTP
server (``create_app``, its Parquet prediction log read back with ``predictions``) and to
a backtest's ``SimulatedWorld`` (its in-memory log) leave the same rows with the same
columns and types — sticky-key routing, validation flags, a failing canary answered by the
primary, the shadow's rows and errors, the probability columns. Only what the clock and
the server choose differ: request ids, timestamps, latencies."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.ct.backtesting import SimulatedWorld
from ratchet.ct.policy import CTPolicy
from ratchet.registry import RegistryClient
from ratchet.serving import create_app
from ratchet.serving.app import ServingConfig
from ratchet.serving.deployments import DeploymentClient
from ratchet.serving.prediction_query import predictions
from ratchet.serving.request_validation import ValidationPolicy
from ratchet.serving.traffic_plan import TrafficPlan
from ratchet.workspace import Workspace
from tests.serving.conftest import churn_frame, wait_until

INPUTS = ["age", "income", "plan", "customer_id"]
# The server's policy, given to both: unknown plans flagged (v3 raises on them), extra
# columns ignored (customer_id is only an input where it is the routing key).
POLICY = ValidationPolicy(unknown_category="flag", extra_columns="ignore")
T0 = 1_700_000_000_000
UNCHOSEN = ["request_id", "timestamp", "latency_ms"]  # the server's clock and ids


def requests(n: int = 30) -> pd.DataFrame:
    X, _ = churn_frame(n, seed=7)
    X["customer_id"] = [f"c{i}" for i in range(n)]
    X.loc[X.index % 7 == 0, "plan"] = "gold"     # unknown: flagged; v3 raises on it
    X.loc[X.index % 5 == 0, "age"] = 99           # outside training's range: flagged
    return X[INPUTS]


def live_log(settings: Settings, deployment: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Each row as one POST /predict to a real server; its log as read back from disk."""
    config = ServingConfig(policy=POLICY, poll_interval_s=0.05, log_flush_interval_s=0.1,
                           startup_wait_s=10)
    ids = []
    with TestClient(create_app(deployment=deployment, workspace=Workspace(settings),
                               config=config)) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        for row in json.loads(frame.to_json(orient="records")):
            answer = client.post("/predict", json={"inputs": [row]})
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["request_id"])
    # The server is shut down: the shadow's queue drained and the log flushed.
    logged = predictions(deployment, workspace=Workspace(settings))
    return logged.assign(_request=logged["request_id"].map({r: i for i, r in enumerate(ids)}))


def backtest_log(registry: RegistryClient, deployment: str, frame: pd.DataFrame
                 ) -> pd.DataFrame:
    deployments = DeploymentClient(registry.workspace)
    policy = CTPolicy(model="churn", pipeline="tests.ct.test_backtest:training",
                      deployment=deployment)
    world = SimulatedWorld(policy, deployments, INPUTS, label_delay_ms=0, validation=POLICY)
    try:
        times = T0 + np.arange(len(frame), dtype=np.int64) * 1000
        world.serve(frame, times, np.zeros(len(frame), dtype=np.int64), 0)
    finally:
        world.close()
    world.now = int(times[-1]) + 1000
    logged = world.logged(0)
    assert logged["feedback"].notna().all()  # label delay 0: every label has arrived
    logged = logged.drop(columns=["feedback", "feedback_at"])
    return logged.assign(_request=logged["request_id"].str[1:].astype(int))


def comparable(logged: pd.DataFrame) -> pd.DataFrame:
    frame = logged.sort_values(["_request", "variant", "status"], kind="stable")
    frame = frame.drop(columns=UNCHOSEN).reset_index(drop=True)
    frame["flags"] = frame["flags"].map(lambda f: None if f is None else tuple(f))
    return frame[sorted(frame.columns)]


@pytest.mark.parametrize(("deployment", "plan", "variants"), [
    ("ab", TrafficPlan.split({"churn/1": 50, "churn/2": 50}, key="customer_id"),
     {"a", "b"}),
    ("canaried", TrafficPlan.canary("churn@champion", "churn/3", 100),
     {"primary", "canary"}),
    ("shadowed", TrafficPlan.shadowed("churn@champion", "churn/3"), {"primary", "shadow"}),
])
def test_backtest_and_server_log_the_same_rows(churn_registry: RegistryClient,
                                               serving_settings: Settings, deployment: str,
                                               plan: TrafficPlan, variants: set[str]) -> None:
    registry = churn_registry
    DeploymentClient(registry.workspace).create(deployment, plan)
    frame = requests()
    live = comparable(live_log(serving_settings, deployment, frame))
    simulated = comparable(backtest_log(registry, deployment, frame))
    assert list(simulated.columns) == list(live.columns)
    assert simulated.dtypes.to_dict() == live.dtypes.to_dict()
    # Probabilities: one row per model call live, the batch's rows in one call here.
    pd.testing.assert_frame_equal(simulated, live, check_exact=False, rtol=1e-12)
    assert set(live["variant"]) == variants
    assert {"output.prediction", "output.proba_0", "output.proba_1"} <= set(live.columns)
    flagged = live["flags"].map(bool)
    assert flagged.any() and not flagged.all()
    if deployment != "ab":  # v3 raised on the unknown plans: logged as its errors
        errors = live[live["status"] == "error"]
        assert len(errors) == (frame["plan"] == "gold").sum()
        assert set(errors["variant"]) == variants - {"primary"}
    else:  # sticky: the key, not chance, chose the variant of each row
        assert set(live["input.customer_id"]) == set(frame["customer_id"])

