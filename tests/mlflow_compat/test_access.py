"""The server's access rules as the real MLflow client meets them: a token the server does
not know gets 401 and the client raises; a reader's token reads but cannot write (403
PERMISSION_DENIED). Its own server: failed sign-ins count against the address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.mlflow_compat.client_processes import ClientProcesses
from tests.mlflow_compat.conftest import RatchetServer, start_ratchet_server
from tests.mlflow_compat.steps import value

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ratchet_server(tmp_path_factory: pytest.TempPathFactory,
                   mlflow_clients: ClientProcesses) -> Iterator[RatchetServer]:
    """This module's own server (not the worker's shared one): the wrong token's failed
    sign-ins count against 127.0.0.1 there, and must not throttle the other modules."""
    server = start_ratchet_server(tmp_path_factory.mktemp("mlflow-compat-access"),
                                  mlflow_clients)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def experiment(ratchet_server: RatchetServer, mlflow_version: str) -> tuple[str, str]:
    """An experiment made by ratchet (admin), for the others to read."""
    from ratchet.tracking.client import TrackingClient

    name = f"compat-{mlflow_version}-guarded"
    created = ratchet_server.workspace.client(TrackingClient).create_experiment(name)
    return name, created.experiment_id


@pytest.fixture(scope="module")
def report(ratchet_server: RatchetServer, mlflow_python: str,
           experiment: tuple[str, str]) -> dict[str, Any]:
    reader = ratchet_server.token_for("compat-reader", "reader")
    return ratchet_server.run_client(mlflow_python, "access.py", experiment[0],
                                     "rt_not_a_token_the_server_issued", reader)


def test_wrong_token_is_refused(report: dict[str, Any]) -> None:
    for action, outcome in value(report, "wrong_token").items():
        assert outcome["ok"] is False, f"{action} succeeded with a wrong token"
        error = outcome["error"]
        assert error["status"] == 401 or "401" in error["message"], error


def test_reader_reads_but_cannot_write(report: dict[str, Any],
                                       experiment: tuple[str, str]) -> None:
    got = value(report, "reader")
    assert got["read"] == {"ok": True, "value": experiment[1]}
    for action in ("create_experiment", "create_run"):
        outcome = got[action]
        assert outcome["ok"] is False, f"a reader could {action}"
        assert outcome["error"]["error_code"] == "PERMISSION_DENIED", outcome["error"]
        assert outcome["error"]["status"] == 403


def test_reader_wrote_nothing(ratchet_server: RatchetServer, report: dict[str, Any],
                              experiment: tuple[str, str]) -> None:
    from ratchet.tracking.client import TrackingClient

    value(report, "reader")
    tracking = ratchet_server.workspace.client(TrackingClient)
    names = {e.name for e in tracking.list_experiments()}
    assert not {f"{experiment[0]}-by-reader", f"{experiment[0]}-by-wrong_token"} & names
    runs, _ = tracking.search_runs(experiments=[experiment[0]])
    assert runs == []
