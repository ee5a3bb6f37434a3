"""/feedback through the real app on SQLite and PostgreSQL: malformed bodies are 422 (never
500), feedback is scoped to the deployment and to predictions it logged, wrong labels are
refused per item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ratchet.config import Settings
from ratchet.serving import create_app
from ratchet.serving.app import ServingConfig
from ratchet.workspace import Workspace
from tests.serving.conftest import ROW, register_churn, wait_until

FAST = ServingConfig(poll_interval_s=0.05, log_flush_interval_s=0.1, startup_wait_s=10)


@pytest.fixture
def served(settings: Settings) -> Settings:
    register_churn(settings)
    return settings


def _app(settings: Settings, deployment: str) -> Iterator[TestClient]:
    with TestClient(create_app("churn@champion", deployment=deployment, workspace=Workspace(settings),
                               config=FAST)) as client:
        wait_until(lambda: client.get("/health/ready").status_code == 200, what="ready")
        yield client


def _stored(settings: Settings, deployment: str) -> list[tuple[str, int, Any]]:
    store = Workspace(settings).stores.deployments
    return sorted((f.request_id, f.row, f.value) for f in store.feedback(deployment))


def _predict(client: TestClient, n: int = 1, request_id: str | None = None) -> str:
    headers = {"X-Request-ID": request_id} if request_id else {}
    r = client.post("/predict", json={"inputs": [ROW] * n}, headers=headers)
    assert r.status_code == 200, r.text
    return str(r.json()["request_id"])


def _post(client: TestClient, body: str) -> Any:
    return client.post("/feedback", content=body.encode("utf-8", "surrogatepass"),
                       headers={"Content-Type": "application/json"})


def test_malformed_feedback_is_422_naming_the_item_never_500(served: Settings) -> None:
    for client in _app(served, "churn"):
        rid = _predict(client)
        good = f'{{"request_id": "{rid}", "row": 0, "value": 1}}'
        for item, field in ((f'{{"request_id": "{rid}", "value": Infinity}}', "value"),
                            (f'{{"request_id": "{rid}", "value": -Infinity}}', "value"),
                            (f'{{"request_id": "{rid}", "value": NaN}}', "value"),
                            (f'{{"request_id": "{rid}", "value": 1e400}}', "value"),
                            (f'{{"request_id": "{rid}", "value": 1{"0" * 30}}}', "value"),
                            (f'{{"request_id": "{rid}", "value": "a\\u0000b"}}', "value"),
                            (f'{{"request_id": "{rid}", "value": "\\ud800"}}', "value"),
                            (f'{{"request_id": "{rid}", "value": "{"x" * 1001}"}}', "value"),
                            ('{"request_id": "\\ud800", "value": 1}', "request_id"),
                            ('{"request_id": "a\\u0000", "value": 1}', "request_id"),
                            ('{"request_id": "a/b", "value": 1}', "request_id"),
                            (f'{{"request_id": "{rid}", "row": -1, "value": 1}}', "row")):
            r = _post(client, f'{{"feedback": [{good}, {item}]}}')
            assert r.status_code == 422, (item, r.status_code, r.text)
            assert r.json()["detail"][0]["loc"] == ["body", "feedback", 1, field], r.text
            assert "item 1" in r.json()["error"]
        assert _stored(served, "churn") == []  # a bad body records nothing
        too_many = json.dumps({"feedback": [{"request_id": rid, "value": 1}] * 10_001})
        r = _post(client, too_many)
        assert r.status_code == 413 and "limit is 10000" in r.json()["error"]
        assert client.post("/feedback", json={"feedback": [{"request_id": rid, "value": 1}]
                                              * 10_000}).json() == {"recorded": 1}


def test_one_deployment_cannot_label_anothers_predictions(served: Settings) -> None:
    for a in _app(served, "a"):
        for b in _app(served, "b"):
            ours = _predict(a, n=2)
            # b's client names a's prediction: nothing recorded, not found.
            r = b.post("/feedback", json={"request_id": ours, "row": 1, "value": 1})
            assert r.status_code == 404 and r.json()["detail"][0]["type"] == "unknown"
            assert a.post("/feedback", json={"request_id": ours, "row": 1,
                                             "value": 1}).json() == {"recorded": 1}
            # The same client-chosen id served by both: each labels only its own row.
            _predict(a, request_id="shared-1")
            _predict(b, request_id="shared-1")
            assert a.post("/feedback", json={"request_id": "shared-1", "value": 0}
                          ).status_code == 200
            assert b.post("/feedback", json={"request_id": "shared-1", "value": 1}
                          ).status_code == 200
    assert _stored(served, "a") == [(ours, 1, 1), ("shared-1", 0, 0)]
    assert _stored(served, "b") == [("shared-1", 0, 1)]


def test_unknown_ids_rows_and_labels_are_rejected_per_item(served: Settings) -> None:
    for client in _app(served, "churn"):
        rid = _predict(client, n=2)
        r = client.post("/feedback", json={"feedback": [
            {"request_id": rid, "row": 1, "value": "1"},          # recorded ("1" is class 1)
            {"request_id": "invented-42", "value": 1},              # unknown id
            {"request_id": rid, "row": 2, "value": 0},              # no such row
            {"request_id": rid, "row": 0, "value": "yes"},          # not a class of 0/1
        ]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["recorded"] == 1
        assert [(x["index"], x["reason"]) for x in body["rejected"]] == [
            (1, "unknown"), (2, "unknown"), (3, "label")]
        assert "is not one of the model's classes [0, 1]" in body["rejected"][2]["msg"]
        only_label = client.post("/feedback", json={"request_id": rid, "value": "yes"})
        assert only_label.status_code == 422 and "classes" in only_label.json()["error"]
        metrics = client.get("/metrics").text
        assert 'ratchet_feedback_rejected_total{deployment="churn",reason="unknown"} 2.0' \
            in metrics
        assert 'ratchet_feedback_rejected_total{deployment="churn",reason="label"} 2.0' \
            in metrics
    assert _stored(served, "churn") == [(rid, 1, "1")]


def test_invented_ids_in_bulk_are_not_stored(served: Settings) -> None:
    for client in _app(served, "churn"):
        _predict(client)
        invented = [{"request_id": f"{i:032x}", "value": 1} for i in range(5_000)]
        r = client.post("/feedback", json={"feedback": invented})
        assert r.status_code == 404 and len(r.json()["detail"]) == 5_000
    assert _stored(served, "churn") == []


def test_feedback_for_a_prediction_logged_by_an_earlier_process(served: Settings) -> None:
    """The ids are found in the log files, not only in this process's buffer."""
    for client in _app(served, "churn"):
        rid = _predict(client, n=3)
        custom = _predict(client, request_id="client-chosen-7")
    for client in _app(served, "churn"):  # a new server: its buffer is empty
        r = client.post("/feedback", json={"feedback": [
            {"request_id": rid, "row": 2, "value": 0},
            {"request_id": custom, "row": 0, "value": True},
            {"request_id": rid, "row": 3, "value": 0}]})
        assert r.status_code == 200, r.text
        assert r.json()["recorded"] == 2 and r.json()["rejected"][0]["index"] == 2
    assert _stored(served, "churn") == sorted([("client-chosen-7", 0, True), (rid, 2, 0)])


