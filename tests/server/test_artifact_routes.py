"""The artifact routes through a real uvicorn server: blobs by digest (HEAD, GET with
ranges, streamed PUT, claim), run and model files by path, permissions per experiment and
model, download headers, and a traversal corpus fuzzed against every artifact route."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratchet.hashing import hash_bytes
from ratchet.store.records import ArtifactEntry
from ratchet.workspace import Workspace

# -- the server under test ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def running_server(home: Path, log_dir: Path, artifacts: str | None = None
                   ) -> Iterator[Server]:
    """``ratchet server --auth`` (one process) over the workspace at ``home`` (its
    artifacts at ``artifacts`` if given) on a free loopback port, until ready; stopped
    by its process group."""
    port = free_port()
    log = log_dir / f"server-{port}.log"
    ws = Workspace.at(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}
    env.update(RATCHET_HOME=str(ws.settings.home), RATCHET_DB=ws.settings.db_url,
               RATCHET_ARTIFACTS=artifacts or ws.settings.artifacts_uri)
    command = [sys.executable, "-m", "ratchet.cli.main", "server", "--host", "127.0.0.1",
               "--port", str(port), "--auth"]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, cwd=log_dir, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx2.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready: " + log.read_text()
            time.sleep(0.1)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# -- a workspace with two experiments, a model, users -----------------------------------


@dataclass
class Site:
    server: Server
    home: Path
    workspace: Workspace
    tokens: dict[str, str]
    open_run: str         # experiment "open": everyone reads it
    secret_run: str       # experiment "secret": rita's grant is none
    files: dict[str, bytes]  # open_run's artifacts
    secret: bytes

    def client(self, user: str | None = "alice") -> httpx2.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx2.Client(base_url=self.server.url, headers=headers, timeout=30)


SECRET = b"SECRET-MARKER-7f3a: the other experiment's artifact"
FILES = {
    "model/model.pkl": b"pickled model bytes " * 100,
    "model/MLmodel": b"flavor: sklearn\n",
    "data/x.csv": b"a,b\n1,2\n",
    "notes/r\u00e9sum\u00e9 final.txt": b"unicode name",
    "semi;pct%.txt": b"odd but legal name",
}


def populate(ws: Workspace) -> tuple[str, str, dict[str, str]]:
    tracking = ws.stores.tracking
    open_exp = tracking.create_experiment("open")
    secret_exp = tracking.create_experiment("secret")
    open_run = tracking.create_run(open_exp.experiment_id, name="r1").run_id
    secret_run = tracking.create_run(secret_exp.experiment_id, name="r2").run_id
    entries = []
    for path, data in FILES.items():
        blob = ws.blobs.put_bytes(data)
        entries.append(ArtifactEntry(path, blob.digest, blob.size))
    tracking.record_artifacts(open_run, entries)
    blob = ws.blobs.put_bytes(SECRET)
    tracking.record_artifacts(secret_run, [ArtifactEntry("secret.txt", blob.digest, blob.size)])
    # The model's files are open_run's under "model"; the secret model's are secret_run's.
    ws.stores.registry.create_model_version("churn", run_id=open_run, artifact_path="model",
                                            content_hash="0" * 64, flavor="sklearn", manifest={})
    ws.stores.registry.create_model_version("hidden", run_id=secret_run, artifact_path="",
                                            content_hash="0" * 64, flavor="sklearn", manifest={})
    auth = ws.stores.auth
    auth.create_user("alice", "admin")
    auth.create_user("wendy", "writer")
    auth.create_user("rita", "reader")
    auth.grant("rita", "experiment", "secret", "none")
    auth.grant("rita", "model", "hidden", "none")
    tokens = {name: auth.create_token(name).token for name in ("alice", "wendy", "rita")}
    return open_run, secret_run, tokens


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("server-home")
    ws = Workspace.at(home)
    open_run, secret_run, tokens = populate(ws)
    with running_server(home, home) as server:
        yield Site(server, home, ws, tokens, open_run, secret_run, FILES, SECRET)


OCTET = {"Content-Type": "application/octet-stream"}


def error_type(response: httpx2.Response) -> str:
    return str(response.json()["error"]["type"])


# -- blobs -------------------------------------------------------------------------------


def test_blob_put_head_get_round_trip(site: Site) -> None:
    data = os.urandom(3 * (1 << 20) + 5)
    digest = hash_bytes(data)
    with site.client("wendy") as c:
        assert c.head(f"/api/v1/blobs/{digest}").status_code == 404
        put = c.put(f"/api/v1/blobs/{digest}", content=data,
                    headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
        assert put.json() == {"digest": digest, "size": len(data), "created": True}
        head = c.head(f"/api/v1/blobs/{digest}")
        assert head.status_code == 200
        assert int(head.headers["content-length"]) == len(data)
        got = c.get(f"/api/v1/blobs/{digest}")
        assert got.status_code == 200
        assert got.content == data
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-disposition"].startswith("attachment;")
        # Again: already stored, nothing written, still a success.
        again = c.put(f"/api/v1/blobs/{digest}", content=data,
                      headers={"Content-Type": "application/octet-stream"})
        assert again.status_code == 200
        assert again.json()["created"] is False
    assert site.workspace.blobs.read_bytes(digest) == data


def test_blob_upload_streams_chunked_body(site: Site) -> None:
    """No Content-Length (chunked transfer): still streamed, hashed and stored."""
    parts = [os.urandom(70_000) for _ in range(20)]
    data = b"".join(parts)
    digest = hash_bytes(data)
    with site.client("wendy") as c:
        put = c.put(f"/api/v1/blobs/{digest}", content=iter(parts),
                    headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
        assert c.get(f"/api/v1/blobs/{digest}").content == data


def test_blob_digest_mismatch_stores_nothing(site: Site) -> None:
    data = b"what the client claims"
    wrong = hash_bytes(b"something else")
    tmp_before = sorted((site.home / "artifacts" / "tmp").glob("*"))
    with site.client("wendy") as c:
        put = c.put(f"/api/v1/blobs/{wrong}", content=data,
                    headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 422
        assert error_type(put) == "InvalidInput"
        assert "nothing was stored" in put.json()["error"]["message"]
        assert c.head(f"/api/v1/blobs/{wrong}").status_code == 404
    assert not site.workspace.blobs.exists(wrong)
    assert sorted((site.home / "artifacts" / "tmp").glob("*")) == tmp_before


@pytest.mark.parametrize("digest", ["abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65,
                                    "..%2f..%2fetc%2fpasswd"])
def test_blob_routes_refuse_malformed_digests(site: Site, digest: str) -> None:
    with site.client("wendy") as c:
        for method in ("GET", "PUT"):
            response = c.request(method, f"/api/v1/blobs/{digest}", content=b"x",
                                 headers={"Content-Type": "application/octet-stream"})
            assert 400 <= response.status_code < 500, (method, response.text)
        assert 400 <= c.head(f"/api/v1/blobs/{digest}").status_code < 500


def test_blob_ranges(site: Site) -> None:
    data = bytes(range(256)) * 1000
    digest = site.workspace.blobs.put_bytes(data).digest
    with site.client("rita") as c:
        url = f"/api/v1/blobs/{digest}"
        part = c.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        tail = c.get(url, headers={"Range": "bytes=255000-"})
        assert tail.status_code == 206 and tail.content == data[255000:]
        suffix = c.get(url, headers={"Range": "bytes=-10"})
        assert suffix.status_code == 206 and suffix.content == data[-10:]
        past = c.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{len(data)}"
        for ignored in ("bytes=5-2", "items=0-1", "bytes=0-1,5-6", "garbage"):
            whole = c.get(url, headers={"Range": ignored})
            assert whole.status_code == 200 and whole.content == data, ignored


def test_blob_permissions(site: Site) -> None:
    data = b"permission probe"
    digest = hash_bytes(data)
    with site.client(None) as anonymous:
        assert anonymous.get(f"/api/v1/blobs/{digest}").status_code == 401
        assert anonymous.head(f"/api/v1/blobs/{digest}").status_code == 401
        put = anonymous.put(f"/api/v1/blobs/{digest}", content=data,
                            headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 401
    with site.client("rita") as reader:
        put = reader.put(f"/api/v1/blobs/{digest}", content=data,
                         headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 403
        assert error_type(put) == "Forbidden"
        claim = reader.post(f"/api/v1/blobs/{digest}/claim", headers=OCTET)
        assert claim.status_code == 403
    assert not site.workspace.blobs.exists(digest)


def test_claim_marks_a_stored_blob(site: Site) -> None:
    data = b"claimed content"
    digest = site.workspace.blobs.put_bytes(data).digest
    blob = site.home / "artifacts" / "blobs" / digest[:2] / digest[2:]
    os.utime(blob, (1_000_000, 1_000_000))  # long unused
    with site.client("wendy") as c:
        found = c.post(f"/api/v1/blobs/{digest}/claim", headers=OCTET)
        assert found.json() == {"digest": digest, "exists": True, "size": len(data)}
        missing = c.post(f"/api/v1/blobs/{'0' * 64}/claim", headers=OCTET)
        assert missing.json() == {"digest": "0" * 64, "exists": False, "size": None}
    assert blob.stat().st_mtime > time.time() - 60  # gc's grace period starts again


def test_corrupt_blob_is_never_sent_complete(site: Site) -> None:
    data = os.urandom(2 * (1 << 20) + 100)
    digest = site.workspace.blobs.put_bytes(data).digest
    blob = site.home / "artifacts" / "blobs" / digest[:2] / digest[2:]
    blob.chmod(0o600)
    raw = bytearray(blob.read_bytes())
    raw[-1] ^= 0xFF
    blob.write_bytes(bytes(raw))
    with site.client("alice") as c, pytest.raises(httpx2.TransportError):
        c.get(f"/api/v1/blobs/{digest}").raise_for_status()


# -- run artifacts -----------------------------------------------------------------------


def test_list_run_artifacts(site: Site) -> None:
    with site.client("rita") as c:
        listed = c.get(f"/api/v1/runs/{site.open_run}/artifacts")
        assert listed.status_code == 200
        body = listed.json()
        assert [a["path"] for a in body["artifacts"]] == sorted(site.files)
        assert all(a["digest"] == hash_bytes(site.files[a["path"]]) for a in body["artifacts"])
        model = c.get(f"/api/v1/runs/{site.open_run}/artifacts", params={"prefix": "model"})
        assert [a["path"] for a in model.json()["artifacts"]] == ["model/MLmodel",
                                                                 "model/model.pkl"]
        bad = c.get(f"/api/v1/runs/{site.open_run}/artifacts", params={"prefix": "../x"})
        assert bad.status_code == 422
        missing = c.get("/api/v1/runs/no-such-run/artifacts")
        assert missing.status_code == 404 and error_type(missing) == "NotFound"


def test_download_run_artifact_headers(site: Site) -> None:
    with site.client("rita") as c:
        for path, data in site.files.items():
            got = c.get(f"/api/v1/runs/{site.open_run}/artifacts/"
                        + httpx2.URL("/" + path).raw_path.decode()[1:])
            assert got.status_code == 200, (path, got.text)
            assert got.content == data
            assert got.headers["content-type"] == "application/octet-stream"
            assert got.headers["x-content-type-options"] == "nosniff"
            disposition = got.headers["content-disposition"]
            assert disposition.startswith('attachment; filename="')
            assert all(32 <= ord(ch) < 127 for ch in disposition)
        unicode_name = c.get(f"/api/v1/runs/{site.open_run}/artifacts/notes/"
                             "r%C3%A9sum%C3%A9%20final.txt")
        assert unicode_name.headers["content-disposition"] == (
            "attachment; filename=\"r_sum_ final.txt\"; "
            "filename*=UTF-8''r%C3%A9sum%C3%A9%20final.txt")
        odd = c.get(f"/api/v1/runs/{site.open_run}/artifacts/semi%3Bpct%25.txt")
        assert odd.status_code == 200
        assert odd.headers["content-disposition"] == (
            "attachment; filename=\"semi_pct_.txt\"; filename*=UTF-8''semi%3Bpct%25.txt")
        ranged = c.get(f"/api/v1/runs/{site.open_run}/artifacts/model/model.pkl",
                       headers={"Range": "bytes=0-6"})
        assert ranged.status_code == 206 and ranged.content == b"pickled"
        folder = c.get(f"/api/v1/runs/{site.open_run}/artifacts/model")
        assert folder.status_code == 404 and "folder" in folder.json()["error"]["message"]
        absent = c.get(f"/api/v1/runs/{site.open_run}/artifacts/model/nope.bin")
        assert absent.status_code == 404


def test_run_artifacts_need_read_on_the_experiment(site: Site) -> None:
    with site.client("rita") as c:
        for url in (f"/api/v1/runs/{site.secret_run}/artifacts",
                    f"/api/v1/runs/{site.secret_run}/artifacts/secret.txt"):
            denied = c.get(url)
            assert denied.status_code == 403, url
            assert error_type(denied) == "Forbidden"
            assert SECRET not in denied.content
    with site.client("alice") as c:
        got = c.get(f"/api/v1/runs/{site.secret_run}/artifacts/secret.txt")
        assert got.status_code == 200 and got.content == SECRET
    with site.client(None) as c:
        assert c.get(f"/api/v1/runs/{site.open_run}/artifacts/data/x.csv").status_code == 401


def test_model_files(site: Site) -> None:
    with site.client("rita") as c:
        listed = c.get("/api/v1/models/churn/versions/1/files")
        assert listed.status_code == 200
        assert [f["path"] for f in listed.json()["files"]] == ["MLmodel", "model.pkl"]
        got = c.get("/api/v1/models/churn/versions/1/files/model.pkl")
        assert got.status_code == 200 and got.content == site.files["model/model.pkl"]
        assert got.headers["content-disposition"] == 'attachment; filename="model.pkl"'
        assert c.get("/api/v1/models/churn/versions/2/files/model.pkl").status_code == 404
        for bad in ("0", "-1", "x", "1.0", "99999999999"):
            assert c.get(f"/api/v1/models/churn/versions/{bad}/files").status_code == 422, bad
        hidden = c.get("/api/v1/models/hidden/versions/1/files/secret.txt")
        assert hidden.status_code == 403
        # The model route reaches only files under the version's folder.
        outside = c.get("/api/v1/models/churn/versions/1/files/..%2Fdata%2Fx.csv")
        assert outside.status_code == 422


# -- the traversal corpus ----------------------------------------------------------------

TRAVERSALS = [
    "../secret.txt", "../../../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/etc/passwd", "%2e%2e%2f%2e%2e%2fratchet.db", "%2E%2E/secret.txt",
    "%252e%252e/%252e%252e/etc/passwd", "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "%25252e%25252e%25252fetc%25252fpasswd", "..%5c..%5c..%5cetc%5cpasswd",
    "..\\..\\etc\\passwd", "%5c%5c..%5cetc", "model\\..\\..\\secret.txt", "/etc/passwd",
    "//etc/passwd", "%2fetc%2fpasswd", "%252fetc%252fpasswd", "file:///etc/passwd",
    "file:%2f%2f%2fetc%2fpasswd", "file%3a%2f%2f%2fetc%2fpasswd", "C:%5cWindows%5cwin.ini",
    "c:/windows/win.ini", "%00", "model%00.pkl", "model/%00../../secret.txt",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "%e0%80%ae%e0%80%ae/etc/passwd",
    "%c0%af..%c0%afetc", "%ef%bc%8e%ef%bc%8e/secret.txt", "%e2%80%a4%e2%80%a4/secret.txt",
    "%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.txt", "....//....//etc/passwd", ".../.../etc",
    "model/../../secret.txt", "model/./../model/model.pkl", "./model/model.pkl",
    "~/.ssh/id_rsa", "%7e/.ssh/id_rsa", "model/model.pkl%23.txt", "model/model.pkl%3f.x",
    "model/model.pkl#frag", "CON", "aux.txt", "model/nul", "a/" * 40 + "../" * 60 + "etc",
    "..%u2216..%u2216etc", "%", "%zz", "%2", ". /secret.txt", "model. /model.pkl",
    "..%00/secret.txt", "%0d%0aSet-Cookie:%20x=1", "model%2fmodel.pkl",
    "../../artifacts/blobs", "../ratchet.db", "..;/secret.txt", "x" * 300,
]


def raw_request(url: str, method: str, target: str, token: str | None) -> tuple[int, bytes]:
    """Send ``target`` exactly as written (httpx would normalize dot segments)."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if method == "PUT":
        lines += ["Content-Type: application/octet-stream", "Content-Length: 1"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    if method == "PUT":
        request += b"x"
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return status, body


def _dechunk(body: bytes) -> bytes:
    out = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        body = rest[size + 2:]
    return b"".join(out)


def test_traversal_corpus_against_every_artifact_route(site: Site) -> None:
    """Never a 5xx; a 200 only ever carries content of the run (or model) addressed."""
    run = site.open_run
    allowed_run = set(site.files.values())
    allowed_model = {v for k, v in site.files.items() if k.startswith("model/")}
    forbidden = [SECRET, b"root:", b"SQLite format", b"[fonts]"]
    targets: list[tuple[str, str, set[bytes]]] = []
    for attack in TRAVERSALS:
        for method in ("GET", "HEAD"):
            targets += [
                (method, f"/api/v1/runs/{run}/artifacts/{attack}", allowed_run),
                (method, f"/api/v1/runs/{run}/artifacts/model/{attack}", allowed_run),
                (method, f"/api/v1/models/churn/versions/1/files/{attack}", allowed_model),
                (method, f"/api/v1/blobs/{attack}", set()),
            ]
        targets += [
            ("GET", f"/api/v1/runs/{run}/artifacts?prefix={attack}", set()),
            ("GET", f"/api/v1/runs/{attack}/artifacts/secret.txt", set()),
            ("GET", f"/api/v1/runs/{attack}/artifacts", set()),
            ("GET", f"/api/v1/models/{attack}/versions/1/files/model.pkl", set()),
            ("PUT", f"/api/v1/blobs/{attack}", set()),
            ("POST", f"/api/v1/blobs/{attack}/claim", set()),
        ]
    answered: dict[int, int] = {}
    for method, target, allowed in targets:
        for user in ("rita", "alice"):
            status, body = raw_request(site.server.url, method, target, site.tokens[user])
            answered[status] = answered.get(status, 0) + 1
            where = f"{user}: {method} {target!r} -> {status}"
            assert 0 < status < 500, where
            for marker in forbidden:
                assert marker not in body, where
            if status in (200, 206) and method == "GET" and "?prefix=" not in target:
                assert body in allowed, where
            if "?prefix=" in target and status == 200:
                listed = json.loads(body)["artifacts"]
                assert {a["path"] for a in listed} <= set(site.files), where
    assert answered.get(422, 0) > len(TRAVERSALS)  # the validator refused most of them


# Pieces an attacker combines: dots and slashes in every spelling a layer might decode.
_PIECES = ["..", ".", "/", "\\", "%2e", "%2E", "%2f", "%5c", "%252e", "%252f", "%25", "%00",
           "%c0%ae", "%c0%af", "%ef%bc%8e", "%e2%80%a4", "model", "secret.txt", "etc",
           "passwd", "ratchet.db", "artifacts", "blobs", "file:", "C:", "~", ";", "%3b",
           "#", "?", "%23", "%3f", " ", "%20", "model.pkl", "%u002e"]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.sampled_from(_PIECES), min_size=1, max_size=12))
