"""MLflow's model-registry REST API on ratchet's registry, over raw JSON as MLflow's client
sends it: registered models, versions (sources resolved to this server's run artifacts
only), tags, aliases in both directions, search grammar and pages, download URIs, exact
error codes and statuses, and per-model / per-experiment permissions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

from ratchet.registry.client import RegistryClient
from ratchet.server.app import ServerOptions, create_app, routes_of
from ratchet.server.mlflow.protocol import MlflowError
from ratchet.server.mlflow.registry_messages import SOURCE_TAG
from ratchet.server.mlflow.registry_routes import like, parse_filter, parse_order_by
from ratchet.store.records import ArtifactEntry
from ratchet.tracking.client import TrackingClient
from ratchet.workspace import Workspace

API = "/api/2.0/mlflow"


class Api:
    """A TestClient speaking MLflow's wire: GET fields as query parameters, the rest as a
    JSON body; answers (status, body)."""

    def __init__(self, client: TestClient, token: str | None = None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, **fields: Any) -> tuple[int, dict[str, Any]]:
        url = f"{API}/{path}"
        if method == "GET":
            response = self.client.get(url, params=fields, headers=self.headers)
        else:
            response = self.client.request(method, url, json=fields, headers=self.headers)
        return response.status_code, response.json()

    def ok(self, method: str, path: str, **fields: Any) -> dict[str, Any]:
        status, body = self.call(method, path, **fields)
        assert status == 200, body
        return body

    def error(self, method: str, path: str, **fields: Any) -> tuple[int, str]:
        status, body = self.call(method, path, **fields)
        assert status != 200, body
        assert set(body) == {"error_code", "message"}, body
        return status, body["error_code"]


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.at(tmp_path / "home")


@pytest.fixture
def api(workspace: Workspace) -> Api:
    app = create_app(workspace, ServerOptions(allowed_hosts=("testserver",)))
    return Api(TestClient(app, base_url="http://testserver"))


def ratchet_model_run(workspace: Workspace, experiment: str = "exp") -> tuple[str, str, str]:
    """A run holding a ratchet-logged sklearn model at ``model``: (experiment id, run id,
    artifact path)."""
    tracking = workspace.client(TrackingClient)
    exp = tracking.create_experiment(experiment) if experiment not in {
        e.name for e in tracking.list_experiments()} else tracking.get_experiment(experiment)
    run = tracking.create_run(exp.name)
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    logged = workspace.client(RegistryClient).log_model(run.run_id, model)
    return exp.experiment_id, run.run_id, logged.artifact_path


def artifact_source(exp_id: str, run_id: str, path: str) -> str:
    return f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts/{path}"


# ---------------------------------------------------------------- registered models
def test_registered_model_create_get_update_and_errors(api: Api) -> None:
    body = api.ok("POST", "registered-models/create", name="churn", description="d",
                  tags=[{"key": "team", "value": "risk"}])
    model = body["registered_model"]
    assert model["name"] == "churn" and model["description"] == "d"
    assert model["tags"] == [{"key": "team", "value": "risk"}]
    assert isinstance(model["creation_timestamp"], int)
    assert "latest_versions" not in model and "aliases" not in model  # proto3: empty omitted
    assert api.error("POST", "registered-models/create", name="churn") == (
        400, "RESOURCE_ALREADY_EXISTS")
    assert api.error("POST", "registered-models/create") == (400, "INVALID_PARAMETER_VALUE")
    assert api.error("POST", "registered-models/create", name="a/b") == (
        400, "INVALID_PARAMETER_VALUE")
    assert api.error("POST", "registered-models/create", name="x",
                     tags=[{"key": SOURCE_TAG, "value": "s3://x"}]) == (
        400, "INVALID_PARAMETER_VALUE")
    got = api.ok("GET", "registered-models/get", name="churn")["registered_model"]
    assert got["name"] == "churn"
    assert api.error("GET", "registered-models/get", name="nope") == (
        404, "RESOURCE_DOES_NOT_EXIST")
    updated = api.ok("PATCH", "registered-models/update", name="churn",
                     description="new")["registered_model"]
    assert updated["description"] == "new"
    assert api.error("PATCH", "registered-models/update", name="nope", description="x") == (
        404, "RESOURCE_DOES_NOT_EXIST")


def test_rename_is_refused_clearly(api: Api) -> None:
    api.ok("POST", "registered-models/create", name="churn")
    status, body = api.call("POST", "registered-models/rename", name="churn",
                            new_name="churn2")
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert "cannot be renamed" in body["message"]
    assert api.error("POST", "registered-models/rename", name="nope", new_name="x") == (
        404, "RESOURCE_DOES_NOT_EXIST")


def test_model_tags_set_and_delete(api: Api, workspace: Workspace) -> None:
    api.ok("POST", "registered-models/create", name="churn")
    api.ok("POST", "registered-models/set-tag", name="churn", key="k", value="v")
    assert workspace.stores.registry.get_registered_model("churn").tags == {"k": "v"}
    assert api.error("POST", "registered-models/set-tag", name="nope", key="k",
                     value="v") == (404, "RESOURCE_DOES_NOT_EXIST")
    assert api.error("POST", "registered-models/set-tag", name="churn",
                     key=SOURCE_TAG, value="x") == (400, "INVALID_PARAMETER_VALUE")
    api.ok("DELETE", "registered-models/delete-tag", name="churn", key="k")
    assert workspace.stores.registry.get_registered_model("churn").tags == {}
    api.ok("DELETE", "registered-models/delete-tag", name="churn", key="absent")  # as MLflow
    assert api.error("DELETE", "registered-models/delete-tag", name="nope", key="k") == (
        404, "RESOURCE_DOES_NOT_EXIST")
    assert api.error("DELETE", "registered-models/delete-tag", name="churn",
                     key=SOURCE_TAG) == (400, "INVALID_PARAMETER_VALUE")


def test_delete_registered_model(api: Api, workspace: Workspace) -> None:
    api.ok("POST", "registered-models/create", name="churn")
    api.ok("DELETE", "registered-models/delete", name="churn")
    assert api.error("GET", "registered-models/get", name="churn") == (
        404, "RESOURCE_DOES_NOT_EXIST")
    assert api.error("DELETE", "registered-models/delete", name="churn") == (
        404, "RESOURCE_DOES_NOT_EXIST")


# ---------------------------------------------------------------- versions
def test_create_version_from_each_source_form(api: Api, workspace: Workspace) -> None:
    exp_id, run_id, path = ratchet_model_run(workspace)
    source = artifact_source(exp_id, run_id, path)
    first = api.ok("POST", "model-versions/create", name="churn", source=source,
                   run_id=run_id, tags=[{"key": "k", "value": "v"}],
                   description="first")["model_version"]
    assert first["version"] == "1" and first["source"] == source
    assert first["run_id"] == run_id and first["current_stage"] == "None"
    assert first["status"] == "READY" and first["description"] == "first"
    assert first["tags"] == [{"key": "k", "value": "v"}]  # hidden tags stay hidden
    assert first["user_id"]
    second = api.ok("POST", "model-versions/create", name="churn",
                    source=f"runs:/{run_id}/{path}")["model_version"]
    assert second["version"] == "2" and second["source"] == f"runs:/{run_id}/{path}"
    # A first-class ratchet version: same files, same hash, loadable by ratchet.
    registry = workspace.client(RegistryClient)
    version = registry.get_version("churn", 1)
    assert (version.run_id, version.artifact_path, version.flavor) == (run_id, path,
                                                                       "sklearn")
    loaded = registry.load("models:/churn/1")
    assert list(loaded.predict([[0.0], [3.0]])) == [0, 1]
    got = api.ok("GET", "model-versions/get", name="churn", version="1")["model_version"]
    assert got == first
    uri = api.ok("GET", "model-versions/get-download-uri", name="churn", version="2")
    assert uri == {"artifact_uri": source}
    model = api.ok("GET", "registered-models/get", name="churn")["registered_model"]
    assert [v["version"] for v in model["latest_versions"]] == ["2"]


def test_create_version_from_a_logged_model(api: Api, workspace: Workspace) -> None:
    """MLflow 3: source models:/<model_id> with model_id; the files are the holder run's
    artifacts models/<model_id>/..."""
    tracking = workspace.client(TrackingClient)
    exp = tracking.create_experiment("lm")
    run = tracking.create_run(exp.name)
    logged = workspace.stores.logged_models.create(exp.experiment_id, name="clf",
                                                   source_run_id=run.run_id)
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    workspace.client(RegistryClient).log_model(logged.artifact_run_id, model,
                                               artifact_path=logged.artifact_path)
    mid = logged.model_id
    made = api.ok("POST", "model-versions/create", name="lm", source=f"models:/{mid}",
                  model_id=mid)["model_version"]
    assert made["model_id"] == mid and made["source"] == f"models:/{mid}"
    assert made["run_id"] == run.run_id  # as MLflow: the run the model was logged from
    version = workspace.stores.registry.get_model_version("lm", 1)
    assert (version.run_id, version.artifact_path) == (logged.artifact_run_id,
                                                       f"models/{mid}")
    assert json.loads(workspace.stores.logged_models.get(mid).tags["mlflow.modelVersions"]
                      ) == [{"name": "lm", "version": "1"}]
    uri = api.ok("GET", "model-versions/get-download-uri", name="lm", version="1")
    # the logged model's own URI: the proxy lists its files there, not under the run
    assert uri["artifact_uri"] == f"mlflow-artifacts:/{exp.experiment_id}/models/{mid}/artifacts"
    second = api.ok("POST", "model-versions/create", name="lm", model_id=mid,
                    source=f"mlflow-artifacts:/{exp.experiment_id}/models/{mid}/artifacts",
                    run_id=run.run_id, description="again")["model_version"]
    assert second["version"] == "2" and second["model_id"] == mid
    assert json.loads(workspace.stores.logged_models.get(mid).tags["mlflow.modelVersions"]
                      ) == [{"name": "lm", "version": "1"}, {"name": "lm", "version": "2"}]
    assert workspace.client(RegistryClient).download("models:/lm/2").is_dir()
    assert api.error("POST", "model-versions/create", name="lm", source=f"models:/{mid}",
                     model_id="m-0123") == (400, "INVALID_PARAMETER_VALUE")
    assert api.error("POST", "model-versions/create", name="lm",
                     source="models:/m-ffffffffffffffffffffffffffffffff") == (
        404, "RESOURCE_DOES_NOT_EXIST")


def test_registering_the_same_source_twice_makes_two_versions(api: Api,
                                                              workspace: Workspace) -> None:
    """As MLflow's server: log_model(registered_model_name=...) then register_model of the
    same run's model is two versions (a retry cannot be told from it on the wire)."""
    exp_id, run_id, path = ratchet_model_run(workspace)
    fields = {"name": "churn", "source": artifact_source(exp_id, run_id, path),
              "run_id": run_id}
    first = api.ok("POST", "model-versions/create", **fields)["model_version"]
    again = api.ok("POST", "model-versions/create", **fields)["model_version"]
    assert (first["version"], again["version"]) == ("1", "2")
    versions = workspace.stores.registry.list_model_versions("churn")
    assert versions[0].content_hash == versions[1].content_hash