def test_the_feedback_window_reaches_back_30_days_and_no_further(served: Settings) -> None:
    from ratchet.clock import now_ms
    from ratchet.serving.prediction_log import LoggedRequest, PredictionLog

    day = 86_400_000
    with PredictionLog(served.artifacts_uri, flush_interval_s=3600) as log:
        for rid, age_days in (("ten-days-old", 10), ("forty-days-old", 40)):
            assert log.record(LoggedRequest(
                rid, now_ms() - age_days * day, "churn", "churn", 1, "primary", 1.0,
                {"age": [30]}, {"prediction": [1]}))
    for client in _app(served, "churn"):
        r = client.post("/feedback", json={"feedback": [
            {"request_id": "forty-days-old", "value": 1},
            {"request_id": "ten-days-old", "value": 0}]})
        assert r.status_code == 200, r.text
        assert r.json()["rejected"][0]["index"] == 0
        assert "in the last 30 days" in r.json()["rejected"][0]["msg"]
    assert _stored(served, "churn") == [("ten-days-old", 0, 0)]


def test_feedback_right_after_a_prediction_another_worker_answered(
        tmp_path: Path) -> None:
    """``ratchet serve --workers 2``: each request on a new connection, so both workers
    answer; feedback posted at once may land on the sibling, whose log is still in memory."""
    import httpx

    from tests.serving.conftest import running_server

    home = tmp_path / "home"
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                        artifacts_uri=str(home / "artifacts"))
    register_churn(settings)
    with running_server(settings, tmp_path, "churn@champion", "--workers", "2",
                        "--log-flush", "0.5") as url:
        statuses = []
        for i in range(12):
            with httpx.Client(base_url=url, timeout=30) as http:
                assert http.post("/predict", json={"inputs": [ROW]},
                                 headers={"X-Request-ID": f"w{i}"}).status_code == 200
            with httpx.Client(base_url=url, timeout=30) as http:
                r = http.post("/feedback", json={"request_id": f"w{i}", "value": i % 2})
                statuses.append((r.status_code, r.text))
    assert all(status == 200 for status, _ in statuses), statuses
    assert _stored(settings, "churn") == sorted((f"w{i}", 0, i % 2) for i in range(12))


