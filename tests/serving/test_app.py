"""The HTTP server in-process (FastAPI's TestClient): formats, validation, plans, metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.serving import create_app
from ratchet.serving.app import ServingConfig
from ratchet.serving.deployments import DeploymentClient
from ratchet.serving.request_validation import ValidationPolicy
from ratchet.serving.traffic_plan import TrafficPlan
from ratchet.workspace import Workspace
from tests.serving.conftest import ROW, wait_until

FAST = ServingConfig(poll_interval_s=0.05, log_flush_interval_s=0.1, startup_wait_s=10)


def _client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        yield client


@pytest.fixture
def client(churn_registry: RegistryClient, serving_settings: Settings) -> Iterator[TestClient]:
    yield from _client(create_app("churn@champion", workspace=Workspace(serving_settings), config=FAST))


def test_predict_answers_with_model_version_and_request_id(client: TestClient) -> None:
    r = client.post("/predict", json={"inputs": [ROW, {**ROW, "age": 20}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "churn" and body["model_version"] == 1
    assert len(body["predictions"]) == 2 and set(body["predictions"]) <= {0, 1}
    assert body["classes"] == [0, 1]
    assert all(abs(sum(p) - 1) < 1e-9 for p in body["probabilities"])
    assert r.headers["x-model-version"] == "1" and r.headers["x-request-id"] == body["request_id"]
    # Columnar form gives the same answers; a client-chosen request id is kept.
    columns = {k: [ROW[k], 20 if k == "age" else ROW[k]] for k in ROW}
    r2 = client.post("/predict", json={"inputs": columns}, headers={"X-Request-ID": "req-1"})
    assert r2.json()["predictions"] == body["predictions"]
    assert r2.json()["request_id"] == "req-1"


def test_mlflow_formats_agree(client: TestClient) -> None:
    records = [ROW, {**ROW, "plan": "basic"}]
    expected = client.post("/predict", json={"inputs": records}).json()["predictions"]
    names = ["age", "income", "plan"]
    bodies = [
        {"dataframe_split": {"columns": names, "data": [[r[n] for n in names] for r in records]}},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {n: [r[n] for r in records] for n in names}},
        {"instances": [[r[n] for n in names] for r in records]},
    ]
    for body in bodies:
        r = client.post("/invocations", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == {"predictions": expected}
    csv = "age,income,plan\n52,61.5,pro\n52,61.5,basic\n"
    r = client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
    assert r.json() == {"predictions": expected}
    r = client.post("/invocations", json={"instances": records, "inputs": records})
    assert r.status_code == 422 and "exactly one of" in r.json()["error"]


def test_open_inference_protocol(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json()["ready"] is True
    meta = client.get("/v2/models/churn").json()
    assert meta["name"] == "churn" and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == ["age", "income", "plan"]
    assert client.get("/v2/models/churn/ready").json()["ready"] is True
    tensors = [
        {"name": "age", "shape": [2], "datatype": "INT64", "data": [52, 52]},
        {"name": "income", "shape": [2, 1], "datatype": "FP64", "data": [[61.5], [61.5]]},
        {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["pro", "basic"]},
    ]
    r = client.post("/v2/models/churn/infer",
                    json={"id": "abc", "inputs": tensors, "binary_data_output": False})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "abc" and body["model_name"] == "churn" and body["model_version"] == "1"
    prediction, proba = body["outputs"]
    expected = client.post("/predict", json={"inputs": [ROW, {**ROW, "plan": "basic"}]}).json()
    assert prediction["data"] == expected["predictions"] and prediction["shape"] == [2]
    assert proba["shape"] == [2, 2]
    assert client.get("/v2/models/nope").status_code == 404
    assert client.post("/v2/models/nope/infer", json={"inputs": tensors}).status_code == 404
    bad = client.post("/v2/models/churn/infer", json={"inputs": [
        {"name": "age", "shape": [3], "datatype": "INT64", "data": [1, 2]}]})
    assert bad.status_code == 422 and "shape [3] needs 3 values" in bad.json()["error"]


@pytest.mark.parametrize("body, field, kind", [
    ({"inputs": [{"income": 50.0, "plan": "pro"}]}, "age", "missing"),
    ({"inputs": [{**ROW, "tenure": 3}]}, "tenure", "extra"),
    ({"inputs": [{**ROW, "age": "fifty"}]}, "age", "type"),
    ({"inputs": [{**ROW, "age": 52.5}]}, "age", "type"),
    ({"inputs": [{**ROW, "income": None}]}, "income", "null"),
    ({"inputs": [{**ROW, "plan": "gold"}]}, "plan", "unknown_category"),
    ({"inputs": [{**ROW, "plan": 7.5}]}, "plan", "type"),
])
def test_bad_rows_get_422_naming_field_and_row(client: TestClient, body: dict[str, Any],
                                                field: str, kind: str) -> None:
    r = client.post("/predict", json={"inputs": [ROW] + body["inputs"]})
    assert r.status_code == 422, r.text
    problems = r.json()["detail"]
    assert [p["type"] for p in problems] == [kind]
    assert problems[0]["loc"][-1] == field
    if kind not in ("missing", "extra"):
        assert problems[0]["loc"] == ["body", "inputs", 1, field]
        assert "row 1" in problems[0]["msg"]
    assert r.json()["request_id"]


def test_malformed_bodies_are_422_or_413_never_500(client: TestClient) -> None:
    for content in (b"", b"{", b"[]", b'{"inputs": 3}', b'{"inputs": []}', b'{"rows": []}',
                    b'{"inputs": [1, 2]}', b'{"inputs": [{"age": 1}, 5]}', b'"x"', b"\xff\xfe"):
        r = client.post("/predict", content=content, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (content, r.status_code, r.text)
        assert r.json()["error"]
    too_many = {"inputs": {k: [v] * 10_001 for k, v in ROW.items()}}
    assert client.post("/predict", json=too_many).status_code == 413


def test_body_size_limit(churn_registry: RegistryClient, serving_settings: Settings) -> None:
    config = ServingConfig(max_body_bytes=200, poll_interval_s=0.05)
    for client in _client(create_app("churn@champion", workspace=Workspace(serving_settings),
                                     config=config)):
        assert client.post("/predict", json={"inputs": [ROW]}).status_code == 200
        r = client.post("/predict", json={"inputs": [ROW] * 10})
        assert r.status_code == 413 and "limit is 200" in r.json()["error"]
        # No Content-Length (chunked): refused once the stream passes the limit.
        chunked = client.post("/predict", content=iter([b'{"inputs": [', b" " * 500, b"]}"]),
                              headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413 and "over the limit" in chunked.json()["error"]
        feedback = client.post("/feedback", json={"feedback": [
            {"request_id": "r", "value": 1}] * 20})
        assert feedback.status_code == 413


def test_flag_policy_accepts_and_marks_rows(churn_registry: RegistryClient,
                                            serving_settings: Settings) -> None:
    config = ServingConfig(policy=ValidationPolicy(unknown_category="flag",
                                                   out_of_range="flag"), poll_interval_s=0.05)
    for client in _client(create_app("churn@champion", workspace=Workspace(serving_settings),
                                     config=config)):
        r = client.post("/predict", json={"inputs": [ROW, {**ROW, "plan": "gold", "age": 130}]})
        assert r.status_code == 200, r.text
        assert r.json()["flags"] == [[], ["age:out_of_range", "plan:unknown_category"]]
        text = client.get("/metrics").text
        assert ('ratchet_validation_flags_total{deployment="churn",field="plan",'
                'flag="unknown_category"} 1.0') in text
    from ratchet.serving.prediction_query import predictions

    logged = predictions("churn", workspace=Workspace(serving_settings))  # the shutdown flushed it
    assert [list(f) for f in logged["flags"]] == [[], ["age:out_of_range",
                                                    "plan:unknown_category"]]


def test_plan_changes_and_alias_moves_are_picked_up_without_restart(
        client: TestClient, churn_registry: RegistryClient, serving_settings: Settings) -> None:
    def version() -> int:
        return int(client.post("/predict", json={"inputs": [ROW]}).json()["model_version"])

    assert version() == 1
    churn_registry.set_alias("churn", "champion", 2)
    wait_until(lambda: version() == 2, what="alias move")
    deployments = DeploymentClient(churn_registry.workspace)
    deployments.rollback("churn")
    wait_until(lambda: version() == 1, what="rollback")
    assert deployments.status("churn").plan.to_dict()["model"] == "churn/1"
    deployments.set_plan("churn", TrafficPlan.single("churn/2"), reason="try v2")
    wait_until(lambda: version() == 2, what="plan change")


def test_split_is_sticky_per_key(churn_registry: RegistryClient,
                                 serving_settings: Settings) -> None:
    deployments = DeploymentClient(churn_registry.workspace)
    deployments.create("ab", TrafficPlan.split({"churn/1": 50, "churn/2": 50},
                                               key="customer_id"))
    for client in _client(create_app(deployment="ab", workspace=Workspace(serving_settings), config=FAST)):
        rows = [{**ROW, "customer_id": f"c{i}"} for i in range(40)]
        first = client.post("/predict", json={"inputs": rows}).json()["model_versions"]
        again = client.post("/predict", json={"inputs": rows}).json()["model_versions"]
        assert first == again and set(first) == {1, 2}
        one = client.post("/predict", json={"inputs": [rows[0]]}).json()
        assert one["model_version"] == first[0]


def test_canary_that_raises_is_answered_by_the_primary(churn_registry: RegistryClient,
                                                       serving_settings: Settings) -> None:
    """v3 raises on a plan it never saw; with 100% canary every such request still succeeds."""
    deployments = DeploymentClient(churn_registry.workspace)
    deployments.create("canary", TrafficPlan.canary("churn@champion", "churn/3", 100))
    config = ServingConfig(policy=ValidationPolicy(unknown_category="flag"),
                           poll_interval_s=0.05)
    for client in _client(create_app(deployment="canary", workspace=Workspace(serving_settings),
                                     config=config)):
        assert client.post("/predict", json={"inputs": [ROW]}).json()["model_version"] == 3
        r = client.post("/predict", json={"inputs": [{**ROW, "plan": "gold"}]})
        assert r.status_code == 200 and r.json()["model_version"] == 1
        text = client.get("/metrics").text
        assert ('ratchet_requests_total{deployment="canary",model="churn",status="error",'
                'version="3"} 1.0') in text


def test_shadow_is_logged_never_returned(churn_registry: RegistryClient,
                                         serving_settings: Settings) -> None:
    from ratchet.serving.prediction_query import predictions

    deployments = DeploymentClient(churn_registry.workspace)
    deployments.create("shadowed", TrafficPlan.shadowed("churn@champion", "churn/2"))
    for client in _client(create_app(deployment="shadowed", workspace=Workspace(serving_settings),
                                     config=FAST)):
        for _ in range(5):
            r = client.post("/predict", json={"inputs": [ROW]})
            assert r.json()["model_version"] == 1
    logged = predictions("shadowed", workspace=Workspace(serving_settings))
    assert sorted(logged.groupby("variant").size().to_dict().items()) == [
        ("primary", 5), ("shadow", 5)]
    assert set(logged[logged.variant == "shadow"].model_version) == {2}


def test_every_prediction_is_logged_and_feedback_joins(client: TestClient,
                                                       serving_settings: Settings) -> None:
    from ratchet.serving.prediction_query import predictions

    ids = [client.post("/predict", json={"inputs": [ROW, {**ROW, "age": 20}]}).json()[
        "request_id"] for _ in range(3)]
    r = client.post("/feedback", json={"feedback": [{"request_id": ids[0], "row": 1,
                                                     "value": 1}]})
    assert r.json() == {"recorded": 1}
    assert client.post("/feedback", json={"request_id": ids[1], "value": 0}).status_code == 200
    bad = client.post("/feedback", json={"feedback": [{"request_id": 5, "row": -1}]})
    assert bad.status_code == 422 and len(bad.json()["detail"]) == 3
    client.__exit__(None, None, None)  # shutdown flushes the log
    logged = predictions("churn", workspace=Workspace(serving_settings), with_feedback=True)
    assert len(logged) == 6 and list(logged.request_id.unique()) == ids
    assert {"input.age", "input.plan", "output.prediction", "output.proba_1"} <= set(
        logged.columns)
    labelled = logged.dropna(subset=["feedback"])
    assert sorted(zip(labelled.request_id, labelled.row, labelled.feedback, strict=True)) == \
        sorted([(ids[0], 1, 1), (ids[1], 0, 0)])


def test_metrics_pass_promtool(client: TestClient) -> None:
    client.post("/predict", json={"inputs": [ROW]})
    client.post("/predict", json={"inputs": [{**ROW, "plan": "gold"}]})
    text = client.get("/metrics").text
    for name in ("ratchet_requests_total", "ratchet_request_latency_seconds_bucket",
                 "ratchet_validation_failures_total", "ratchet_predictions_total",
                 "ratchet_inflight_requests", "ratchet_model_load_seconds",
                 "ratchet_model_info"):
        assert name in text, name
    check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_openapi_documents_the_bodies(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/predict", "/invocations", "/feedback", "/v2/models/{name}/infer",
                 "/v2/health/ready", "/health/live", "/metrics"):
        assert path in paths, path
    ref = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = ref["$ref"].rsplit("/", 1)[-1]
    assert "inputs" in spec["components"]["schemas"][name]["properties"]
    # Every $ref resolves.
    text = json.dumps(spec)
    for target in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert target in spec["components"]["schemas"], target


def test_not_ready_until_loaded(churn_registry: RegistryClient,
                                serving_settings: Settings) -> None:
    app = create_app("churn@champion", workspace=Workspace(serving_settings), config=FAST)
    with TestClient(app) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        assert client.get("/health/live").status_code == 200
    # A deployment whose model files vanished answers 503 with the reason, not 500.
    DeploymentClient(churn_registry.workspace).create("ghost", "churn/3")
    shutil.rmtree(Path(serving_settings.artifacts_uri) / "blobs")
    shutil.rmtree(serving_settings.home / "cache", ignore_errors=True)
    # Startup waits for the model only so long, then serves 503 with the reason.
    config = ServingConfig(poll_interval_s=0.05, startup_wait_s=0.5)
    ghost = create_app(deployment="ghost", workspace=Workspace(serving_settings), config=config)
    with TestClient(ghost) as client:
        wait_until(lambda: client.get("/health/ready").json().get("error"), what="error")
        r = client.post("/predict", json={"inputs": [ROW]})
        assert r.status_code == 503 and "not loaded" in r.json()["error"]



def test_no_batching_makes_one_model_call_per_request(churn_registry: RegistryClient,
                                                       serving_settings: Settings) -> None:
    config = ServingConfig(poll_interval_s=0.05, startup_wait_s=10, batching=False)
    app = create_app("churn@champion", workspace=Workspace(serving_settings), config=config)
    for client in _client(app):
        for _ in range(5):
            assert client.post("/predict", json={"inputs": [ROW, ROW]}).status_code == 200
        batcher = app.state.server.batcher
        assert (batcher.calls, batcher.batched, batcher.max_batch_rows) == (5, 0, 1)