@pytest.mark.parametrize("source", [
    "s3://bucket/model", "file:///etc", "/etc/passwd", "models:/other/1",
    "http://evil.example/model", "mlflow-artifacts://evil.example/0/abc/artifacts/model",
    "mlflow-artifacts:/0/abc/artifacts/../../etc", "mlflow-artifacts:/0/abc/artifacts//x",
    "mlflow-artifacts:/0/abc/artifacts", "runs:/../etc/model", "runs:/abc/..%2fx",
    "runs:/abc", "dbfs:/model", "",
])
def test_hostile_and_foreign_sources_are_refused(api: Api, workspace: Workspace,
                                                 source: str) -> None:
    ratchet_model_run(workspace)
    status, code = api.error("POST", "model-versions/create", name="churn", source=source)
    assert (status, code) in {(400, "INVALID_PARAMETER_VALUE"),
                              (404, "RESOURCE_DOES_NOT_EXIST")}
    assert not workspace.stores.registry.list_registered_models()


def test_source_must_match_run_and_hold_a_model(api: Api, workspace: Workspace) -> None:
    exp_id, run_id, path = ratchet_model_run(workspace)
    _, other_run, _ = ratchet_model_run(workspace)
    source = artifact_source(exp_id, run_id, path)
    assert api.error("POST", "model-versions/create", name="m", source=source,
                     run_id=other_run) == (400, "INVALID_PARAMETER_VALUE")
    # the right run in the wrong experiment
    assert api.error("POST", "model-versions/create", name="m",
                     source=artifact_source("0", run_id, path)) == (
        400, "INVALID_PARAMETER_VALUE")
    assert api.error("POST", "model-versions/create", name="m",
                     source=artifact_source(exp_id, "f" * 32, path)) == (
        404, "RESOURCE_DOES_NOT_EXIST")
    assert api.error("POST", "model-versions/create", name="m",
                     source=artifact_source(exp_id, run_id, "nothing-here")) == (
        400, "INVALID_PARAMETER_VALUE")
    # files that are no model
    data = b"just data"
    blob = workspace.blobs.put_bytes(data)
    workspace.stores.tracking.record_artifacts(
        run_id, [ArtifactEntry("data/x.csv", blob.digest, blob.size)])
    assert api.error("POST", "model-versions/create", name="m",
                     source=f"runs:/{run_id}/data") == (400, "INVALID_PARAMETER_VALUE")


