"""MLflow 3's logged models over a real app: create, get, finalize, search (filter, order,
pages), tags, params, artifact listing, run outputs, deletion, permissions; and the
filter grammar as pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ratchet.errors import RatchetError
from ratchet.server.app import ServerOptions, create_app
from ratchet.server.mlflow.logged_model_routes import matches, parse_filter, sort_models
from ratchet.store.logged_model_store import LoggedModel, LoggedModelMetric
from ratchet.workspace import Workspace

API = "/api/2.0/mlflow"
LM = f"{API}/logged-models"


class Site:
    def __init__(self, ws: Workspace, client: TestClient, tokens: dict[str, str]) -> None:
        self.ws, self.client, self.tokens = ws, client, tokens
        tracking = ws.stores.tracking
        self.exp = tracking.create_experiment("open").experiment_id
        self.secret = tracking.create_experiment("secret").experiment_id
        self.run = tracking.create_run(self.exp).run_id

    def call(self, method: str, path: str, body: Any = None, who: str | None = "wendy",
             **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.request(method, path, json=body, headers=headers, **kw)

    def create(self, body: dict[str, Any], who: str = "wendy") -> dict[str, Any]:
        answer = self.call("POST", LM, {"experiment_id": self.exp, **body}, who)
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["model"])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    ws = Workspace.at(tmp_path / "home")
    auth = ws.stores.auth
    auth.create_user("wendy", "writer")
    auth.create_user("rita", "reader")
    tokens = {name: auth.create_token(name).token for name in ("wendy", "rita")}
    app = create_app(ws, ServerOptions(host="127.0.0.1", auth=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        site = Site(ws, client, tokens)
        auth.grant("rita", "experiment", "secret", "none")
        yield site


def _code(answer: Any) -> str:
    return str(answer.json()["error_code"])


def test_create_get_finalize_in_mlflows_shape(site: Site) -> None:
    model = site.create({"name": "clf", "model_type": "sklearn", "source_run_id": site.run,
                         "params": [{"key": "alpha", "value": "0.5"}],
                         "tags": [{"key": "team", "value": "a"}]})
    info = model["info"]
    model_id = info["model_id"]
    assert model_id.startswith("m-") and len(model_id) == 34
    assert info["status"] == "LOGGED_MODEL_PENDING" and info["name"] == "clf"
    assert info["artifact_uri"] == f"mlflow-artifacts:/{site.exp}/models/{model_id}/artifacts"
    assert info["source_run_id"] == site.run and info["experiment_id"] == site.exp
    assert info["tags"] == [{"key": "team", "value": "a"}]
    assert "status_message" not in info  # proto3: empty fields are left out
    assert model["data"] == {"params": [{"key": "alpha", "value": "0.5"}]}
    stored = site.ws.stores.logged_models.get(model_id)
    assert stored.artifact_run_id == site.run and stored.artifact_path == f"models/{model_id}"

    got = site.call("GET", f"{LM}/{model_id}", who="rita").json()["model"]
    assert got == model
    ready = site.call("PATCH", f"{LM}/{model_id}",
                      {"model_id": model_id, "status": "LOGGED_MODEL_READY"})
    assert ready.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    failed = site.call("PATCH", f"{LM}/{model_id}", {"model_id": model_id, "status": 3})
    assert failed.json()["model"]["info"]["status"] == "LOGGED_MODEL_UPLOAD_FAILED"
    bad = site.call("PATCH", f"{LM}/{model_id}", {"status": "DONE"})
    assert bad.status_code == 400 and _code(bad) == "INVALID_PARAMETER_VALUE"


def test_a_model_without_a_run_gets_a_holder_run_in_its_experiment(site: Site) -> None:
    model = site.create({"name": "standalone"})
    model_id = model["info"]["model_id"]
    assert "source_run_id" not in model["info"]
    holder = site.ws.stores.logged_models.get(model_id).artifact_run_id
    run = site.ws.stores.tracking.get_run(holder)
    assert run.experiment_id == site.exp and run.name == "standalone"
    unnamed = site.create({})
    assert unnamed["info"]["name"].startswith("model-")


def test_create_errors(site: Site) -> None:
    missing = site.call("POST", LM, {"name": "x"})
    assert missing.status_code == 400 and _code(missing) == "INVALID_PARAMETER_VALUE"
    nowhere = site.call("POST", LM, {"experiment_id": "9" * 32})
    assert nowhere.status_code == 404 and _code(nowhere) == "RESOURCE_DOES_NOT_EXIST"
    no_run = site.call("POST", LM, {"experiment_id": site.exp, "source_run_id": "0" * 32})
    assert no_run.status_code == 404
    bad_tags = site.call("POST", LM, {"experiment_id": site.exp, "tags": [{"value": "v"}]})
    assert bad_tags.status_code == 400
    bad_key = site.call("POST", LM, {"experiment_id": site.exp,
                                     "params": [{"key": "../x", "value": "v"}]})
    assert bad_key.status_code == 400 and _code(bad_key) == "INVALID_PARAMETER_VALUE"
    not_json = site.client.post(LM, content=b"{", headers={
        "Authorization": f"Bearer {site.tokens['wendy']}", "Content-Type": "application/json"})
    assert not_json.status_code == 400 and _code(not_json) == "INVALID_PARAMETER_VALUE"


def test_tags_params_and_delete(site: Site) -> None:
    model_id = site.create({"name": "m"})["info"]["model_id"]
    assert site.call("PATCH", f"{LM}/{model_id}/tags",
                     {"tags": [{"key": "k", "value": "v"}, {"key": "a/b", "value": "1"}]}
                     ).status_code == 200
    assert site.call("DELETE", f"{LM}/{model_id}/tags/a/b").status_code == 200
    gone = site.call("DELETE", f"{LM}/{model_id}/tags/a/b")
    assert gone.status_code == 404 and _code(gone) == "RESOURCE_DOES_NOT_EXIST"
    params = {"model_id": model_id, "params": [{"key": "p", "value": "1"}]}
    assert site.call("POST", f"{LM}/{model_id}/params", params).status_code == 200
    assert site.call("POST", f"{LM}/{model_id}/params", params).status_code == 200  # retry
    changed = site.call("POST", f"{LM}/{model_id}/params",
                        {"params": [{"key": "p", "value": "2"}]})
    assert changed.status_code == 400 and _code(changed) == "INVALID_PARAMETER_VALUE"
    data = site.call("GET", f"{LM}/{model_id}").json()["model"]
    assert data["info"]["tags"] == [{"key": "k", "value": "v"}]
    assert data["data"]["params"] == [{"key": "p", "value": "1"}]

    assert site.call("DELETE", f"{LM}/{model_id}").status_code == 200
    after = site.call("GET", f"{LM}/{model_id}")
    assert after.status_code == 404 and _code(after) == "RESOURCE_DOES_NOT_EXIST"
    assert site.call("GET", f"{LM}/{model_id}", params={"allow_deleted": "true"}
                     ).status_code == 200
    unknown = site.call("GET", f"{LM}/m-{'0' * 32}")
    assert unknown.status_code == 404
    hostile = site.call("GET", f"{LM}/..%2F..%2Fetc")
    assert hostile.status_code == 404


def test_search_filters_orders_and_pages(site: Site) -> None:
    ids = {}
    for name, alpha, kind in (("a", "0.1", "sklearn"), ("b", "0.2", "torch"),
                              ("c", "0.3", "sklearn")):
        ids[name] = site.create({"name": name, "model_type": kind,
                                 "params": [{"key": "alpha", "value": alpha}]})["info"]["model_id"]
    site.call("PATCH", f"{LM}/{ids['b']}", {"status": "LOGGED_MODEL_READY"})
    site.ws.stores.logged_models.log_metrics(ids["a"], [LoggedModelMetric("acc", 0.9, 0, 1)])
    site.ws.stores.logged_models.log_metrics(ids["c"], [LoggedModelMetric("acc", 0.7, 0, 1)])

    def names(body: dict[str, Any]) -> list[str]:
        answer = site.call("POST", f"{LM}/search", {"experiment_ids": [site.exp], **body},
                           who="rita")
        assert answer.status_code == 200, answer.text
        return [m["info"]["name"] for m in answer.json().get("models", [])]

    assert names({}) == ["c", "b", "a"]  # newest first
    assert names({"filter": "model_type = 'sklearn'"}) == ["c", "a"]
    assert names({"filter": "params.alpha != '0.2' AND name LIKE '%'"}) == ["c", "a"]
    assert names({"filter": "status = 'LOGGED_MODEL_READY'"}) == ["b"]
    assert names({"filter": "metrics.acc > 0.8"}) == ["a"]
    assert names({"filter": "name ILIKE 'B'"}) == ["b"]
    assert names({"filter": f"creation_timestamp > 0 and model_id = '{ids['a']}'"}) == ["a"]
    assert names({"order_by": [{"field_name": "name", "ascending": True}]}) == ["a", "b", "c"]
    assert names({"order_by": [{"field_name": "metrics.acc", "ascending": False}]}) == [
        "a", "c", "b"]  # no value: last
    assert names({"order_by": [{"field_name": "params.alpha", "ascending": False}]}) == [
        "c", "b", "a"]

    first = site.call("POST", f"{LM}/search", {"experiment_ids": [site.exp],
                                                "max_results": 2}).json()
    assert len(first["models"]) == 2 and first["next_page_token"]
    second = site.call("POST", f"{LM}/search", {"experiment_ids": [site.exp], "max_results": 2,
                                                 "page_token": first["next_page_token"]}).json()
    assert [m["info"]["name"] for m in second["models"]] == ["a"]
    assert "next_page_token" not in second
    other = site.call("POST", f"{LM}/search", {"experiment_ids": [site.exp],
                                                "filter": "name = 'a'",
                                                "page_token": first["next_page_token"]})
    assert other.status_code == 400 and "different search" in other.json()["message"]

    for bad in ("name = ", "nosuch = 'x'", "name > 'a'", "metrics.acc = 'x'",
                "name = 'a' OR name = 'b'", "name = 'a' AND", "name == 'a'",
                "params.alpha >= '0.2'"):  # strings compare with = != LIKE ILIKE
        answer = site.call("POST", f"{LM}/search", {"experiment_ids": [site.exp],
                                                     "filter": bad})
        assert answer.status_code == 400 and _code(answer) == "INVALID_PARAMETER_VALUE", bad
    assert site.call("POST", f"{LM}/search", {}).status_code == 400
    assert site.call("POST", f"{LM}/search", {"experiment_ids": [site.exp],
                                               "max_results": 0}).status_code == 400
    assert site.call("POST", f"{LM}/search", {"experiment_ids": ["9" * 32]}).status_code == 404


def test_artifact_directories_and_outputs(site: Site) -> None:
    model = site.create({"name": "m", "source_run_id": site.run})["info"]
    model_id = model["model_id"]
    root = f"/api/2.0/mlflow-artifacts/artifacts/{site.exp}/models/{model_id}/artifacts"
    for path, data in (("MLmodel", b"m"), ("data/model.pkl", b"pk")):
        put = site.client.put(f"{root}/{path}", content=data, headers={
            "Authorization": f"Bearer {site.tokens['wendy']}", "Content-Type": "text/plain"})
        assert put.status_code == 200, put.text
    listed = site.call("GET", f"{LM}/{model_id}/artifacts/directories").json()
    assert listed["root_uri"] == model["artifact_uri"]
    assert listed["files"] == [{"path": "MLmodel", "is_dir": False, "file_size": 1},
                               {"path": "data", "is_dir": True}]
    inner = site.call("GET", f"{LM}/{model_id}/artifacts/directories",
                      params={"artifact_directory_path": "data"}).json()
    assert inner["files"] == [{"path": "model.pkl", "is_dir": False, "file_size": 2}]
    escape = site.call("GET", f"{LM}/{model_id}/artifacts/directories",
                       params={"artifact_directory_path": "../../x"})
    assert escape.status_code == 400
    # The run that holds the model lists its own files, not the model's (as in MLflow 3).
    run_listing = site.call("GET", "/api/2.0/mlflow-artifacts/artifacts",
                            params={"path": f"{site.exp}/{site.run}/artifacts"}).json()
    assert run_listing == {}

    outputs = {"run_id": site.run, "models": [{"model_id": model_id, "step": 3}]}
    assert site.call("POST", f"{API}/runs/outputs", outputs).status_code == 200
    assert site.call("POST", f"{API}/runs/outputs", outputs).status_code == 200  # retry
    assert site.ws.stores.logged_models.outputs_of_run(site.run) == [(model_id, 3)]
    unknown = site.call("POST", f"{API}/runs/outputs",
                        {"run_id": site.run, "models": [{"model_id": f"m-{'1' * 32}"}]})
    assert unknown.status_code == 404 and _code(unknown) == "RESOURCE_DOES_NOT_EXIST"
    no_run = site.call("POST", f"{API}/runs/outputs", {"run_id": "0" * 32, "models": []})
    assert no_run.status_code == 404


def test_permissions(site: Site) -> None:
    secret = site.ws.stores.logged_models.create(site.secret, name="hidden").model_id
    open_model = site.create({"name": "shown"})["info"]["model_id"]
    assert site.call("GET", f"{LM}/{open_model}", who=None).status_code == 401
    assert site.call("GET", f"{LM}/{open_model}", who="rita").status_code == 200
    shut = site.call("GET", f"{LM}/{secret}", who="rita")
    assert shut.status_code == 403 and _code(shut) == "PERMISSION_DENIED"
    for method, path, body in (("POST", LM, {"experiment_id": site.exp}),
                               ("PATCH", f"{LM}/{open_model}", {"status": 2}),
                               ("PATCH", f"{LM}/{open_model}/tags", {"tags": []}),
                               ("POST", f"{LM}/{open_model}/params", {"params": []}),
                               ("DELETE", f"{LM}/{open_model}", None),
                               ("POST", f"{API}/runs/outputs", {"run_id": site.run})):
        denied = site.call(method, path, body, who="rita")
        assert denied.status_code == 403 and _code(denied) == "PERMISSION_DENIED", path
    search = site.call("POST", f"{LM}/search", {"experiment_ids": [site.secret]}, who="rita")
    assert search.status_code == 403
    listing = site.call("GET", f"{LM}/{secret}/artifacts/directories", who="rita")
    assert listing.status_code == 403


# -- the filter grammar, pure ------------------------------------------------------------


def _model(name: str, created: int, **kw: Any) -> LoggedModel:
    base: dict[str, Any] = {
        "model_id": f"m-{name}", "experiment_id": "1", "name": name, "artifact_run_id": "r",
        "artifact_path": f"models/m-{name}", "source_run_id": None, "status": "ready",
        "status_message": None, "model_type": None, "created_at": created,
        "updated_at": created}
    return LoggedModel(**{**base, **kw})


def test_filter_grammar() -> None:
    clauses = parse_filter("tags.`a b` = 'x' AND `params`.p LIKE 'v%' and metrics.m <= 2")
    assert [(c.kind, c.key, c.op, c.value) for c in clauses] == [
        ("tags", "a b", "=", "x"), ("params", "p", "LIKE", "v%"), ("metrics", "m", "<=", 2.0)]
    assert parse_filter("") == [] and parse_filter(None) == []
    assert parse_filter("status = 'READY'")[0].value == "ready"
    with pytest.raises(RatchetError):
        parse_filter("name = 'a' name = 'b'")
    nan = _model("n", 1, metrics=(LoggedModelMetric("m", math.nan, 0, 0),))
    assert not matches(nan, parse_filter("metrics.m < 5"))
    pct = _model("x", 1, params={"p": "a_b"})
    assert matches(pct, parse_filter("params.p LIKE 'a_b'"))
    assert not matches(pct, parse_filter("params.p LIKE 'A%'"))
    assert matches(pct, parse_filter("params.p ILIKE 'A%'"))
    assert matches(_model("y", 1, params={"p": "a[b"}), parse_filter("params.p LIKE 'a[b'"))
    ordered = sort_models([_model("a", 1), _model("b", 2), _model("c", 2)],
                          [{"field_name": "creation_timestamp", "ascending": True}])
    assert [m.name for m in ordered] == ["a", "b", "c"]  # ties: by id
    with pytest.raises(RatchetError):
        sort_models([], [{"field_name": "nosuch"}])
