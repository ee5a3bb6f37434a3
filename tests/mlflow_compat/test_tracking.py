"""Tracking through the real MLflow client (2.x, and 3.x as the skinny client) against
``ratchet server``; then the same runs seen from ratchet's side (its CLI and clients).

3.x runs the scenario once, in the skinny client: the full mlflow 3.17.2 venv's ``mlflow``
package is mlflow-skinny 3.17.2's (the same .py files; mlflow adds the UI and data files),
so a second run in the full client asserted the same thing on the same code twice. The
full 3.x client's tracking calls run in test_registry.py, test_autolog.py,
test_artifacts.py and test_docs.py."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.mlflow_compat.conftest import MLFLOW_ENVS, SKINNY_ENV, RatchetServer, env_python
from tests.mlflow_compat.steps import as_float, error_code, infinite, value

pytestmark = pytest.mark.e2e

SKINNY_MAJOR = SKINNY_ENV[0].split(".")[0]
CLIENTS = {**{version: venv for version, venv in MLFLOW_ENVS.items()
              if version.split(".")[0] != SKINNY_MAJOR},
           SKINNY_ENV[0]: SKINNY_ENV[1]}


@pytest.fixture(scope="module", params=[
    pytest.param(version, id=f"mlflow{version}",
                 marks=pytest.mark.xdist_group(f"mlflow{version.split('.')[0]}"))
    for version in CLIENTS])
def client_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def report(ratchet_server: RatchetServer, client_version: str) -> dict[str, Any]:
    """One run of scripts/tracking.py in the client's venv (every step, one process)."""
    python = env_python(client_version, CLIENTS[client_version])
    return ratchet_server.run_client(python, "tracking.py", prefix(client_version))


def prefix(client_version: str) -> str:
    return f"compat-{client_version}-tracking"


def test_default_experiment_is_id_0(report: dict[str, Any]) -> None:
    default = value(report, "default_experiment")
    assert (default["experiment_id"], default["name"]) == ("0", "Default")
    assert default["lifecycle_stage"] == "active" and default["by_name"] == "0"
    run = default["run"]
    assert run["experiment_id"] == "0" and run["status"] == "FINISHED"
    assert run["artifact_uri"] == f"mlflow-artifacts:/0/{run['run_id']}/artifacts"


def test_experiments(report: dict[str, Any], client_version: str) -> None:
    got = value(report, "experiments")
    name = f"{prefix(client_version)}-exp"
    assert got["name"] == name and got["by_name"] == got["experiment_id"]
    assert got["tags"] == {"team": "compat"}
    assert got["artifact_location"] == f"mlflow-artifacts:/{got['experiment_id']}"
    assert got["lifecycle_stage"] == "active"
    assert got["missing_by_name"] is True
    assert error_code(got["duplicate"]) == "RESOURCE_ALREADY_EXISTS"
    assert got["duplicate"]["status"] == 400
    assert error_code(got["missing_id"]) == "RESOURCE_DOES_NOT_EXIST"
    assert got["missing_id"]["status"] == 404
    assert got["searched"] == [name, f"{prefix(client_version)}-other"]


def test_experiment_tags(report: dict[str, Any]) -> None:
    assert value(report, "experiment_tags") == {"team": "compat", "stage": "test"}


def test_experiment_delete_and_restore(report: dict[str, Any], client_version: str) -> None:
    got = value(report, "experiment_delete_restore")
    assert got == {"deleted_stage": "deleted", "active_while_deleted": [],
                   "deleted_only": [f"{prefix(client_version)}-doomed"],
                   "restored_stage": "active"}


def test_fluent_run_params_tags_metrics(report: dict[str, Any]) -> None:
    got = value(report, "fluent_run")
    run = got["run"]
    assert run["run_name"] == "fluent" and run["status"] == "FINISHED"
    assert run["lifecycle_stage"] == "active" and run["end_time"] >= run["start_time"] > 0
    assert run["artifact_uri"] == (f"mlflow-artifacts:/{run['experiment_id']}/{run['run_id']}"
                                   "/artifacts")
    assert run["params"] == {"alpha": "0.5", "layers": "3", "optimizer": "adam"}
    tags = run["tags"]
    assert {k: tags.get(k) for k in ("owner", "purpose", "release.candidate",
                                     "mlflow.runName")} == {
        "owner": "compat", "purpose": "suite", "release.candidate": "yes",
        "mlflow.runName": "fluent"}
    assert tags.get("mlflow.source.name", "").endswith("tracking.py")
    assert tags.get("mlflow.user") == run["user_id"]
    metrics = run["metrics"]
    assert metrics["loss"] == pytest.approx(1 / 25)
    assert (metrics["acc"], metrics["f1"]) == (0.875, 0.5)
    assert math.isnan(as_float(metrics["nan_metric"]))
    assert infinite(metrics["pos_inf"], +1) and infinite(metrics["neg_inf"], -1)


def test_metric_history(report: dict[str, Any]) -> None:
    got = value(report, "fluent_run")
    assert got["loss"] == [[step, pytest.approx(1 / (step + 1))] for step in range(25)]
    assert len(got["nan_metric"]) == 1 and math.isnan(as_float(got["nan_metric"][0][1]))
    assert got["pos_inf"][0][0] == 0 and infinite(got["pos_inf"][0][1], +1)
    assert got["neg_inf"][0][0] == 2 and infinite(got["neg_inf"][0][1], -1)