def test_mlflow_format_model_gets_a_ratchet_manifest(api: Api, workspace: Workspace) -> None:
    import pickle

    tracking = workspace.client(TrackingClient)
    exp = tracking.create_experiment("mlf")
    run = tracking.create_run(exp.name)
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    mlmodel = ("artifact_path: model\nflavors:\n  python_function:\n    loader_module: "
               "mlflow.sklearn\n    model_path: model.pkl\n    python_version: 3.11.0\n"
               "  sklearn:\n    pickled_model: model.pkl\n    serialization_format: "
               "cloudpickle\n    sklearn_version: 1.9.1\nmlflow_version: 2.22.5\n"
               "model_uuid: 0123456789abcdef\n")
    entries = []
    for name, data in (("MLmodel", mlmodel.encode()), ("model.pkl", pickle.dumps(model))):
        blob = workspace.blobs.put_bytes(data)
        entries.append(ArtifactEntry(f"model/{name}", blob.digest, blob.size))
    workspace.stores.tracking.record_artifacts(run.run_id, entries)
    body = api.ok("POST", "model-versions/create", name="mlf",
                  source=artifact_source(exp.experiment_id, run.run_id, "model"),
                  run_id=run.run_id)
    assert body["model_version"]["version"] == "1"
    paths = {e.path for e in workspace.stores.tracking.list_artifacts(run.run_id)}
    assert "model/ratchet-model.json" in paths
    version = workspace.stores.registry.get_model_version("mlf", 1)
    assert version.flavor == "mlflow" and version.manifest["safe"] is False
    # the recorded hash covers the written manifest: ratchet's download verifies it
    assert workspace.client(RegistryClient).download("models:/mlf/1").is_dir()