def test_feedback_accepts_exactly_the_request_ids_the_server_accepts() -> None:
    from ratchet.serving.feedback import REQUEST_ID
    from ratchet.serving.routes.answering import REQUEST_ID as SERVER_REQUEST_ID

    assert REQUEST_ID.pattern == SERVER_REQUEST_ID.pattern


def test_the_deployment_client_records_feedback_by_the_same_rules(served: Settings) -> None:
    """``DeploymentClient.record_feedback`` (what /feedback calls) from Python: items the
    deployment logged are recorded, the others rejected as unknown, labels checked against
    the classes given; a body of unknown items only is refused as not found (404)."""
    from ratchet.clock import now_ms
    from ratchet.serving import DeploymentClient
    from ratchet.serving.prediction_log import LoggedRequest, PredictionLog

    workspace = Workspace(served)
    client = DeploymentClient(workspace)
    client.create("churn", "churn@champion")
    with PredictionLog(served.artifacts_uri, flush_interval_s=3600) as log:
        assert log.record(LoggedRequest("logged-1", now_ms(), "churn", "churn", 1, "primary",
                                        1.0, {"age": [30, 31]}, {"prediction": [1, 0]}))
        # Still in the buffer: found through ``live_log`` (a running server's log).
        outcome = client.record_feedback("churn", {"feedback": [
            {"request_id": "logged-1", "row": 0, "value": 1},
            {"request_id": "logged-1", "row": 1, "value": "maybe"},
            {"request_id": "never-logged", "value": 0}]}, classes=[0, 1], live_log=log)
    assert outcome.recorded == 1
    assert [(r["index"], r["reason"]) for r in outcome.rejected] == [(1, "label"),
                                                                     (2, "unknown")]
    assert outcome.status_and_body()[0] == 200
    # Flushed now: read from the log files; without classes no label is checked.
    again = client.record_feedback("churn", {"request_id": "logged-1", "row": 1,
                                             "value": "maybe"})
    assert (again.recorded, again.rejected) == (1, [])
    unknown = client.record_feedback("churn", {"request_id": "never-logged", "value": 0})
    status, body = unknown.status_and_body()
    assert status == 404 and body["detail"][0]["type"] == "unknown"
    assert _stored(served, "churn") == [("logged-1", 0, 1), ("logged-1", 1, "maybe")]


def test_a_second_look_replaces_only_the_unknown_items() -> None:
    """Several workers: items unknown at first are looked up once more; the outcome keeps
    the first look's other verdicts and takes the second look's for those."""
    from ratchet.serving.feedback import FeedbackOutcome

    first = FeedbackOutcome(1, [{"index": 1, "reason": "label", "msg": "a"},
                                {"index": 2, "reason": "unknown", "msg": "b"},
                                {"index": 3, "reason": "unknown", "msg": "c"}])
    assert first.unknown == {2, 3}
    merged = first.merged(FeedbackOutcome(1, [{"index": 3, "reason": "unknown",
                                               "msg": "c"}]))
    assert merged.recorded == 2
    assert [(r["index"], r["reason"]) for r in merged.rejected] == [(1, "label"),
                                                                    (3, "unknown")]
    nothing = FeedbackOutcome(0, first.rejected)
    assert nothing.status_and_body()[0] == 422  # a wrong label among them: invalid
    assert FeedbackOutcome(0, first.rejected[1:]).status_and_body()[0] == 404
