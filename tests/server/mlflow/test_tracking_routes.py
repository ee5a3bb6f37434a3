"""MLflow's tracking REST API on the team server, called with the raw JSON MLflow's client
sends: experiments, runs, params, tags, metrics (NaN/Infinity, retried batches), log-batch
limits, log-model, log-inputs, search with MLflow's grammar and page tokens, metric
history pages, artifact listings, MLflow's error codes and statuses, the Default
experiment, and per-experiment permissions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ratchet.server.app import ServerOptions, create_app
from ratchet.store.records import ArtifactEntry, DatasetInput
from ratchet.workspace import Workspace

API = "/api/2.0/mlflow"


class Mlflow:
    """Calls as MLflow's client makes them: GET with a query string, POST with JSON."""

    def __init__(self, client: TestClient, token: str | None = None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def post(self, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        answer = self.client.post(f"{API}/{path}", content=json.dumps(body),
                                  headers={**self.headers, "Content-Type": "application/json"})
        assert answer.status_code == status, answer.text
        return dict(answer.json())

    def get(self, path: str, params: dict[str, Any], status: int = 200) -> dict[str, Any]:
        answer = self.client.get(f"{API}/{path}", params=params, headers=self.headers)
        assert answer.status_code == status, answer.text
        return dict(answer.json())

    def error(self, method: str, path: str, body: dict[str, Any], status: int,
              code: str) -> str:
        reply = (self.post if method == "POST" else self.get)(path, body, status)
        assert reply["error_code"] == code, reply
        return str(reply["message"])

    # shorthands
    def experiment(self, name: str, **extra: Any) -> str:
        return str(self.post("experiments/create", {"name": name, **extra})["experiment_id"])

    def run(self, experiment_id: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {"experiment_id": experiment_id, **extra} if experiment_id else dict(extra)
        return dict(self.post("runs/create", {"start_time": 1000, **body})["run"])

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.get("runs/get", {"run_id": run_id})["run"])


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.at(tmp_path / "home")


@pytest.fixture
def mlflow(workspace: Workspace) -> Iterator[Mlflow]:
    app = create_app(workspace, ServerOptions(host="127.0.0.1", allowed_hosts=("testserver",)))
    with TestClient(app, base_url="http://testserver") as client:
        yield Mlflow(client)


def _tags(message: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in message.get("tags", [])}


# ---------------------------------------------------------------------------- experiments
def test_experiments_create_get_by_id_and_name_and_their_errors(mlflow: Mlflow) -> None:
    exp_id = mlflow.experiment("churn", tags=[{"key": "team", "value": "x"}])
    got = mlflow.get("experiments/get", {"experiment_id": exp_id})["experiment"]
    assert got["name"] == "churn" and got["experiment_id"] == exp_id
    assert got["artifact_location"] == f"mlflow-artifacts:/{exp_id}"
    assert got["lifecycle_stage"] == "active" and _tags(got) == {"team": "x"}
    assert got["creation_time"] > 0 and got["last_update_time"] >= got["creation_time"]
    by_name = mlflow.get("experiments/get-by-name", {"experiment_name": "churn"})
    assert by_name["experiment"] == got
    assert "already exists" in mlflow.error("POST", "experiments/create", {"name": "churn"},
                                            400, "RESOURCE_ALREADY_EXISTS")
    mlflow.error("GET", "experiments/get", {"experiment_id": "nope"}, 404,
                 "RESOURCE_DOES_NOT_EXIST")
    # An id is never a name, and a name never an id.
    mlflow.error("GET", "experiments/get", {"experiment_id": "churn"}, 404,
                 "RESOURCE_DOES_NOT_EXIST")
    assert "Could not find experiment with name 'x1'" in mlflow.error(
        "GET", "experiments/get-by-name", {"experiment_name": "x1"}, 404,
        "RESOURCE_DOES_NOT_EXIST")
    mlflow.error("GET", "experiments/get-by-name", {"experiment_name": exp_id}, 404,
                 "RESOURCE_DOES_NOT_EXIST")
    # A name that is another experiment's id still finds the experiment of that name.
    named_like_an_id = mlflow.experiment(exp_id + "x")
    renamed_like_an_id = mlflow.experiment("y")
    mlflow.post("experiments/update", {"experiment_id": renamed_like_an_id,
                                       "new_name": named_like_an_id})
    found = mlflow.get("experiments/get-by-name", {"experiment_name": named_like_an_id})
    assert found["experiment"]["experiment_id"] == renamed_like_an_id
    mlflow.error("POST", "experiments/create", {}, 400, "INVALID_PARAMETER_VALUE")
    assert "cannot be chosen" in mlflow.error(
        "POST", "experiments/create", {"name": "x2", "artifact_location": "/etc"}, 400,
        "INVALID_PARAMETER_VALUE")


def test_the_default_experiment_has_id_0_and_takes_runs_without_one(
        mlflow: Mlflow, workspace: Workspace) -> None:
    default = mlflow.get("experiments/get-by-name", {"experiment_name": "Default"})
    assert default["experiment"]["experiment_id"] == "0"
    run = mlflow.run()  # no experiment_id, as MLflow's client sends it
    assert run["info"]["experiment_id"] == "0"
    assert workspace.stores.tracking.get_run(run["info"]["run_id"]).experiment_id == "0"
    mlflow.error("POST", "experiments/create", {"name": "Default"}, 400,
                 "RESOURCE_ALREADY_EXISTS")
    mlflow.error("POST", "experiments/delete", {"experiment_id": "0"}, 400,
                 "INVALID_PARAMETER_VALUE")


def test_experiments_delete_restore_rename_and_tags(mlflow: Mlflow,
                                                    workspace: Workspace) -> None:
    exp_id = mlflow.experiment("old")
    run_id = mlflow.run(exp_id)["info"]["run_id"]
    mlflow.post("experiments/delete", {"experiment_id": exp_id})
    got = mlflow.get("experiments/get", {"experiment_id": exp_id})["experiment"]
    assert got["lifecycle_stage"] == "deleted"
    assert mlflow.get_run(run_id)["info"]["lifecycle_stage"] == "deleted"
    assert "active" in mlflow.error("POST", "runs/create", {"experiment_id": exp_id}, 400,
                                    "INVALID_PARAMETER_VALUE")
    mlflow.post("experiments/restore", {"experiment_id": exp_id})
    assert mlflow.get_run(run_id)["info"]["lifecycle_stage"] == "active"
    assert workspace.stores.tracking.get_experiment(exp_id).deleted_at is None
    tracking = workspace.stores.tracking
    mlflow.post("experiments/update", {"experiment_id": exp_id, "new_name": "new"})
    assert tracking.get_experiment(exp_id).name == "new"
    assert mlflow.get("experiments/get", {"experiment_id": exp_id})["experiment"]["name"] \
        == "new"
    mlflow.post("experiments/update", {"experiment_id": exp_id, "new_name": "new"})
    mlflow.experiment("taken")
    mlflow.error("POST", "experiments/update", {"experiment_id": exp_id, "new_name": "taken"},
                 400, "RESOURCE_ALREADY_EXISTS")
    mlflow.post("experiments/set-experiment-tag",
                {"experiment_id": exp_id, "key": "k", "value": "v"})
    mlflow.post("experiments/set-experiment-tag",
                {"experiment_id": exp_id, "key": "k", "value": "w"})
    assert tracking.get_experiment(exp_id).tags == {"k": "w"}
    mlflow.post("experiments/delete-experiment-tag", {"experiment_id": exp_id, "key": "k"})
    assert tracking.get_experiment(exp_id).tags == {}
    mlflow.error("POST", "experiments/delete-experiment-tag",
                 {"experiment_id": exp_id, "key": "k"}, 404, "RESOURCE_DOES_NOT_EXIST")
    mlflow.error("POST", "experiments/set-experiment-tag",
                 {"experiment_id": "nope", "key": "k", "value": "v"}, 404,
                 "RESOURCE_DOES_NOT_EXIST")


def test_search_experiments_filters_orders_pages_and_views(mlflow: Mlflow) -> None:
    mlflow.get("experiments/get", {"experiment_id": "0"})  # the Default one, made first
    ids = [mlflow.experiment(f"exp-{i}", tags=[{"key": "i", "value": str(i)}])
           for i in range(5)]
    mlflow.post("experiments/delete", {"experiment_id": ids[4]})
    everything = mlflow.post("experiments/search", {"max_results": 100})["experiments"]
    assert [e["name"] for e in everything] == ["exp-3", "exp-2", "exp-1", "exp-0", "Default"]
    found = mlflow.post("experiments/search", {"filter": "name LIKE 'exp-%' AND tags.i != '0'",
                                               "order_by": ["name ASC"], "max_results": 2})
    assert [e["name"] for e in found["experiments"]] == ["exp-1", "exp-2"]
    rest = mlflow.post("experiments/search", {
        "filter": "name LIKE 'exp-%' AND tags.i != '0'", "order_by": ["name ASC"],
        "max_results": 2, "page_token": found["next_page_token"]})
    assert [e["name"] for e in rest["experiments"]] == ["exp-3"]
    assert "next_page_token" not in rest
    deleted = mlflow.post("experiments/search", {"view_type": "DELETED_ONLY"})
    assert [e["name"] for e in deleted["experiments"]] == ["exp-4"]
    every = mlflow.get("experiments/search", {"view_type": "ALL", "max_results": 10})
    assert len(every["experiments"]) == 6
    mlflow.error("POST", "experiments/search", {"filter": "name = 'x' OR name = 'y'"}, 400,
                 "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "experiments/search", {"view_type": "SOME"}, 400,
                 "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "experiments/search",
                 {"max_results": 1, "page_token": found["next_page_token"]}, 400,
                 "INVALID_PARAMETER_VALUE")


# ---------------------------------------------------------------------------- runs
def test_a_run_from_mlflow_is_a_ratchet_run_with_its_code_version(
        mlflow: Mlflow, workspace: Workspace) -> None:
    exp_id = mlflow.experiment("e")
    system = [{"key": "mlflow.user", "value": "ann"},
              {"key": "mlflow.source.name", "value": "train.py"},
              {"key": "mlflow.source.type", "value": "LOCAL"},
              {"key": "mlflow.source.git.commit", "value": "abc123"}]
    run = mlflow.run(exp_id, run_name="first", user_id="ann", tags=system)
    info = run["info"]
    assert info["run_name"] == "first" and info["status"] == "RUNNING"
    assert info["run_id"] == info["run_uuid"] and info["user_id"] == "ann"
    assert info["start_time"] == 1000 and "end_time" not in info
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/{info['run_id']}/artifacts"
    assert info["lifecycle_stage"] == "active"
    stored = workspace.stores.tracking.get_run(info["run_id"])
    assert (stored.name, stored.code.user, stored.code.entry_point, stored.code.git_commit) \
        == ("first", "ann", "train.py", "abc123")
    assert stored.tags["mlflow.source.type"] == "LOCAL"
    child = mlflow.run(exp_id, tags=[{"key": "mlflow.parentRunId", "value": info["run_id"]}])
    assert workspace.stores.tracking.get_run(child["info"]["run_id"]).parent_run_id \
        == info["run_id"]
    updated = mlflow.post("runs/update", {"run_id": info["run_id"], "status": "FINISHED",
                                          "end_time": 5000})["run_info"]
    assert updated["status"] == "FINISHED" and updated["end_time"] == 5000
    assert workspace.stores.tracking.get_run(info["run_id"]).status == "finished"
    mlflow.post("runs/update", {"run_uuid": info["run_id"], "status": "SCHEDULED"})
    assert mlflow.get_run(info["run_id"])["info"]["status"] == "RUNNING"
    mlflow.error("POST", "runs/update", {"run_id": info["run_id"], "status": "DONE"}, 400,
                 "INVALID_PARAMETER_VALUE")
    mlflow.post("runs/update", {"run_id": info["run_id"], "run_name": "second"})
    got = mlflow.get_run(info["run_id"])
    assert got["info"]["run_name"] == "second"
    assert _tags(got["data"])["mlflow.runName"] == "second"
    assert workspace.stores.tracking.get_run(info["run_id"]).name == "second"
    mlflow.post("runs/set-tag", {"run_id": info["run_id"], "key": "mlflow.runName",
                                 "value": "third"})
    assert workspace.stores.tracking.get_run(info["run_id"]).name == "third"
    workspace.stores.tracking.set_run_name(info["run_id"], "fourth")  # ratchet's side
    got = mlflow.get_run(info["run_id"])
    assert got["info"]["run_name"] == "fourth"
    assert _tags(got["data"])["mlflow.runName"] == "fourth"
    mlflow.error("GET", "runs/get", {"run_id": "missing"}, 404, "RESOURCE_DOES_NOT_EXIST")
    mlflow.error("GET", "runs/get", {}, 400, "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "runs/create", {"experiment_id": "nope"}, 404,
                 "RESOURCE_DOES_NOT_EXIST")
    assert "different values" in mlflow.error(
        "POST", "runs/create", {"experiment_id": exp_id, "run_name": "a",
                                "tags": [{"key": "mlflow.runName", "value": "b"}]}, 400,
        "INVALID_PARAMETER_VALUE")
    tagged = mlflow.run(exp_id, tags=[{"key": "mlflow.runName", "value": "by-tag"}])
    assert tagged["info"]["run_name"] == "by-tag"


def test_runs_delete_and_restore(mlflow: Mlflow, workspace: Workspace) -> None:
    run_id = mlflow.run(mlflow.experiment("e"))["info"]["run_id"]
    mlflow.post("runs/delete", {"run_id": run_id})
    assert mlflow.get_run(run_id)["info"]["lifecycle_stage"] == "deleted"
    assert workspace.stores.tracking.get_run(run_id, include_deleted=True).deleted_at
    for path, body in (("runs/log-metric", {"key": "m", "value": 1, "timestamp": 1}),
                       ("runs/log-parameter", {"key": "p", "value": "1"}),
                       ("runs/set-tag", {"key": "t", "value": "1"}),
                       ("runs/log-batch", {"metrics": [{"key": "m", "value": 1,
                                                        "timestamp": 1}]}),
                       ("runs/update", {"status": "FINISHED"})):
        message = mlflow.error("POST", path, {"run_id": run_id, **body}, 400,
                               "INVALID_PARAMETER_VALUE")
        assert "must be in the 'active' state" in message
    mlflow.post("runs/delete", {"run_id": run_id})  # deleting again: nothing to do
    mlflow.post("runs/restore", {"run_id": run_id})
    assert mlflow.get_run(run_id)["info"]["lifecycle_stage"] == "active"
    mlflow.error("POST", "runs/delete", {"run_id": "nope"}, 404, "RESOURCE_DOES_NOT_EXIST")


def test_metrics_params_and_tags_travel_as_proto3_json(mlflow: Mlflow) -> None:
    run_id = mlflow.run(mlflow.experiment("e"))["info"]["run_id"]
    for key, value in (("nan", "NaN"), ("inf", "Infinity"), ("neg", "-Infinity"), ("x", 0.5)):
        mlflow.post("runs/log-metric", {"run_id": run_id, "key": key, "value": value,
                                        "timestamp": 7, "step": 3})
    mlflow.post("runs/log-metric", {"run_id": run_id, "key": "x", "value": 0.25,
                                    "timestamp": "8", "step": "4"})  # int64 as strings
    mlflow.post("runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    mlflow.post("runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    mlflow.post("runs/log-parameter", {"run_id": run_id, "key": "empty"})
    mlflow.post("runs/set-tag", {"run_id": run_id, "key": "team", "value": "a"})
    mlflow.post("runs/set-tag", {"run_id": run_id, "key": "gone", "value": "b"})
    mlflow.post("runs/delete-tag", {"run_id": run_id, "key": "gone"})
    data = mlflow.get_run(run_id)["data"]
    metrics = {m["key"]: m for m in data["metrics"]}
    assert metrics["nan"] == {"key": "nan", "value": "NaN", "timestamp": 7, "step": 3}
    assert metrics["inf"]["value"] == "Infinity" and metrics["neg"]["value"] == "-Infinity"
    assert metrics["x"] == {"key": "x", "value": 0.25, "timestamp": 8, "step": 4}
    assert {p["key"]: p.get("value", "") for p in data["params"]} == {"lr": "0.1", "empty": ""}
    tags = _tags(data)
    assert tags["team"] == "a" and "gone" not in tags
    assert "mlflow.runName" in tags
    # MLflow's answers to the same mistakes.
    assert "lr" in mlflow.error("POST", "runs/log-parameter",
                                {"run_id": run_id, "key": "lr", "value": "0.2"}, 400,
                                "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "runs/log-metric", {"run_id": run_id, "key": "x", "value": "abc",
                                             "timestamp": 1}, 400, "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "runs/log-metric", {"run_id": run_id, "key": "x", "value": 1}, 400,
                 "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "runs/log-metric", {"run_id": "nope", "key": "x", "value": 1,
                                             "timestamp": 1}, 404, "RESOURCE_DOES_NOT_EXIST")
    mlflow.error("POST", "runs/delete-tag", {"run_id": run_id, "key": "never"}, 404,
                 "RESOURCE_DOES_NOT_EXIST")
    mlflow.error("POST", "runs/set-tag", {"run_id": run_id, "key": "../x", "value": "1"},
                 400, "INVALID_PARAMETER_VALUE")


def test_retried_metric_writes_store_each_point_once(mlflow: Mlflow,
                                                     workspace: Workspace) -> None:
    run_id = mlflow.run(mlflow.experiment("e"))["info"]["run_id"]
    batch = {"run_id": run_id,
             "metrics": [{"key": "loss", "value": 1.0 / (i + 1), "timestamp": 100 + i,
                          "step": i} for i in range(50)]
             + [{"key": "nan", "value": "NaN", "timestamp": 5, "step": 0}],
             "params": [{"key": "p", "value": "1"}], "tags": [{"key": "t", "value": "1"}]}
    for _ in range(3):  # the client retries after a 5xx it did not see succeed
        mlflow.post("runs/log-batch", batch)
    one = {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 101, "step": 1}
    mlflow.post("runs/log-metric", one)
    tracking = workspace.stores.tracking
    assert len(tracking.metric_history(run_id, "loss")) == 50
    assert len(tracking.metric_history(run_id, "nan")) == 1
    # The same value at the same step but another time is a new point, as in MLflow.
    mlflow.post("runs/log-metric", {**one, "timestamp": 999})
    # A batch repeating a point within itself writes it once.
    mlflow.post("runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "dup", "value": 1, "timestamp": 1, "step": 0}] * 3})
    assert len(tracking.metric_history(run_id, "loss")) == 51
    assert len(tracking.metric_history(run_id, "dup")) == 1
    history = mlflow.get("metrics/get-history", {"run_id": run_id, "metric_key": "loss"})
    assert len(history["metrics"]) == 51 and "next_page_token" not in history


def test_metrics_sent_with_a_model_id_are_the_logged_models_too(
        mlflow: Mlflow, workspace: Workspace) -> None:
    exp_id = mlflow.experiment("e")
    run_id = mlflow.run(exp_id)["info"]["run_id"]
    models = workspace.stores.logged_models
    model = models.create(exp_id, name="m", source_run_id=run_id)
    models.record_outputs(run_id, [(model.model_id, 2)])
    batch = {"run_id": run_id, "metrics": [
        {"key": "acc", "value": 0.9, "timestamp": 5, "step": 2, "model_id": model.model_id,
         "dataset_name": "eval", "dataset_digest": "d1"},
        {"key": "loss", "value": 0.1, "timestamp": 5, "step": 2}]}
    mlflow.post("runs/log-batch", batch)
    mlflow.post("runs/log-batch", batch)  # retried: neither the run nor the model twice
    [point] = models.get(model.model_id).metrics
    assert (point.key, point.value, point.step, point.run_id, point.dataset_name) == \
        ("acc", 0.9, 2, run_id, "eval")
    assert len(workspace.stores.tracking.metric_history(run_id, "acc")) == 1
    assert mlflow.get_run(run_id)["outputs"] == {
        "model_outputs": [{"model_id": model.model_id, "step": 2}]}
    before = len(workspace.stores.tracking.metric_history(run_id, "loss"))
    mlflow.error("POST", "runs/log-metric", {"run_id": run_id, "key": "loss", "value": 1,
                                             "timestamp": 9, "model_id": "m-nope"}, 404,
                 "RESOURCE_DOES_NOT_EXIST")
    assert len(workspace.stores.tracking.metric_history(run_id, "loss")) == before


def test_log_batch_enforces_mlflows_limits(mlflow: Mlflow, workspace: Workspace) -> None:
    run_id = mlflow.run(mlflow.experiment("e"))["info"]["run_id"]
    metric = {"key": "m", "value": 1, "timestamp": 1, "step": 0}
    for body, what in (({"metrics": [metric] * 1001}, "1000 metrics"),
                       ({"params": [{"key": f"p{i}", "value": "v"} for i in range(101)]},
                        "100 params"),
                       ({"tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]},
                        "100 tags"),
                       ({"metrics": [metric] * 950,
                         "params": [{"key": f"p{i}", "value": "v"} for i in range(51)]},
                        "in total")):
        assert what in mlflow.error("POST", "runs/log-batch", {"run_id": run_id, **body},
                                    400, "INVALID_PARAMETER_VALUE")
    assert workspace.stores.tracking.get_run(run_id).params == {}  # nothing half-written
    mlflow.error("POST", "runs/log-batch", {"run_id": run_id, "metrics": [{"key": "m"}]},
                 400, "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "runs/log-batch",
                 {"run_id": run_id, "params": [{"key": "a", "value": "1"},
                                               {"key": "a", "value": "2"}]},
                 400, "INVALID_PARAMETER_VALUE")
    mlflow.post("runs/log-batch", {"run_id": run_id, "metrics": [metric] * 1000,
                                   "params": [{"key": f"p{i}", "value": "v"} for i in range(0)]})


def test_log_model_keeps_mlflows_history_tag(mlflow: Mlflow) -> None:
    run_id = mlflow.run(mlflow.experiment("e"))["info"]["run_id"]
    model = {"artifact_path": "model", "flavors": {"python_function": {}},
             "utc_time_created": "2026-01-01 00:00:00.000000", "run_id": run_id}
    for m in (model, model, {**model, "artifact_path": "model2"}):  # one retried
        mlflow.post("runs/log-model", {"run_id": run_id, "model_json": json.dumps(m)})
    history = json.loads(_tags(mlflow.get_run(run_id)["data"])["mlflow.log-model.history"])
    assert [m["artifact_path"] for m in history] == ["model", "model2"]
    assert "missing mandatory fields" in mlflow.error(
        "POST", "runs/log-model", {"run_id": run_id, "model_json": json.dumps({"a": 1})}, 400,
        "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "runs/log-model", {"run_id": run_id, "model_json": "{nope"}, 400,
                 "INVALID_PARAMETER_VALUE")


def test_log_inputs_round_trip_mlflows_dataset_fields(mlflow: Mlflow,
                                                      workspace: Workspace) -> None:
    run_id = mlflow.run(mlflow.experiment("e"))["info"]["run_id"]
    dataset = {"name": "train", "digest": "abc123", "source_type": "s3",
               "source": '{"uri": "s3://b/k.csv"}', "schema": '{"mlflow_colspec": []}',
               "profile": '{"num_rows": 2}'}
    body = {"run_id": run_id, "datasets": [
        {"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": dataset}]}
    mlflow.post("runs/log-inputs", body)
    mlflow.post("runs/log-inputs", body)  # a retry adds nothing
    workspace.stores.tracking.log_input(
        run_id, DatasetInput("features", "d1", 3, "eval", "ratchet://datasets/features/3"))
    inputs = mlflow.get_run(run_id)["inputs"]["dataset_inputs"]
    assert inputs[0] == body["datasets"][0]
    assert inputs[1] == {"tags": [{"key": "mlflow.data.context", "value": "eval"}],
                         "dataset": {"name": "features", "digest": "d1",
                                     "source_type": "ratchet",
                                     "source": "ratchet://datasets/features/3"}}
    [stored, _] = workspace.stores.tracking.get_run(run_id).inputs
    assert (stored.name, stored.digest, stored.role) == ("train", "abc123", "training")
    mlflow.error("POST", "runs/log-inputs", {"run_id": run_id, "datasets": [{"dataset": {}}]},
                 400, "INVALID_PARAMETER_VALUE")


# ---------------------------------------------------------------------------- search
def test_search_runs_with_mlflows_grammar_order_and_pages(mlflow: Mlflow) -> None:
    exp_id = mlflow.experiment("e")
    other = mlflow.experiment("other")
    ids = []
    for i in range(5):
        run_id = mlflow.run(exp_id, run_name=f"r{i}", start_time=1000 + i)["info"]["run_id"]
        ids.append(run_id)
        mlflow.post("runs/log-batch", {"run_id": run_id, "metrics": [
            {"key": "auc", "value": i / 10, "timestamp": 50 + i, "step": i}],
            "params": [{"key": "p", "value": "even" if i % 2 == 0 else "odd"}]})
    mlflow.post("runs/update", {"run_id": ids[1], "status": "FINISHED", "end_time": 9})
    mlflow.run(other, run_name="elsewhere")

    def names(body: dict[str, Any]) -> list[str]:
        found = mlflow.post("runs/search", {"experiment_ids": [exp_id], **body})
        return [r["info"]["run_name"] for r in found.get("runs", [])]

    assert names({}) == ["r4", "r3", "r2", "r1", "r0"]  # newest first, as MLflow
    assert names({"filter": "metrics.auc > 0.15 and params.p = 'even'"}) == ["r4", "r2"]
    assert names({"filter": "attributes.status = 'FINISHED'"}) == ["r1"]
    assert names({"filter": "tags.mlflow.runName = 'r3'"}) == ["r3"]
    mlflow.post("runs/update", {"run_id": ids[2], "run_name": "renamed"})
    assert names({"filter": "tags.mlflow.runName = 'renamed'"}) == ["renamed"]
    mlflow.post("runs/update", {"run_id": ids[2], "run_name": "r2"})
    assert names({"filter": f"attributes.run_id IN ('{ids[0]}', '{ids[2]}')",
                  "order_by": ["attributes.start_time ASC"]}) == ["r0", "r2"]
    assert names({"order_by": ["metrics.auc DESC"], "max_results": 2}) == ["r4", "r3"]
    first = mlflow.post("runs/search", {"experiment_ids": [exp_id], "max_results": 2,
                                        "order_by": ["run_name"]})
    second = mlflow.post("runs/search", {"experiment_ids": [exp_id], "max_results": 2,
                                         "order_by": ["run_name"],
                                         "page_token": first["next_page_token"]})
    assert [r["info"]["run_name"] for r in second["runs"]] == ["r2", "r3"]
    found = mlflow.post("runs/search", {"experiment_ids": [exp_id],
                                        "filter": "attributes.run_name = 'r3'"})["runs"][0]
    assert found["data"]["metrics"] == [{"key": "auc", "value": 0.3, "timestamp": 53,
                                         "step": 3}]
    mlflow.post("runs/delete", {"run_id": ids[0]})
    assert names({}) == ["r4", "r3", "r2", "r1"]
    assert names({"run_view_type": "DELETED_ONLY"}) == ["r0"]
    assert len(names({"run_view_type": "ALL"})) == 5
    assert mlflow.post("runs/search", {"experiment_ids": ["nope"]}) == {}
    assert "datasets" in mlflow.error("POST", "runs/search", {
        "experiment_ids": [exp_id], "filter": "datasets.name = 'x'"}, 400,
        "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "runs/search", {"experiment_ids": [exp_id], "filter": "metrics.x >"},
                 400, "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "runs/search", {"experiment_ids": [exp_id], "max_results": 50001},
                 400, "INVALID_PARAMETER_VALUE")
    mlflow.error("POST", "runs/search", {"experiment_ids": [exp_id], "page_token": "bad"},
                 400, "INVALID_PARAMETER_VALUE")


def test_metric_history_pages(mlflow: Mlflow) -> None:
    run_id = mlflow.run(mlflow.experiment("e"))["info"]["run_id"]
    mlflow.post("runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "m", "value": float(i), "timestamp": i, "step": i} for i in range(5)]})
    seen, token = [], None
    while True:
        params = {"run_id": run_id, "metric_key": "m", "max_results": 2}
        page = mlflow.get("metrics/get-history", {**params, "page_token": token} if token
                          else params)
        seen += [m["step"] for m in page["metrics"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == [0, 1, 2, 3, 4]
    assert mlflow.get("metrics/get-history", {"run_id": run_id, "metric_key": "none"}) == {}
    mlflow.error("GET", "metrics/get-history", {"run_id": run_id, "metric_key": "m",
                                                "max_results": 0}, 400,
                 "INVALID_PARAMETER_VALUE")
    mlflow.error("GET", "metrics/get-history", {"run_id": "nope", "metric_key": "m"}, 404,
                 "RESOURCE_DOES_NOT_EXIST")


def test_metric_history_bulk_interval_samples_steps_per_run(mlflow: Mlflow) -> None:
    exp_id = mlflow.experiment("e")
    runs = [mlflow.run(exp_id)["info"]["run_id"] for _ in range(2)]
    for n, run_id in zip((10, 3), runs, strict=True):
        mlflow.post("runs/log-batch", {"run_id": run_id, "metrics": [
            {"key": "m", "value": float(i), "timestamp": 100 + i, "step": i}
            for i in range(n)]})
    found = mlflow.get("metrics/get-history-bulk-interval",
                       {"run_ids": runs, "metric_key": "m", "max_results": 4})["metrics"]
    steps = [(m["run_id"] == runs[0], m["step"]) for m in found]
    assert steps == [(True, 0), (True, 3), (True, 6), (True, 9),
                     (False, 0), (False, 1), (False, 2)]
    assert found[1] == {"key": "m", "value": 3.0, "timestamp": 103, "step": 3,
                        "run_id": runs[0]}
    window = mlflow.get("metrics/get-history-bulk-interval",
                        {"run_ids": [runs[0]], "metric_key": "m", "start_step": 2,
                         "end_step": 4})["metrics"]
    assert [m["step"] for m in window] == [2, 3, 4]
    for bad in ({"start_step": 2}, {"start_step": 5, "end_step": 1}, {"max_results": 0},
                {"run_ids": [f"r{i}" for i in range(101)]}):
        mlflow.error("GET", "metrics/get-history-bulk-interval",
                     {"run_ids": runs, "metric_key": "m", **bad}, 400,
                     "INVALID_PARAMETER_VALUE")


def test_artifacts_list_files_and_directories(mlflow: Mlflow, workspace: Workspace) -> None:
    exp_id = mlflow.experiment("e")
    run_id = mlflow.run(exp_id)["info"]["run_id"]
    workspace.stores.tracking.record_artifacts(run_id, [
        ArtifactEntry("model/MLmodel", "a" * 64, 10),
        ArtifactEntry("model/data/weights.bin", "b" * 64, 2000),
        ArtifactEntry("notes.txt", "c" * 64, 5)])
    root = mlflow.get("artifacts/list", {"run_id": run_id})
    assert root["root_uri"] == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts"
    assert root["files"] == [{"path": "model", "is_dir": True},
                             {"path": "notes.txt", "file_size": 5}]
    inner = mlflow.get("artifacts/list", {"run_id": run_id, "path": "model"})
    assert inner["files"] == [{"path": "model/MLmodel", "file_size": 10},
                              {"path": "model/data", "is_dir": True}]
    assert "files" not in mlflow.get("artifacts/list", {"run_id": run_id, "path": "nothing"})
    for bad in ("../x", "/etc", "model/../../x"):
        mlflow.error("GET", "artifacts/list", {"run_id": run_id, "path": bad}, 400,
                     "INVALID_PARAMETER_VALUE")


# ---------------------------------------------------------------------------- permissions
@pytest.fixture
def team(workspace: Workspace) -> Iterator[dict[str, Mlflow]]:
    """The server with auth on: an admin, a reader barred from 'secret', and a reader
    with a write grant on 'mine'."""
    auth = workspace.stores.auth
    auth.create_user("alice", "admin")
    auth.create_user("bob", "reader")
    auth.grant("bob", "experiment", "secret", "none")
    auth.create_user("carol", "reader")
    auth.grant("carol", "experiment", "mine", "write")
    app = create_app(workspace, ServerOptions(host="0.0.0.0", allowed_hosts=("testserver",)))
    with TestClient(app, base_url="http://testserver") as client:
        yield {name: Mlflow(client, auth.create_token(name).token)
               for name in ("alice", "bob", "carol")} | {"anonymous": Mlflow(client)}


def test_a_reader_cannot_write_and_sees_only_what_it_may_read(team: dict[str, Mlflow]) -> None:
    alice, bob = team["alice"], team["bob"]
    secret, public = alice.experiment("secret"), alice.experiment("public")
    secret_run = alice.run(secret)["info"]["run_id"]
    public_run = alice.run(public)["info"]["run_id"]
    bob.error("POST", "runs/create", {"experiment_id": public}, 403, "PERMISSION_DENIED")
    bob.error("POST", "runs/log-metric", {"run_id": public_run, "key": "m", "value": 1,
                                          "timestamp": 1}, 403, "PERMISSION_DENIED")
    bob.error("POST", "experiments/create", {"name": "bobs"}, 403, "PERMISSION_DENIED")
    assert bob.get_run(public_run)["info"]["run_id"] == public_run
    bob.error("GET", "runs/get", {"run_id": secret_run}, 403, "PERMISSION_DENIED")
    bob.error("GET", "experiments/get", {"experiment_id": secret}, 403, "PERMISSION_DENIED")
    bob.error("GET", "experiments/get-by-name", {"experiment_name": "secret"}, 403,
              "PERMISSION_DENIED")
    bob.error("GET", "metrics/get-history", {"run_id": secret_run, "metric_key": "m"}, 403,
              "PERMISSION_DENIED")
    names = [e["name"] for e in bob.post("experiments/search", {})["experiments"]]
    assert "secret" not in names and "public" in names
    runs = bob.post("runs/search", {"experiment_ids": [secret, public]})["runs"]
    assert [r["info"]["run_id"] for r in runs] == [public_run]


def test_a_grant_on_one_experiment_allows_writing_there_only(team: dict[str, Mlflow]) -> None:
    alice, carol = team["alice"], team["carol"]
    mine, other = alice.experiment("mine"), alice.experiment("other")
    run_id = carol.run(mine)["info"]["run_id"]
    carol.post("runs/log-metric", {"run_id": run_id, "key": "m", "value": 1, "timestamp": 1})
    carol.post("runs/update", {"run_id": run_id, "status": "FINISHED"})
    carol.error("POST", "runs/create", {"experiment_id": other}, 403, "PERMISSION_DENIED")
    carol.error("POST", "experiments/delete", {"experiment_id": other}, 403,
                "PERMISSION_DENIED")
    carol.error("POST", "experiments/update", {"experiment_id": mine, "new_name": "other2"},
                403, "PERMISSION_DENIED")


def test_every_tracking_route_asks_for_a_token(team: dict[str, Mlflow],
                                              workspace: Workspace) -> None:
    from ratchet.server.mlflow.tracking_routes import router

    anonymous = team["anonymous"]
    routes = [(method, route.path) for route in router(workspace)
              .routes for method in route.methods]
    assert len(routes) >= 25
    for method, path in routes:
        if method == "GET":
            answer = anonymous.client.get(path)
        else:
            answer = anonymous.client.post(path, json={})
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["error_code"] == "UNAUTHENTICATED"


def test_model_inputs_of_a_run(mlflow: Mlflow) -> None:
    """MLflow 3 records the logged models a run used (``log_metric(..., model_id=)``)."""
    exp_id = mlflow.experiment("e")
    run_id = mlflow.run(exp_id)["info"]["run_id"]
    model = mlflow.post("logged-models", {"experiment_id": exp_id, "name": "m"})["model"]
    model_id = model["info"]["model_id"]
    body = {"run_id": run_id, "models": [{"model_id": model_id}]}
    mlflow.post("runs/log-inputs", body)
    mlflow.post("runs/log-inputs", body)  # a retry: recorded once
    assert mlflow.get_run(run_id)["inputs"]["model_inputs"] == [{"model_id": model_id}]
    mlflow.error("POST", "runs/log-inputs", {"run_id": run_id, "models": [{"model_id": "m-0"}]},
                 404, "RESOURCE_DOES_NOT_EXIST")
    mlflow.error("POST", "runs/log-inputs", {"run_id": run_id, "models": [{}]},
                 400, "INVALID_PARAMETER_VALUE")