def test_version_update_delete_and_tags(api: Api, workspace: Workspace) -> None:
    _, run_id, path = ratchet_model_run(workspace)
    api.ok("POST", "model-versions/create", name="churn", source=f"runs:/{run_id}/{path}")
    updated = api.ok("PATCH", "model-versions/update", name="churn", version="1",
                     description="better")["model_version"]
    assert updated["description"] == "better"
    api.ok("POST", "model-versions/set-tag", name="churn", version="1", key="k", value="v")
    got = api.ok("GET", "model-versions/get", name="churn", version="1")["model_version"]
    assert got["tags"] == [{"key": "k", "value": "v"}]
    assert api.error("POST", "model-versions/set-tag", name="churn", version="1",
                     key=SOURCE_TAG, value="s3://x") == (400, "INVALID_PARAMETER_VALUE")
    api.ok("DELETE", "model-versions/delete-tag", name="churn", version="1", key="k")
    assert workspace.stores.registry.get_model_version("churn", 1).tags.get("k") is None
    assert api.error("DELETE", "model-versions/delete-tag", name="churn", version="1",
                     key=SOURCE_TAG) == (400, "INVALID_PARAMETER_VALUE")
    assert workspace.stores.registry.get_model_version("churn", 1).tags[SOURCE_TAG]
    for bad in ("x", "0", "-1", "1.5", ""):
        assert api.error("GET", "model-versions/get", name="churn", version=bad) == (
            400, "INVALID_PARAMETER_VALUE"), bad
    assert api.error("GET", "model-versions/get", name="churn", version="9") == (
        404, "RESOURCE_DOES_NOT_EXIST")
    assert api.error("GET", "model-versions/get", name="nope", version="1") == (
        404, "RESOURCE_DOES_NOT_EXIST")
    api.ok("DELETE", "model-versions/delete", name="churn", version="1")
    assert api.error("GET", "model-versions/get", name="churn", version="1") == (
        404, "RESOURCE_DOES_NOT_EXIST")


