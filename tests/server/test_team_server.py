"""The team server as a whole: default deny on every route, the API fuzzed from its own
OpenAPI schema, idempotent retries, the real actor, per-resource grants, batched metrics,
and two server processes sharing one PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ratchet.errors import AlreadyExists, Forbidden, NotFound
from ratchet.remote.http_stores import HttpStores
from ratchet.remote.session import RemoteSession
from ratchet.server.app import ServerOptions, create_app, routes_of
from ratchet.server.permissions import declared_level
from ratchet.workspace import Workspace
from tests.team_server import TeamServer, spawn, start_team_server


def _workspace(tmp_path: Path) -> Workspace:
    return Workspace.at(tmp_path / "server-home")


def _tokens(ws: Workspace) -> dict[str, str]:
    auth = ws.stores.auth
    found = {}
    for name, role in (("ada", "admin"), ("wes", "writer"), ("rea", "reader")):
        auth.create_user(name, role)
        found[role] = auth.create_token(name).token
    return found


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, TestClient, dict[str, str], Workspace]]:
    yield from _served(_workspace(tmp_path))


@pytest.fixture
def served_on(local_settings: Any) -> Iterator[tuple[Any, TestClient, dict[str, str],
                                                     Workspace]]:
    """The app over SQLite and over PostgreSQL."""
    yield from _served(Workspace(local_settings))


def _served(ws: Workspace) -> Iterator[tuple[Any, TestClient, dict[str, str], Workspace]]:
    tokens = _tokens(ws)
    app = create_app(ws, ServerOptions(host="127.0.0.1", auth=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield app, client, tokens, ws


def _routes(app: Any) -> list[tuple[str, Any]]:
    return routes_of(app.app_routes)


def _example_path(path: str) -> str:
    return re.sub(r"\{([^}:]+)(:path)?\}", lambda m: "a" * 64 if "digest" in m.group(1)
                  else "x", path)


def _send(client: TestClient, method: str, path: str, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        blob = path.startswith("/api/v1/blobs/")
        headers["Content-Type"] = "application/octet-stream" if blob else "application/json"
        return client.request(method, path, headers=headers, content=b"" if blob else b"{}")
    return client.request(method, path, headers=headers)


# ---------------------------------------------------------------- default deny
def test_every_route_declares_a_permission_and_enforces_it(served: Any) -> None:
    app, client, tokens, _ = served
    routes = _routes(app)
    assert len(routes) > 100  # every store method, the artifact routes, health
    checked = 0
    for full_path, route in routes:
        level = declared_level(route)
        assert level is not None, f"{full_path} declares no permission"
        for method in sorted(route.methods - {"HEAD"}) or ["HEAD"]:
            path = _example_path(full_path)
            anonymous = _send(client, method, path, None)
            if level == "public":
                assert anonymous.status_code < 400, (method, path, anonymous.text)
                continue
            assert anonymous.status_code == 401, (method, path, anonymous.status_code)
            if level in ("write", "admin"):
                denied = _send(client, method, path, tokens["reader"])
                assert denied.status_code == 403, (method, path, denied.status_code)
            if level == "admin":
                denied = _send(client, method, path, tokens["writer"])
                assert denied.status_code == 403, (method, path, denied.status_code)
            checked += 1
    assert checked > 100


def test_a_route_added_without_a_declaration_is_closed(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    tokens = _tokens(ws)
    app = create_app(ws, ServerOptions(host="127.0.0.1", auth=True))

    @app.app_routes.get("/api/v1/forgotten")
    def forgotten() -> dict[str, str]:
        return {"secret": "yes"}

    with TestClient(app, base_url="http://127.0.0.1") as client:
        for token in (None, tokens["admin"]):
            answer = _send(client, "GET", "/api/v1/forgotten", token)
            assert answer.status_code == 403 and "declares no permission" in answer.text


# ---------------------------------------------------------------- fuzzing
def test_the_api_fuzzed_from_its_schema_never_answers_5xx(served_on: Any) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    app, client, tokens, ws = served_on
    ws.stores.tracking.create_experiment("fuzz")
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["paths"] and "/api/v1/tracking/log_batch" in schema["paths"]
    api = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 100
    for operation in operations:
        if operation.method.upper() == "POST" and "auth" in operation.path:
            continue  # user management is fuzzed below without locking the admin out

        @given(case=operation.as_strategy())
        @settings(max_examples=5, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            case.validate_response(response, checks=[not_a_server_error])

        check()
    assert not any(status >= 500 for status in statuses), statuses
    assert statuses.get(200, 0) > 50, statuses  # generated bodies reached the stores


def test_malformed_bodies_are_4xx_naming_the_field(served: Any) -> None:
    _, client, tokens, _ = served
    headers = {"Authorization": f"Bearer {tokens['admin']}", "Content-Type": "application/json"}
    for body, where in ((b"{", "not valid JSON"), (b"[]", "body"), (b'{"run_id": 3}', "run_id"),
                        (b'{"run_id": "r", "points": [["k", "x", 0, 0]]}', "points.0.1"),
                        (b'{"run_id": "r", "points": [], "extra": 1}', "extra")):
        answer = client.post("/api/v1/tracking/log_batch", content=body, headers=headers)
        assert answer.status_code == 422, (body, answer.status_code, answer.text)
        error = answer.json()["error"]
        assert error["type"] == "InvalidInput" and where in error["message"], (body, error)


# ---------------------------------------------------------------- idempotency and actors
def test_a_retried_write_gets_the_first_reply_and_does_nothing_twice(served: Any) -> None:
    _, client, tokens, ws = served
    experiment = ws.stores.tracking.create_experiment("retry")
    key = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {tokens['writer']}",
               "Content-Type": "application/json", "Idempotency-Key": key}
    body = json.dumps({"experiment_id": experiment.experiment_id}).encode()
    first = client.post("/api/v1/tracking/create_run", content=body, headers=headers)
    again = client.post("/api/v1/tracking/create_run", content=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    runs, _ = ws.stores.tracking.search_runs([experiment.experiment_id])
    assert [r.run_id for r in runs] == [first.json()["result"]["run_id"]]
    # The key is the caller's own: another user cannot replay it.
    stolen = client.post("/api/v1/tracking/create_run", content=body,
                         headers={**headers, "Authorization": f"Bearer {tokens['admin']}"})
    assert stolen.status_code == 409


def test_aliases_and_requests_record_the_authenticated_caller(served: Any) -> None:
    _, client, tokens, ws = served
    registry = ws.stores.registry
    registry.create_model_version("churn", run_id=None, artifact_path="model",
                                  content_hash="a" * 64, flavor="sklearn",
                                  manifest={"flavor": "sklearn"})
    headers = {"Authorization": f"Bearer {tokens['writer']}", "Content-Type": "application/json",
               "X-Forwarded-For": "203.0.113.9"}
    answer = client.post("/api/v1/registry/set_alias", headers=headers, content=json.dumps(
        {"name": "churn", "alias": "champion", "version": 1, "actor": "admin",
         "reason": "spoofed"}).encode())
    assert answer.status_code == 200, answer.text
    [event] = registry.alias_history("churn", "champion")
    assert event.actor == "wes (admin)"  # who really did it, with what the client claimed
    audit = [e for e in ws.stores.audit.list_events() if e.action == "registry.set_alias"]
    assert [(e.actor, e.kind, e.resource) for e in audit] == [("wes", "model", "churn")]
    assert audit[0].client == "testclient"  # the connection's address, not a header


def test_grants_narrow_and_widen_a_role_per_resource(served: Any) -> None:
    _, client, tokens, ws = served
    auth = ws.stores.auth
    auth.grant("rea", "model", "churn", "write")      # a reader who may move churn's aliases
    auth.grant("wes", "experiment", "secret", "none")  # a writer kept out of one experiment
    tracking = ws.stores.tracking
    hidden = tracking.create_experiment("secret")
    run = tracking.create_run(hidden.experiment_id)
    registry = ws.stores.registry
    for name in ("churn", "fraud"):
        registry.create_model_version(name, run_id=None, artifact_path="model",
                                      content_hash="a" * 64, flavor="sklearn",
                                      manifest={"flavor": "sklearn"})

    def post(token: str, path: str, body: dict[str, Any]) -> Any:
        return client.post(path, content=json.dumps(body).encode(), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    alias = {"alias": "champion", "version": 1, "actor": None, "reason": None}
    assert post(tokens["reader"], "/api/v1/registry/set_alias",
                {"name": "churn", **alias}).status_code == 200
    denied = post(tokens["reader"], "/api/v1/registry/set_alias", {"name": "fraud", **alias})
    assert denied.status_code == 403 and "fraud" in denied.json()["error"]["message"]
    assert post(tokens["writer"], "/api/v1/tracking/get_run",
                {"run_id": run.run_id}).status_code == 403
    assert post(tokens["writer"], "/api/v1/tracking/log_metric",
                {"run_id": run.run_id, "key": "k", "value": 1.0}).status_code == 403
    assert post(tokens["admin"], "/api/v1/tracking/get_run",
                {"run_id": run.run_id}).status_code == 200
    # Listings and searches leave out what the grant hides.
    tracking.create_run(tracking.create_experiment("open").experiment_id)
    listed = post(tokens["writer"], "/api/v1/tracking/list_experiments", {}).json()["result"]
    assert "secret" not in [e["name"] for e in listed] and "open" in [e["name"] for e in listed]
    found = post(tokens["writer"], "/api/v1/tracking/search_runs", {}).json()["result"][0]
    assert found and run.run_id not in [r["run_id"] for r in found]
    everything = post(tokens["admin"], "/api/v1/tracking/search_runs", {}).json()["result"][0]
    assert run.run_id in [r["run_id"] for r in everything]


# ---------------------------------------------------------------- the remote client
@pytest.fixture
def live(team_server: TeamServer) -> TeamServer:
    """The session's live server (tests/conftest.py), emptied: starting one per test cost
    seconds each."""
    team_server.reset()
    return team_server


def test_metric_points_are_batched_and_flushed_at_exit(live: TeamServer, tmp_path: Path
                                                      ) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import ratchet
        run = ratchet.start_run(experiment="batched")
        for step in range(5000):
            ratchet.log_metric("loss", 1.0 / (step + 1), step=step)
        print(run.run_id)
        # no end_run: the process ends with points still queued
    """))
    env = {**live.client_env(), "PATH": "/usr/bin:/bin", "RATCHET_HOME": str(tmp_path / "c")}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    stores = HttpStores(RemoteSession(live.url, live.token))
    try:
        history = stores.tracking.metric_history(run_id, "loss")
        assert [m.step for m in history] == list(range(5000))
        # Far fewer requests than points: the audit log has one entry per batch.
        batches = [e for e in stores.audit.list_events(limit=1000)
                   if e.action == "tracking.log_batch"]
        assert 1 <= len(batches) < 100
    finally:
        stores.close()