def test_fuzzed_paths_never_leave_the_run(site: Site, pieces: list[str]) -> None:
    attack = "".join(pieces)
    run = site.open_run
    allowed_run = set(site.files.values())
    allowed_model = {v for k, v in site.files.items() if k.startswith("model/")}
    for target, allowed in ((f"/api/v1/runs/{run}/artifacts/{attack}", allowed_run),
                            (f"/api/v1/runs/{run}/artifacts/model/{attack}", allowed_run),
                            (f"/api/v1/models/churn/versions/1/files/{attack}", allowed_model)):
        status, body = raw_request(site.server.url, "GET", target, site.tokens["rita"])
        assert 0 < status < 500, (target, status)
        assert SECRET not in body and b"root:" not in body and b"SQLite" not in body, target
        if status in (200, 206):
            assert body in allowed, (target, status)


def test_concurrent_uploads_of_one_blob_store_it_once(site: Site) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = os.urandom(20 << 20)
    digest = hash_bytes(data)

    def upload(_: int) -> int:
        with site.client("wendy") as c:
            return c.put(f"/api/v1/blobs/{digest}", content=data, headers=OCTET).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(upload, range(4)))
    assert set(statuses) <= {200, 201} and 201 in statuses, statuses
    assert site.workspace.blobs.read_bytes(digest) == data
    assert not list((site.home / "artifacts" / "tmp").glob("stage-*"))