def test_stages_are_none_and_transitions_point_to_aliases(api: Api,
                                                          workspace: Workspace) -> None:
    _, run_id, path = ratchet_model_run(workspace)
    for _ in range(2):
        api.ok("POST", "model-versions/create", name="churn",
               source=f"runs:/{run_id}/{path}", description=str(_))
    latest = api.ok("POST", "registered-models/get-latest-versions", name="churn")
    assert [v["version"] for v in latest["model_versions"]] == ["2"]
    latest = api.ok("POST", "registered-models/get-latest-versions", name="churn",
                    stages=["None"])
    assert [v["version"] for v in latest["model_versions"]] == ["2"]
    assert api.ok("POST", "registered-models/get-latest-versions", name="churn",
                  stages=["Production"]) == {}
    assert api.error("POST", "registered-models/get-latest-versions", name="churn",
                     stages=["Bogus"]) == (400, "INVALID_PARAMETER_VALUE")
    status, body = api.call("POST", "model-versions/transition-stage", name="churn",
                            version="1", stage="Production")
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert "alias" in body["message"]


# ---------------------------------------------------------------- aliases
def test_aliases_both_directions(api: Api, workspace: Workspace) -> None:
    _, run_id, path = ratchet_model_run(workspace)
    for _ in range(2):
        api.ok("POST", "model-versions/create", name="churn",
               source=f"runs:/{run_id}/{path}", description=str(_))
    api.ok("POST", "registered-models/alias", name="churn", alias="champion", version="1")
    registry = workspace.client(RegistryClient)
    assert registry.store.resolve_alias("churn", "champion") == 1
    event = registry.alias_history("churn", "champion")[-1]
    assert event.to_version == 1 and event.reason == "via MLflow API" and event.actor
    # ratchet moves it; MLflow sees the move
    registry.set_alias("churn", "champion", 2)
    by_alias = api.ok("GET", "registered-models/alias", name="churn", alias="champion")
    assert by_alias["model_version"]["version"] == "2"
    assert by_alias["model_version"]["aliases"] == ["champion"]
    model = api.ok("GET", "registered-models/get", name="churn")["registered_model"]
    assert model["aliases"] == [{"alias": "champion", "version": "2"}]
    assert api.error("POST", "registered-models/alias", name="churn", alias="x",
                     version="7") == (404, "RESOURCE_DOES_NOT_EXIST")
    assert api.error("POST", "registered-models/alias", name="churn", alias="latest",
                     version="1") == (400, "INVALID_PARAMETER_VALUE")
    # as MLflow's server: a missing alias is INVALID_PARAMETER_VALUE, @latest the newest
    assert api.error("GET", "registered-models/alias", name="churn", alias="nope") == (
        400, "INVALID_PARAMETER_VALUE")
    assert api.error("GET", "registered-models/alias", name="nope", alias="x") == (
        404, "RESOURCE_DOES_NOT_EXIST")
    latest = api.ok("GET", "registered-models/alias", name="churn", alias="latest")
    assert latest["model_version"]["version"] == "2"
    assert api.error("POST", "registered-models/alias", name="churn", alias="v1",
                     version="1") == (400, "INVALID_PARAMETER_VALUE")
    # ratchet refuses to delete what an alias points at; MLflow's caller is told how
    status, body = api.call("DELETE", "model-versions/delete", name="churn", version="2")
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert "delete_registered_model_alias" in body["message"]
    status, body = api.call("DELETE", "registered-models/delete", name="churn")
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    api.ok("DELETE", "registered-models/alias", name="churn", alias="champion")
    assert "champion" not in workspace.stores.registry.get_registered_model("churn").aliases
    api.ok("DELETE", "registered-models/alias", name="churn", alias="champion")  # no-op
    assert api.error("DELETE", "registered-models/alias", name="nope", alias="x") == (
        404, "RESOURCE_DOES_NOT_EXIST")