def test_tracking_errors(report: dict[str, Any]) -> None:
    got = value(report, "fluent_run")
    assert error_code(got["param_changed"]) == "INVALID_PARAMETER_VALUE"
    assert got["param_changed"]["status"] == 400
    assert got["param_same_again"] is None  # logging the same value again is fine
    assert error_code(got["missing_run"]) == "RESOURCE_DOES_NOT_EXIST"
    assert got["missing_run"]["status"] == 404


def test_log_batch(report: dict[str, Any]) -> None:
    got = value(report, "log_batch")
    assert got["run"] == {"status": "FAILED", "run_name": "batch",
                          "experiment_id": value(report, "experiments")["experiment_id"]}
    assert got["params"] == 50 and got["param_p7"] == "7"
    assert got["tags"] == sorted(f"t{i}" for i in range(20))
    assert got["m_points"] == 1000 and got["latest_m"] == pytest.approx(99.9)
    assert got["m_first"] == [[0, 0.0], [1, 0.1], [2, 0.2]]
    assert math.isnan(as_float(got["m2"][0][1])) and got["m2"][1] == [1, 2.5]
    assert got["x_points"] == 1001


def test_repeated_points_are_stored_once(report: dict[str, Any]) -> None:
    """The client retries a write whose answer it lost: the same points again are not
    stored twice (MLflow's store keys a point by run, key, step, timestamp and value)."""
    assert value(report, "log_batch")["repeated"] == [[[0, 1.0], [1, 2.0]], [[0, 3.0]]]


def test_search_runs_filters_and_order(report: dict[str, Any]) -> None:
    got = value(report, "search_runs")
    names = [f"search-{i}" for i in range(7)]
    assert got["all_ascending"] == names
    assert got["even_above_2_desc"] == ["search-6", "search-4"]
    assert got["killed"] == ["search-5"] and got["finished_count"] == 6
    assert got["tag_eq"] == ["search-3"]
    assert got["name_like"] == ["search-1"] and got["name_eq"] == ["search-4"]
    assert got["score_le_1_by_name_desc"] == ["search-1", "search-0"]
    assert got["run_id_in"] == ["search-2", "search-6"]
    assert got["param_ne"] == 3
    assert error_code(got["bad_filter"]) == "INVALID_PARAMETER_VALUE"


def test_search_runs_pages(report: dict[str, Any]) -> None:
    got = value(report, "search_runs")
    assert got["pages"] == [3, 3, 1]
    assert got["walked"] == [f"search-{i}" for i in reversed(range(7))]


def test_run_delete_and_restore(report: dict[str, Any]) -> None:
    got = value(report, "run_delete_restore")
    assert got == {"deleted_stage": "deleted", "active": 6, "deleted": True, "all": 7,
                   "restored_stage": "active", "active_after": 7}


def test_update_run_and_delete_tag(report: dict[str, Any]) -> None:
    got = value(report, "update_run")
    assert got == {"run_name": "after", "tag_runName": "after", "status": "FINISHED",
                   "has_temporary": False, "ended": True}


# -- ratchet's side ------------------------------------------------------------------------

def test_runs_are_ratchet_runs(ratchet_server: RatchetServer, report: dict[str, Any],
                               client_version: str) -> None:
    """What MLflow logged is a ratchet run: `ratchet runs list` shows it, and ratchet's
    TrackingClient reads the same params, tags, metrics and history."""
    from ratchet.tracking.client import TrackingClient

    fluent = value(report, "fluent_run")["run"]
    batch_experiment = value(report, "experiments")["experiment_id"]
    listed = ratchet_server.cli_json("runs", "list", "--experiment",
                                     f"{prefix(client_version)}-exp")
    by_id = {run["run_id"]: run for run in listed}
    assert fluent["run_id"] in by_id
    assert by_id[fluent["run_id"]]["status"] == "finished"
    assert {run["name"] for run in listed} >= {"fluent", "batch", "after"}
    assert {run["status"] for run in listed if run["name"] == "batch"} == {"failed"}

    tracking = ratchet_server.workspace.client(TrackingClient)
    run = tracking.get_run(fluent["run_id"])
    assert run.experiment_id == batch_experiment and run.name == "fluent"
    assert run.params == {"alpha": "0.5", "layers": "3", "optimizer": "adam"}
    assert run.tags["owner"] == "compat"
    assert run.metrics["loss"] == pytest.approx(1 / 25)
    assert [point.step for point in tracking.metric_history(run.run_id, "loss")] == list(range(25))
    assert tracking.get_experiment("0").name == "Default"


def test_search_runs_match_ratchet_search(ratchet_server: RatchetServer,
                                          report: dict[str, Any], client_version: str) -> None:
    """MLflow's filter gives the runs ratchet's own grammar gives."""
    from ratchet.tracking.client import TrackingClient

    ids = value(report, "search_runs")["ids"]
    tracking = ratchet_server.workspace.client(TrackingClient)
    found, _ = tracking.search_runs("metrics.score > 2 and params.parity = 'even'",
                                 experiments=[f"{prefix(client_version)}-search"])
    assert {run.run_id for run in found} == {ids["search-4"], ids["search-6"]}
