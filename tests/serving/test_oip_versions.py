"""Versioned OIP paths under a plan with several versions: each version answers for
itself, whatever the split; one not in the plan is a 404 listing those that are."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.serving import create_app
from ratchet.serving.app import ServingConfig
from ratchet.serving.deployments import DeploymentClient
from ratchet.serving.traffic_plan import TrafficPlan
from ratchet.workspace import Workspace
from tests.serving.conftest import wait_until

TENSORS = [{"name": "age", "shape": [1], "datatype": "INT64", "data": [52]},
           {"name": "income", "shape": [1], "datatype": "FP64", "data": [61.5]},
           {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["pro"]}]


@pytest.fixture
def canary(churn_registry: RegistryClient, serving_settings: Settings) -> Iterator[TestClient]:
    """churn v1 primary, v2 canary at 100%."""
    deployments = DeploymentClient(churn_registry.workspace)
    deployments.create("split", TrafficPlan.from_dict({
        "kind": "canary", "model": "churn@champion", "canary": "churn/2", "percent": 100}))
    app = create_app(deployment="split", workspace=Workspace(serving_settings),
                     config=ServingConfig(poll_interval_s=0.05, startup_wait_s=10))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        yield client


def test_a_versioned_infer_is_answered_by_that_version(canary: TestClient) -> None:
    unversioned = canary.post("/v2/models/split/infer", json={"inputs": TENSORS})
    assert unversioned.json()["model_version"] == "2"  # the 100% canary
    for version in ("1", "2"):
        for name in ("split", "churn"):
            reply = canary.post(f"/v2/models/{name}/versions/{version}/infer",
                                json={"inputs": TENSORS})
            assert reply.status_code == 200, reply.text
            assert reply.json()["model_version"] == version
            assert reply.headers["x-model-version"] == version
            meta = canary.get(f"/v2/models/{name}/versions/{version}").json()
            assert meta["versions"] == [version]
            assert canary.get(f"/v2/models/{name}/versions/{version}/ready").json()["ready"]


def test_a_version_outside_the_plan_is_404_listing_the_plan(canary: TestClient) -> None:
    for reply in (canary.post("/v2/models/split/versions/3/infer", json={"inputs": TENSORS}),
                  canary.get("/v2/models/split/versions/3"),
                  canary.get("/v2/models/churn/versions/3/ready")):
        assert reply.status_code == 404
        assert "versions served: 1, 2" in reply.json()["error"]
    assert canary.get("/v2/models/nope/versions/1").status_code == 404


def test_binary_nan_and_infinity_are_422_as_in_json(canary: TestClient) -> None:
    """Binary data can carry what JSON cannot (NaN, infinity): validation still refuses."""
    import json

    import numpy as np

    for bad in (float("nan"), float("inf")):
        raw = np.array([bad], dtype="<f8").tobytes()
        header = json.dumps({"inputs": [
            TENSORS[0], {"name": "income", "shape": [1], "datatype": "FP64",
                         "parameters": {"binary_data_size": 8}}, TENSORS[2]]}).encode()
        reply = canary.post("/v2/models/split/infer", content=header + raw, headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream"})
        assert reply.status_code == 422, reply.text
        assert "income" in reply.json()["error"]