# ---------------------------------------------------------------- search
def test_search_registered_models_filter_order_and_pages(api: Api) -> None:
    for name, team in (("churn-a", "risk"), ("churn-b", "growth"), ("fraud", "risk")):
        api.ok("POST", "registered-models/create", name=name,
               tags=[{"key": "team", "value": team}])

    def names(**fields: Any) -> list[str]:
        body = api.ok("GET", "registered-models/search", **fields)
        return [m["name"] for m in body.get("registered_models", [])]

    assert names() == ["churn-a", "churn-b", "fraud"]
    assert names(filter="name LIKE 'churn%'") == ["churn-a", "churn-b"]
    assert names(filter="name ILIKE '%FRAUD'") == ["fraud"]
    assert names(filter="name = 'fraud'") == ["fraud"]
    assert names(filter="tags.team = 'risk'") == ["churn-a", "fraud"]
    assert names(filter="tags.`team` = 'risk' AND name != 'fraud'") == ["churn-a"]
    # what MLflow's clients add to every search: models without the tag are no prompts
    assert names(filter="name LIKE 'churn%' AND tag.`mlflow.prompt.is_prompt` != 'true'"
                 ) == ["churn-a", "churn-b"]
    assert names(filter="tags.`mlflow.prompt.is_prompt` = 'true'") == []
    assert names(order_by="name DESC") == ["fraud", "churn-b", "churn-a"]
    assert names(order_by="timestamp DESC")[0] == "fraud"
    first = api.ok("GET", "registered-models/search", max_results=2)
    assert [m["name"] for m in first["registered_models"]] == ["churn-a", "churn-b"]
    rest = api.ok("GET", "registered-models/search", max_results=2,
                  page_token=first["next_page_token"])
    assert [m["name"] for m in rest["registered_models"]] == ["fraud"]
    assert "next_page_token" not in rest
    for bad in ({"filter": "bogus = 'x'"}, {"filter": "name LIKE"},
                {"filter": "name = 'x' OR name = 'y'"}, {"order_by": "size"},
                {"max_results": 0}, {"max_results": 1001}, {"page_token": "garbage!"},
                {"page_token": first["next_page_token"], "filter": "name = 'fraud'"}):
        assert api.error("GET", "registered-models/search", **bad) == (
            400, "INVALID_PARAMETER_VALUE"), bad


def test_search_model_versions(api: Api, workspace: Workspace) -> None:
    exp_id, run_a, path = ratchet_model_run(workspace)
    _, run_b, _ = ratchet_model_run(workspace)
    api.ok("POST", "model-versions/create", name="churn", source=f"runs:/{run_a}/{path}")
    api.ok("POST", "model-versions/create", name="churn", source=f"runs:/{run_b}/{path}")
    api.ok("POST", "model-versions/create", name="fraud",
           source=artifact_source(exp_id, run_a, path), tags=[{"key": "k", "value": "v"}])

    def found(**fields: Any) -> list[tuple[str, str]]:
        body = api.ok("GET", "model-versions/search", **fields)
        return [(v["name"], v["version"]) for v in body.get("model_versions", [])]

    assert found(filter="name='churn'", order_by="version_number DESC") == [
        ("churn", "2"), ("churn", "1")]
    assert sorted(found(filter=f"run_id = '{run_a}'")) == [("churn", "1"), ("fraud", "1")]
    assert sorted(found(filter=f"run_id IN ('{run_b}', 'zzz')")) == [("churn", "2")]
    assert found(filter="tags.k = 'v'") == [("fraud", "1")]
    assert found(filter=f"source_path = 'runs:/{run_b}/{path}'") == [("churn", "2")]
    assert found(filter="name = 'churn' AND version_number >= 2") == [("churn", "2")]
    assert found(filter="name = 'nope'") == []
    assert found(filter=f"tags.{SOURCE_TAG} LIKE '%'") == []  # hidden tags stay hidden
    page = api.ok("GET", "model-versions/search", max_results=1,
                  order_by=["name ASC", "version_number ASC"])
    assert [(v["name"], v["version"]) for v in page["model_versions"]] == [("churn", "1")]
    assert api.error("GET", "model-versions/search", filter="version_number > 'x'") == (
        400, "INVALID_PARAMETER_VALUE")