def test_errors_cross_the_wire_as_the_same_classes(live: TeamServer) -> None:
    stores = HttpStores(RemoteSession(live.url, live.token))
    reader = HttpStores(RemoteSession(live.url, _reader_token(live)))
    try:
        with pytest.raises(NotFound, match="no run"):
            stores.tracking.get_run("0" * 32)
        with pytest.raises(NotFound):  # the same error at the call, though points queue
            stores.tracking.log_metric("0" * 32, "loss", 1.0)
        with pytest.raises(Forbidden):
            reader.tracking.create_experiment("nope")
        with pytest.raises(AttributeError, match="server only"):
            stores.auth.verify_token  # noqa: B018
    finally:
        stores.close()
        reader.close()


def _reader_token(server: TeamServer) -> str:
    from ratchet.store import open_database
    from ratchet.store.auth_store import AuthStore

    auth = AuthStore(open_database(server.db_url))
    with contextlib.suppress(AlreadyExists):  # the session's server keeps its users
        auth.create_user("reader-1", "reader")
    return auth.create_token("reader-1").token


def test_two_server_processes_share_one_postgresql(pg_url: str, tmp_path: Path) -> None:
    from tests.conftest import _truncate_all

    _truncate_all(pg_url)
    first = start_team_server(pg_url, tmp_path / "blobs", tmp_path / "one")
    second_process, second_url = spawn(
        {**_server_env(pg_url, tmp_path)}, tmp_path / "two.log", "--auth", "--workers", "2")
    first.extra.append(second_process)
    a = HttpStores(RemoteSession(first.url, first.token))
    b = HttpStores(RemoteSession(second_url, first.token))
    try:
        experiment = a.tracking.create_experiment("shared")
        run = b.tracking.create_run(experiment.experiment_id)
        for step in range(100):
            (a if step % 2 else b).tracking.log_metric(run.run_id, "x", float(step), step=step)
        a.flush()
        b.flush()
        assert [m.step for m in b.tracking.metric_history(run.run_id, "x")] == list(range(100))
        assert a.tracking.get_run(run.run_id).metrics["x"] == 99.0
        # An idempotency key claimed through one process is honoured by the other.
        key = uuid.uuid4().hex
        import httpx2

        body = json.dumps({"experiment_id": experiment.experiment_id}).encode()
        headers = {"Authorization": f"Bearer {first.token}",
                   "Content-Type": "application/json", "Idempotency-Key": key}
        one = httpx2.post(f"{first.url}/api/v1/tracking/create_run", content=body,
                          headers=headers)
        two = httpx2.post(f"{second_url}/api/v1/tracking/create_run", content=body,
                          headers=headers)
        assert one.json() == two.json()
        runs, _ = a.tracking.search_runs([experiment.experiment_id])
        assert len(runs) == 2
    finally:
        a.close()
        b.close()
        first.stop()


