"""The server's access rules as the real MLflow client meets them: a token the server does
not know gets 401 and the client raises; a reader's token reads but cannot write (403
PERMISSION_DENIED). Its own server: failed sign-ins count against the address."""

from __future__ import annotations

import pytest

from tests.mlflow_compat.conftest import RatchetServer
from tests.mlflow_compat.steps import value

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def experiment(ratchet_server: RatchetServer, mlflow_version: str) -> tuple[str, str]:
    """An experiment made by ratchet (admin), for the others to read."""
    from ratchet.tracking.client import TrackingClient

    name = f"compat-{mlflow_version}-guarded"
    created = ratchet_server.workspace.client(TrackingClient).create_experiment(name)
    return name, created.experiment_id


def test_wrong_token_is_refused(ratchet_server: RatchetServer, mlflow_python: str,
                                experiment: tuple[str, str]) -> None:
    report = ratchet_server.run_client(mlflow_python, "access.py", experiment[0],
                                       token="rt_not_a_token_the_server_issued")
    for step in ("read", "create_experiment", "create_run"):
        outcome = value(report, step)
        assert outcome["ok"] is False, f"{step} succeeded with a wrong token"
        error = outcome["error"]
        assert error["status"] == 401 or "401" in error["message"], error


def test_reader_reads_but_cannot_write(ratchet_server: RatchetServer, mlflow_python: str,
                                       experiment: tuple[str, str]) -> None:
    name, experiment_id = experiment
    token = ratchet_server.token_for("compat-reader", "reader")
    report = ratchet_server.run_client(mlflow_python, "access.py", name, token=token)
    assert value(report, "read") == {"ok": True, "value": experiment_id}
    for step in ("create_experiment", "create_run"):
        outcome = value(report, step)
        assert outcome["ok"] is False, f"a reader could {step}"
        assert outcome["error"]["error_code"] == "PERMISSION_DENIED", outcome["error"]
        assert outcome["error"]["status"] == 403
