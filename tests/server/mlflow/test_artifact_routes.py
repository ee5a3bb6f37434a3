"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts``) over a real app:
upload, download, list, immutable paths, logged models' files, hostile paths, permissions,
and a 50 MB upload streamed through a real server process with bounded memory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx2
import pytest
from starlette.testclient import TestClient

from ratchet.hashing import hash_bytes
from ratchet.server.app import ServerOptions, create_app
from ratchet.server.mlflow.artifact_routes import children
from ratchet.store.records import ArtifactEntry
from ratchet.workspace import Workspace
from tests.server.test_artifact_routes import running_server
from tests.server.test_large_artifact import _reset_peak, _status, seeded_chunks, seeded_digest

BASE = "/api/2.0/mlflow-artifacts/artifacts"


class Site:
    def __init__(self, ws: Workspace, client: TestClient, tokens: dict[str, str]) -> None:
        self.ws, self.client, self.tokens = ws, client, tokens
        tracking = ws.stores.tracking
        self.exp = tracking.create_experiment("open").experiment_id
        self.secret = tracking.create_experiment("secret").experiment_id
        self.run = tracking.create_run(self.exp).run_id
        self.secret_run = tracking.create_run(self.secret).run_id

    def call(self, method: str, path: str, who: str | None = "wendy", **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if who:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return self.client.request(method, path, headers=headers, **kw)

    def put(self, path: str, data: bytes, who: str | None = "wendy") -> Any:
        return self.call("PUT", f"{BASE}/{path}", who, content=data,
                         headers={"Content-Type": "text/plain"})


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


def _error(response: Any) -> str:
    return str(response.json()["error_code"])


def test_upload_download_list_round_trip(site: Site) -> None:
    root = f"{site.exp}/{site.run}/artifacts"
    assert site.put(f"{root}/report.txt", b"hello").status_code == 200
    assert site.put(f"{root}/model/MLmodel", b"flavors: {}\n").json() == {}
    assert site.put(f"{root}/model/data/model.pkl", b"\x00pickle").status_code == 200
    entries = site.ws.stores.tracking.list_artifacts(site.run)
    assert {e.path: e.digest for e in entries} == {
        "report.txt": hash_bytes(b"hello"), "model/MLmodel": hash_bytes(b"flavors: {}\n"),
        "model/data/model.pkl": hash_bytes(b"\x00pickle")}

    got = site.call("GET", f"{BASE}/{root}/report.txt", "rita")
    assert got.status_code == 200 and got.content == b"hello"
    assert got.headers["content-type"].startswith("text/plain")
    assert got.headers["content-disposition"].startswith("attachment")
    assert got.headers["x-content-type-options"] == "nosniff"
    pkl = site.call("GET", f"{BASE}/{root}/model/data/model.pkl", "rita")
    assert pkl.content == b"\x00pickle"

    listing = site.call("GET", BASE, "rita", params={"path": root}).json()
    assert listing == {"files": [{"path": "model", "is_dir": True},
                                 {"path": "report.txt", "is_dir": False, "file_size": 5}]}
    inner = site.call("GET", BASE, "rita", params={"path": f"{root}/model"}).json()
    assert inner == {"files": [{"path": "MLmodel", "is_dir": False, "file_size": 12},
                               {"path": "data", "is_dir": True}]}
    # A file's own path and a missing folder list nothing (MLflow's stores do the same).
    assert site.call("GET", BASE, "rita", params={"path": f"{root}/report.txt"}).json() == {}
    assert site.call("GET", BASE, "rita", params={"path": f"{root}/nope"}).json() == {}

    missing = site.call("GET", f"{BASE}/{root}/nope.txt", "rita")
    assert missing.status_code == 404 and _error(missing) == "RESOURCE_DOES_NOT_EXIST"
    folder = site.call("GET", f"{BASE}/{root}/model", "rita")
    assert folder.status_code == 404 and "folder" in folder.json()["message"]


def test_paths_are_immutable_but_a_retry_succeeds(site: Site) -> None:
    path = f"{site.exp}/{site.run}/artifacts/a.txt"
    assert site.put(path, b"first").status_code == 200
    assert site.put(path, b"first").status_code == 200  # the client retried
    clash = site.put(path, b"second")
    assert clash.status_code == 409 and _error(clash) == "RESOURCE_CONFLICT"
    assert "immutable" in clash.json()["message"]
    assert site.call("GET", f"{BASE}/{path}").content == b"first"


def test_a_logged_models_files_are_its_holder_runs_artifacts(site: Site) -> None:
    model = site.ws.stores.logged_models.create(site.exp, name="clf")
    root = f"{site.exp}/models/{model.model_id}/artifacts"
    assert site.put(f"{root}/MLmodel", b"m").status_code == 200
    assert site.put(f"{root}/model.pkl", b"p").status_code == 200
    paths = [e.path for e in site.ws.stores.tracking.list_artifacts(model.artifact_run_id)]
    assert paths == [f"models/{model.model_id}/MLmodel", f"models/{model.model_id}/model.pkl"]
    assert site.call("GET", f"{BASE}/{root}/model.pkl").content == b"p"
    listing = site.call("GET", BASE, params={"path": root}).json()
    assert [f["path"] for f in listing["files"]] == ["MLmodel", "model.pkl"]
    # The model is in experiment `open`: named under another experiment, it does not exist.
    elsewhere = site.put(f"{site.secret}/models/{model.model_id}/artifacts/x", b"x")
    assert elsewhere.status_code == 404 and _error(elsewhere) == "RESOURCE_DOES_NOT_EXIST"
    unknown = site.put(f"{site.exp}/models/m-{'0' * 32}/artifacts/x", b"x")
    assert unknown.status_code == 404


@pytest.mark.parametrize("path", [
    "{exp}/{run}/artifacts/../../{secret}/{secret_run}/artifacts/x",
    "{exp}/{run}/artifacts/%2e%2e/escape.txt",
    "{exp}/{run}/artifacts/a%2F..%2F..%2Fb",
    "{exp}/{run}/artifacts/a//b",
    "{exp}/{run}/artifacts/a\\..\\b",
    "{exp}/{run}/artifacts/%2e/a",
    "..%2F{exp}/{run}/artifacts/a",
    "/etc/passwd",
    "{exp}/{run}/a.txt",
    "{exp}/../{run}/artifacts/a",
    "{exp}/{run}/artifacts/a%00b",
])
def test_hostile_paths_are_refused_and_nothing_is_written(site: Site, path: str) -> None:
    filled = path.format(exp=site.exp, run=site.run, secret=site.secret,
                         secret_run=site.secret_run)
    for method in ("PUT", "GET", "DELETE"):
        answer = site.call(method, f"{BASE}/{filled}", content=b"evil" if method == "PUT"
                           else None)
        # 415: the guard (ahead of the app) takes no dot segment for a streaming route
        assert answer.status_code in (400, 404, 415), (method, filled, answer.status_code)
        assert "error_code" in answer.json() or answer.status_code == 415
    listed = site.call("GET", BASE, params={"path": unquote(filled)})
    assert listed.status_code in (400, 404)
    for run in (site.run, site.secret_run):
        assert site.ws.stores.tracking.list_artifacts(run) == []


def test_a_run_named_under_another_experiment_does_not_exist(site: Site) -> None:
    wrong = f"{site.exp}/{site.secret_run}/artifacts/x.txt"
    answer = site.put(wrong, b"x")
    assert answer.status_code == 404 and _error(answer) == "RESOURCE_DOES_NOT_EXIST"
    nothing = site.put(f"{site.exp}/{'0' * 32}/artifacts/x.txt", b"x")
    assert nothing.status_code == 404
    no_experiment = site.put(f"{'9' * 32}/{site.run}/artifacts/x.txt", b"x")
    assert no_experiment.status_code == 404
    assert site.ws.stores.tracking.list_artifacts(site.secret_run) == []


def test_permissions(site: Site) -> None:
    secret = f"{site.secret}/{site.secret_run}/artifacts/s.txt"
    assert site.put(secret, b"s").status_code == 200  # a writer writes anywhere
    anonymous = site.put(secret, b"s", who=None)
    assert anonymous.status_code == 401 and _error(anonymous) == "UNAUTHENTICATED"
    reader_put = site.put(f"{site.exp}/{site.run}/artifacts/r.txt", b"r", who="rita")
    assert reader_put.status_code == 403 and _error(reader_put) == "PERMISSION_DENIED"
    shut_out = site.call("GET", f"{BASE}/{secret}", "rita")
    assert shut_out.status_code == 403 and _error(shut_out) == "PERMISSION_DENIED"
    assert set(shut_out.json()) == {"error_code", "message"}  # no file bytes
    listing = site.call("GET", BASE, "rita",
                        params={"path": f"{site.secret}/{site.secret_run}/artifacts"})
    assert listing.status_code == 403
    deleting = site.call("DELETE", f"{BASE}/{secret}", "rita")
    assert deleting.status_code == 403
    no_path = site.call("GET", BASE, "rita")
    assert no_path.status_code == 400 and _error(no_path) == "INVALID_PARAMETER_VALUE"


def test_delete_removes_the_index_entries(site: Site) -> None:
    root = f"{site.exp}/{site.run}/artifacts"
    for path in ("keep.txt", "dir/a.txt", "dir/sub/b.txt", "dirx.txt"):
        assert site.put(f"{root}/{path}", path.encode()).status_code == 200
    assert site.call("DELETE", f"{BASE}/{root}/dir").status_code == 200
    left = [e.path for e in site.ws.stores.tracking.list_artifacts(site.run)]
    assert left == ["dirx.txt", "keep.txt"]
    assert site.call("GET", f"{BASE}/{root}/dir/a.txt").status_code == 404
    # The run holds a logged model's files: deleting the run's root leaves the model's.
    model = site.ws.stores.logged_models.create(site.exp, source_run_id=site.run)
    model_root = f"{site.exp}/models/{model.model_id}/artifacts"
    assert site.put(f"{model_root}/MLmodel", b"m").status_code == 200
    assert site.call("DELETE", f"{BASE}/{root}/").status_code == 200
    left = [e.path for e in site.ws.stores.tracking.list_artifacts(site.run)]
    assert left == [f"models/{model.model_id}/MLmodel"]
    assert site.call("DELETE", f"{BASE}/{model_root}").status_code == 200
    assert site.ws.stores.tracking.list_artifacts(site.run) == []


def test_children_lists_direct_entries_only() -> None:
    entries = [ArtifactEntry("a/b/c.txt", "d", 1), ArtifactEntry("a/x.txt", "d", 2),
               ArtifactEntry("a", "d", 9), ArtifactEntry("ab.txt", "d", 3)]
    assert children(entries, "a") == [{"path": "b", "is_dir": True},
                                      {"path": "x.txt", "is_dir": False, "file_size": 2}]
    assert [c["path"] for c in children(entries, "")] == ["a", "ab.txt"]


# -- a real server process: a 50 MB body streams to disk ---------------------------------

SIZE = 50 << 20


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_50_mb_upload_streams_with_bounded_server_memory(tmp_path: Path) -> None:
    home = tmp_path / "server"
    ws = Workspace.at(home)
    exp = ws.stores.tracking.create_experiment("big").experiment_id
    run = ws.stores.tracking.create_run(exp).run_id
    ws.stores.auth.create_user("wendy", "writer")
    headers = {"Authorization": f"Bearer {ws.stores.auth.create_token('wendy').token}",
               "Content-Type": "application/octet-stream"}
    with running_server(home, tmp_path) as server:
        pid = server.process.pid
        url = f"{server.url}{BASE}/{exp}/{run}/artifacts"
        warm = httpx2.put(f"{url}/warm.bin", content=os.urandom(3 << 20), headers=headers)
        assert warm.status_code == 200, warm.text
        baseline = _status(pid)["VmRSS"]
        reset = _reset_peak(pid)
        before = _status(pid)["VmHWM"]
        answer = httpx2.put(f"{url}/big.bin", content=seeded_chunks(SIZE), headers=headers,
                            timeout=120)
        assert answer.status_code == 200, answer.text
        peak = _status(pid)["VmHWM"]
        growth = peak - baseline if reset else peak - before
        assert growth < 25 << 20, f"server RSS grew {growth >> 20} MiB for a 50 MiB body"
        entries = {e.path: e for e in ws.stores.tracking.list_artifacts(run)}
        assert entries["big.bin"].size == SIZE
        assert entries["big.bin"].digest == seeded_digest(SIZE)
        with httpx2.stream("GET", f"{url}/big.bin", headers=headers, timeout=120) as got:
            assert got.status_code == 200
            assert sum(len(c) for c in got.iter_bytes()) == SIZE


def test_multipart_upload_is_refused_the_way_the_client_falls_back_from(site: Site) -> None:
    from ratchet.server.mlflow.artifact_routes import MULTIPART_UNSUPPORTED

    answer = site.call("POST", f"/api/2.0/mlflow-artifacts/mpu/create/{site.exp}/{site.run}/"
                       "artifacts", json={"path": "big.bin", "num_parts": 2})
    assert answer.status_code == 501 and _error(answer) == "NOT_IMPLEMENTED"
    # MLflow's client matches the start of this message to fall back to one PUT.
    assert answer.json()["message"].startswith(
        "Multipart upload is not supported for the current artifact repository")
    assert answer.json()["message"] == MULTIPART_UNSUPPORTED
    denied = site.call("POST", f"/api/2.0/mlflow-artifacts/mpu/create/{site.exp}/{site.run}/"
                       "artifacts", "rita", json={})
    assert denied.status_code == 403


def test_a_models_reader_downloads_its_versions_files_without_the_experiment(
        site: Site) -> None:
    root = f"{site.secret}/{site.secret_run}/artifacts"
    for path in ("model/MLmodel", "model/model.pkl", "other/secret.txt"):
        assert site.put(f"{root}/{path}", path.encode()).status_code == 200
    site.ws.stores.registry.create_model_version(
        "shared", run_id=site.secret_run, artifact_path="model", content_hash="0" * 64,
        flavor="sklearn", manifest={})
    site.ws.stores.registry.create_model_version(
        "hidden", run_id=site.secret_run, artifact_path="other", content_hash="0" * 64,
        flavor="sklearn", manifest={})
    # rita: a reader with none on experiment "secret" and on model "hidden"
    site.ws.stores.auth.grant("rita", "model", "hidden", "none")
    got = site.call("GET", f"{BASE}/{root}/model/model.pkl", "rita")
    assert got.status_code == 200 and got.content == b"model/model.pkl"
    listing = site.call("GET", BASE, "rita", params={"path": f"{root}/model"})
    assert [f["path"] for f in listing.json()["files"]] == ["MLmodel", "model.pkl"]
    for path in (f"{root}/other/secret.txt", f"{root}/nope/x"):
        denied = site.call("GET", f"{BASE}/{path}", "rita")
        assert denied.status_code == 403 and _error(denied) == "PERMISSION_DENIED", path
    root_listing = site.call("GET", BASE, "rita", params={"path": root})
    assert root_listing.status_code == 403
    writing = site.put(f"{root}/model/extra.txt", b"x", who="rita")
    assert writing.status_code == 403


def test_server_info_says_uploads_are_single_requests(site: Site) -> None:
    answer = site.client.get("/api/3.0/mlflow/server-info")  # no token: public, as MLflow's
    assert answer.status_code == 200
    info = answer.json()
    assert info["multipart_uploads_enabled"] is False
    assert info["multipart_downloads_enabled"] is False
