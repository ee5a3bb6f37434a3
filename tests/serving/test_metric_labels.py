"""Clients cannot create Prometheus series: label values come from a bounded set."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.serving import create_app
from ratchet.serving.app import ServingConfig
from ratchet.workspace import Workspace
from tests.serving.conftest import ROW, wait_until

FAST = ServingConfig(poll_interval_s=0.05, log_flush_interval_s=0.1, startup_wait_s=10)


def test_invented_columns_do_not_become_label_values(churn_registry: RegistryClient,
                                                     serving_settings: Settings) -> None:
    app = create_app("churn@champion", workspace=Workspace(serving_settings), config=FAST)
    with TestClient(app) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        for i in range(50):
            r = client.post("/predict", json={"inputs": [{**ROW, f"extra_{i}": 1}]})
            assert r.status_code == 422
        r = client.post("/predict", json={"inputs": [{**ROW, "age": "old"}]})
        assert r.status_code == 422
        text = client.get("/metrics").text
    fields = set(re.findall(r'ratchet_validation_failures_total\{[^}]*field="([^"]*)"', text))
    assert fields == {"_other", "age"}, fields