def _server_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    from tests.team_server import server_environment

    return server_environment(db_url, tmp_path / "blobs", tmp_path / "two")


def test_stored_paths_are_checked_and_batches_are_bounded(served: Any) -> None:
    _, client, tokens, ws = served
    experiment = ws.stores.tracking.create_experiment("paths")
    run = ws.stores.tracking.create_run(experiment.experiment_id)
    headers = {"Authorization": f"Bearer {tokens['writer']}", "Content-Type": "application/json"}

    def post(path: str, body: dict[str, Any]) -> Any:
        return client.post(path, content=json.dumps(body).encode(), headers=headers)

    for bad in ("../secret", "/etc/passwd", "a/%2e%2e/b", "file:x", "a\\\\..\\\\b"):
        answer = post("/api/v1/tracking/record_artifacts", {
            "run_id": run.run_id, "entries": [{"path": bad, "digest": "a" * 64, "size": 1}]})
        assert answer.status_code == 422, (bad, answer.text)
        answer = post("/api/v1/registry/create_model_version", {
            "name": "m", "run_id": run.run_id, "artifact_path": bad, "content_hash": "a" * 64,
            "flavor": "sklearn", "manifest": {}})
        assert answer.status_code == 422, (bad, answer.text)
    assert ws.stores.tracking.list_artifacts(run.run_id) == []
    too_many = [["k", 1.0, i, 0] for i in range(100_001)]
    answer = post("/api/v1/tracking/log_batch", {"run_id": run.run_id, "points": too_many})
    assert answer.status_code == 413 and "limit is 100000" in answer.text
    assert ws.stores.tracking.metric_history(run.run_id, "k") == []


def test_every_option_reaches_the_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    from ratchet.server.app import options_from_environment, options_to_environment

    monkeypatch.setenv("RATCHET_SERVER_OPTIONS", "{}")  # restored after the test
    given = ServerOptions(host="0.0.0.0", auth=True, allowed_hosts=("ratchet.internal",),
                          allowed_origins=("https://ui.internal",), max_body_bytes=1234)
    options_to_environment(given)
    assert options_from_environment() == given