def test_filter_parser_and_like() -> None:
    terms = parse_filter("name LIKE 'a\\'b%' and tags.\"my key\" != \"v\"",
                         {"name": "string"})
    assert [(t.kind, t.key, t.op, t.value) for t in terms] == [
        ("attribute", "name", "LIKE", "a'b%"), ("tag", "my key", "!=", "v")]
    assert like("a_c%", "abcdef", ignore_case=False)
    assert not like("a_c", "ABC", ignore_case=False) and like("a_c", "ABC", ignore_case=True)
    assert like("50.%", "50.5", ignore_case=False) and not like("50.%", "5005",
                                                                ignore_case=False)
    with pytest.raises(MlflowError):
        parse_order_by(["name", "name DESC"], {"name": "name"}, default=[])


# ---------------------------------------------------------------- permissions
@pytest.fixture
def secured(workspace: Workspace) -> dict[str, Api]:
    auth = workspace.stores.auth
    for user, role in (("ada", "admin"), ("wes", "writer"), ("rita", "reader"),
                       ("kim", "writer")):
        auth.create_user(user, role)
    auth.grant("kim", "model", "secret", "none")
    auth.grant("kim", "experiment", "hidden", "none")
    app = create_app(workspace, ServerOptions(auth=True, allowed_hosts=("testserver",)))
    client = TestClient(app, base_url="http://testserver")
    apis = {user: Api(client, auth.create_token(user).token)
            for user in ("ada", "wes", "rita", "kim")}
    apis["anonymous"] = Api(client)
    return apis


def test_permissions(secured: dict[str, Api], workspace: Workspace) -> None:
    ada, wes, rita, kim = (secured[u] for u in ("ada", "wes", "rita", "kim"))
    assert secured["anonymous"].error("GET", "registered-models/search") == (
        401, "UNAUTHENTICATED")
    ada.ok("POST", "registered-models/create", name="secret")
    ada.ok("POST", "registered-models/create", name="open")
    assert rita.error("POST", "registered-models/create", name="x") == (
        403, "PERMISSION_DENIED")
    assert rita.ok("GET", "registered-models/get", name="open")
    assert kim.error("GET", "registered-models/get", name="secret") == (
        403, "PERMISSION_DENIED")
    assert kim.error("POST", "registered-models/alias", name="secret", alias="a",
                     version="1") == (403, "PERMISSION_DENIED")
    listed = kim.ok("GET", "registered-models/search")["registered_models"]
    assert [m["name"] for m in listed] == ["open"]  # the secret one is not even listed
    _, run_id, path = ratchet_model_run(workspace, "hidden")
    # kim may write models but not read the experiment holding the files
    assert kim.error("POST", "model-versions/create", name="open",
                     source=f"runs:/{run_id}/{path}") == (403, "PERMISSION_DENIED")
    created = wes.ok("POST", "model-versions/create", name="open",
                     source=f"runs:/{run_id}/{path}")["model_version"]
    assert created["user_id"] == "wes"
    wes.ok("POST", "registered-models/alias", name="open", alias="prod", version="1")
    assert workspace.stores.registry.alias_history("open", "prod")[-1].actor == "wes"
    audited = [(e.actor, e.action, e.resource) for e in workspace.stores.audit.list_events()
               if e.action.startswith("mlflow.")]
    assert ("wes", "mlflow.create_model_version", "open") in audited
    assert ("wes", "mlflow.set_alias", "open") in audited
    assert ("ada", "mlflow.create_registered_model", "secret") in audited
    assert rita.error("DELETE", "model-versions/delete", name="open", version="1") == (
        403, "PERMISSION_DENIED")


def test_every_registry_route_declares_and_refuses_anonymous(workspace: Workspace) -> None:
    app = create_app(workspace, ServerOptions(auth=True, allowed_hosts=("testserver",)))
    client = TestClient(app, base_url="http://testserver")
    routes = [(m, path) for path, route in routes_of(app.app_routes)
              for m in route.methods
              if path.startswith((f"{API}/registered-models/", f"{API}/model-versions/"))]
    assert len(routes) == 21
    for method, path in routes:
        response = client.request(method, path, json=None if method == "GET" else {})
        assert response.status_code == 401, (method, path)
        assert response.json()["error_code"] == "UNAUTHENTICATED"

