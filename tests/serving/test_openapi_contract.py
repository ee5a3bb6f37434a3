"""The served OpenAPI document is the contract: schemathesis generates requests from it
(bodies follow the model's signature) and every answer must match what it documents —
schema-valid requests accepted, documented status codes and content types, response bodies
matching their schemas, and never a 5xx."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import negative_data_rejection

from ratchet.config import Settings
from ratchet.serving import create_app
from ratchet.serving.app import ServingConfig
from ratchet.workspace import Workspace
from tests.serving.conftest import register_churn, wait_until


def test_every_operation_keeps_its_contract(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                     artifacts_uri=str(home / "artifacts"))
    register_churn(store)
    app = create_app("churn@champion", workspace=Workspace(store), config=ServingConfig(poll_interval_s=0.1))
    statuses: Counter[tuple[str, int]] = Counter()
    with TestClient(app) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        api = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in api.get_all_operations()]
        assert len(operations) >= 13
        for operation in operations:
            @given(case=operation.as_strategy())
            @settings(max_examples=60, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case: Any) -> None:
                response = case.call(session=client)
                statuses[(case.path, response.status_code)] += 1
                # The server is lenient where the schema is strict (3.0 for an integer
                # row, say), so schema-violating requests are not required to fail.
                case.validate_response(response, excluded_checks=[negative_data_rejection])

            check()
    # Bodies generated from the signature reached the model and were answered.
    for path in ("/predict", "/invocations"):
        assert statuses[(path, 200)] > 0, statuses
    # Generated request ids name no logged prediction: feedback for them is not found.
    assert statuses[("/feedback", 404)] > 0, statuses
    assert not any(status >= 500 for _, status in statuses), statuses
