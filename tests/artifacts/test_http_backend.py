"""The remote BlobStore (``http_blob_store``) against a real ``ratchet server``: round
trips, deduplication, errors as ratchet errors, retries, resumed downloads, cut uploads
that store nothing, and verification on read of what the server sends."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ratchet.artifacts import BlobStore
from ratchet.artifacts.http_backend import HttpBlobBackend, http_blob_store
from ratchet.errors import (
    ConfigError,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    StoreUnavailable,
)
from ratchet.hashing import CHUNK_SIZE, hash_bytes
from ratchet.remote.session import RemoteSession
from ratchet.workspace import Workspace
from tests import s3_server as s3_fixtures
from tests.server.test_artifact_routes import Server, running_server

s3, s3_server = s3_fixtures.s3, s3_fixtures.s3_server

CONTENT = os.urandom(3 * CHUNK_SIZE + 17)


class Remote:
    def __init__(self, server: Server, home: Path, tokens: dict[str, str]) -> None:
        self.server = server
        self.home = home
        self.tokens = tokens
        self.local = Workspace.at(home).blobs  # the server's own store, read directly

    def store(self, tmp_path: Path, user: str = "wendy",
              transport: httpx2.BaseTransport | None = None, retries: int = 3) -> BlobStore:
        session = RemoteSession(self.server.url, self.tokens[user])
        client = session.client
        if transport is not None:
            client = httpx2.Client(headers=dict(session.client.headers), timeout=30,
                                   transport=transport)
        return http_blob_store(client, self.server.url, tmp_path / "staging",
                               raise_for_error=session.raise_for_error, retries=retries,
                               backoff_s=0.01)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    home = tmp_path_factory.mktemp("blob-server")
    auth = Workspace.at(home).stores.auth
    auth.create_user("wendy", "writer")
    auth.create_user("rita", "reader")
    tokens = {name: auth.create_token(name).token for name in ("wendy", "rita")}
    with running_server(home, home) as server:
        yield Remote(server, home, tokens)


# -- a transport that misbehaves on purpose ----------------------------------------------


class _CutStream(httpx2.SyncByteStream):
    """A response body that breaks off (ReadError) after ``limit`` bytes."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.inner:
            if sent + len(chunk) > self.limit:
                yield chunk[: self.limit - sent]
                raise httpx2.ReadError("connection reset (test)")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()


class Flaky(httpx2.BaseTransport):
    """The real transport, with faults: ``refuse`` connection errors first, then
    ``unavailable`` 503s, ``cut_downloads`` GET bodies broken after ``cut_at`` bytes,
    ``cut_uploads`` PUT bodies broken after ``cut_at`` bytes. Records every request."""

    def __init__(self, *, refuse: int = 0, unavailable: int = 0, cut_downloads: int = 0,
                 cut_uploads: int = 0, cut_at: int = CHUNK_SIZE + 1000) -> None:
        self.real = httpx2.HTTPTransport()
        self.refuse = refuse
        self.unavailable = unavailable
        self.cut_downloads = cut_downloads
        self.cut_uploads = cut_uploads
        self.cut_at = cut_at
        self.seen: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        with self.lock:
            self.seen.append((request.method, request.url.path, request.headers.get("range")))
            if self.refuse:
                self.refuse -= 1
                raise httpx2.ConnectError("connection refused (test)")
            if self.unavailable:
                self.unavailable -= 1
                return httpx2.Response(503, json={"error": {"type": "StoreUnavailable",
                                                            "message": "busy (test)"}})
            cut_upload = request.method == "PUT" and self.cut_uploads > 0
            cut_download = request.method == "GET" and self.cut_downloads > 0
            self.cut_uploads -= cut_upload
            self.cut_downloads -= cut_download
        if cut_upload:
            body = request.stream
            limit = self.cut_at

            def broken() -> Iterator[bytes]:
                sent = 0
                for chunk in body:  # type: ignore[union-attr]
                    sent += len(chunk)
                    yield chunk
                    if sent >= limit:
                        raise httpx2.WriteError("connection reset while sending (test)")

            request = httpx2.Request(request.method, request.url, headers=request.headers,
                                     content=broken())
        response = self.real.handle_request(request)
        if cut_download:
            return httpx2.Response(response.status_code, headers=response.headers,
                                   stream=_CutStream(response.stream, self.cut_at))
        return response

    def close(self) -> None:
        self.real.close()

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.seen]


# -- round trips -------------------------------------------------------------------------


def test_round_trip_through_the_server(remote: Remote, tmp_path: Path) -> None:
    store = remote.store(tmp_path)
    info = store.put_bytes(CONTENT)
    assert info.digest == hash_bytes(CONTENT) and info.size == len(CONTENT)
    assert remote.local.read_bytes(info.digest) == CONTENT  # on the server's disk
    assert store.exists(info.digest)
    assert store.size(info.digest) == len(CONTENT)
    assert store.read_bytes(info.digest) == CONTENT
    target = store.fetch(info.digest, tmp_path / "out" / "blob.bin")
    assert target.read_bytes() == CONTENT
    with store.open(info.digest) as f:
        assert f.read(10) == CONTENT[:10]
        assert f.read() == CONTENT[10:]

    src = tmp_path / "model.bin"
    data = os.urandom(CHUNK_SIZE * 2 + 3)
    src.write_bytes(data)
    stored = store.put_file(src)
    assert remote.local.read_bytes(stored.digest) == data
    assert store.local_path(stored.digest) is None  # nothing local to hand out
    assert repr(store) == f"BlobStore('{remote.server.url}/api/v1/blobs')"


def test_content_already_on_the_server_is_not_sent_again(remote: Remote,
                                                         tmp_path: Path) -> None:
    transport = Flaky()
    store = remote.store(tmp_path, transport=transport)
    data = os.urandom(50_000)
    remote.local.put_bytes(data)
    src = tmp_path / "same.bin"
    src.write_bytes(data)
    store.put_file(src)
    store.put_bytes(data)
    assert transport.methods() == ["POST", "POST"]  # two claims, no upload
    fresh = os.urandom(1000)
    store.put_bytes(fresh)
    assert transport.methods()[2:] == ["POST", "PUT"]
    assert remote.local.read_bytes(hash_bytes(fresh)) == fresh


def test_staging_file_and_adopt(remote: Remote, tmp_path: Path) -> None:
    store = remote.store(tmp_path)
    data = os.urandom(200_000)
    with store.staging_file(".parquet") as staged:
        assert staged.parent == tmp_path / "staging"
        staged.write_bytes(data)
        info = store.adopt(staged, hash_bytes(data))
    assert not staged.exists()
    assert remote.local.read_bytes(info.digest) == data


def test_missing_blobs_are_not_found(remote: Remote, tmp_path: Path) -> None:
    store = remote.store(tmp_path)
    missing = "1" * 64
    assert not store.exists(missing)
    for call in (lambda: store.size(missing), lambda: store.read_bytes(missing),
                 lambda: store.fetch(missing, tmp_path / "x")):
        with pytest.raises(NotFound, match=f"no artifact blob {missing}"):
            call()
    assert not (tmp_path / "x").exists()
    with pytest.raises(InvalidInput, match="not a content digest"):
        store.exists("../../etc/passwd")


def test_garbage_collection_belongs_to_the_server(remote: Remote, tmp_path: Path) -> None:
    store = remote.store(tmp_path)
    for call in (store.now, lambda: list(store.list_blobs()), store.clean_temp,
                 lambda: store.remove_unused("1" * 64, time.time())):
        with pytest.raises(ConfigError, match="Run `ratchet gc` on the server"):
            call()


def test_errors_are_ratchet_errors(remote: Remote, tmp_path: Path) -> None:
    reader = remote.store(tmp_path, user="rita")
    with pytest.raises(Forbidden):
        reader.put_bytes(b"a reader may not write")
    assert not remote.local.exists(hash_bytes(b"a reader may not write"))
    assert reader.read_bytes(remote.local.put_bytes(b"but may read").digest) == b"but may read"

    backend = HttpBlobBackend(RemoteSession(remote.server.url, remote.tokens["wendy"]).client,
                              remote.server.url,
                              raise_for_error=RemoteSession(remote.server.url, None)
                              .raise_for_error)
    wrong = hash_bytes(b"other content")
    with pytest.raises(InvalidInput, match="hashes to"):
        backend.write(wrong, iter([b"content"]), 7)
    assert not remote.local.exists(wrong)


# -- faults ------------------------------------------------------------------------------


def test_connection_errors_and_503_are_retried(remote: Remote, tmp_path: Path) -> None:
    transport = Flaky(refuse=2, unavailable=1)
    store = remote.store(tmp_path, transport=transport)
    data = os.urandom(10_000)
    store.put_bytes(data)  # claim: refused, refused, 503, then answered
    assert transport.methods() == ["POST"] * 4 + ["PUT"]
    transport.refuse = 2
    assert store.read_bytes(hash_bytes(data)) == data


def test_a_server_that_never_answers_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    store = http_blob_store(httpx2.Client(timeout=2), url, tmp_path,
                            raise_for_error=RemoteSession(url, None).raise_for_error,
                            retries=2, backoff_s=0.01)
    with pytest.raises(StoreUnavailable, match="did not answer HEAD /api/v1/blobs/"):
        store.exists("2" * 64)


def test_a_cut_download_resumes_where_it_stopped(remote: Remote, tmp_path: Path) -> None:
    data = os.urandom(4 * CHUNK_SIZE + 99)
    digest = remote.local.put_bytes(data).digest
    transport = Flaky(cut_downloads=2, cut_at=CHUNK_SIZE + 1000)
    store = remote.store(tmp_path, transport=transport)
    assert store.read_bytes(digest) == data  # verified whole
    gets = [(m, r) for m, _, r in transport.seen if m == "GET"]
    assert gets == [("GET", None), ("GET", f"bytes={CHUNK_SIZE + 1000}-"),
                    ("GET", f"bytes={2 * (CHUNK_SIZE + 1000)}-")]

    # Breaks in a row with no progress, more than the retries: a clear error.
    transport.cut_downloads, transport.cut_at = 10, 0
    with pytest.raises(StoreUnavailable, match="broke off at byte"):
        store.fetch(digest, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_a_cut_upload_stores_nothing_and_is_not_resent(remote: Remote,
                                                       tmp_path: Path) -> None:
    transport = Flaky(cut_uploads=1, cut_at=CHUNK_SIZE)
    store = remote.store(tmp_path, transport=transport)
    src = tmp_path / "big.bin"
    data = os.urandom(5 * CHUNK_SIZE)
    src.write_bytes(data)
    with pytest.raises(StoreUnavailable, match="did not answer PUT"):
        store.put_file(src)
    assert transport.methods() == ["POST", "PUT"]  # the body cannot be replayed
    digest = hash_bytes(data)
    assert not remote.local.exists(digest)
    deadline = time.monotonic() + 10  # the server drops its staging file on disconnect
    while list((remote.home / "artifacts" / "tmp").glob("stage-*")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert store.put_file(src).digest == digest  # a new call succeeds
    assert remote.local.read_bytes(digest) == data


def test_a_file_changed_while_uploading_stores_nothing(remote: Remote, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    store = remote.store(tmp_path)
    src = tmp_path / "moving.bin"
    src.write_bytes(os.urandom(3 * CHUNK_SIZE))
    original = BlobStore._read_chunks
    passes = []

    def read_chunks(self: BlobStore, f: Any) -> Iterator[bytes]:
        passes.append(1)
        for i, chunk in enumerate(original(self, f)):
            if len(passes) == 2 and i == 2:  # the upload pass sees other bytes
                chunk = b"\0" * len(chunk)
            yield chunk

    monkeypatch.setattr(BlobStore, "_read_chunks", read_chunks)
    with pytest.raises(IntegrityError, match="changed while it was being stored"):
        store.put_file(src)
    assert not remote.local.exists(hash_bytes(src.read_bytes()))


def test_a_corrupt_blob_on_the_server_fails_verification(remote: Remote,
                                                          tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 5)
    digest = remote.local.put_bytes(data).digest
    path = remote.home / "artifacts" / "blobs" / digest[:2] / digest[2:]
    path.chmod(0o600)
    raw = bytearray(path.read_bytes())
    raw[CHUNK_SIZE + 3] ^= 0x01
    path.write_bytes(bytes(raw))
    store = remote.store(tmp_path)
    with pytest.raises(IntegrityError, match="is corrupt"):
        store.read_bytes(digest)
    with pytest.raises(IntegrityError):
        store.fetch(digest, tmp_path / "corrupt")
    assert not (tmp_path / "corrupt").exists()


# -- a server whose artifact root is an object store -------------------------------------


def test_a_server_on_s3_streams_through_staging_and_ranges(s3: s3_fixtures.S3Bucket,
                                                           tmp_path: Path) -> None:
    """Uploads go to a local staging file, then to S3; ranges of a blob are read from S3
    (no local path to seek); what the client reads is verified."""
    home = tmp_path / "server"
    auth = Workspace.at(home).stores.auth
    auth.create_user("wendy", "writer")
    token = auth.create_token("wendy").token
    with running_server(home, tmp_path, artifacts=s3.url("blobs")) as server:
        session = RemoteSession(server.url, token)
        store = http_blob_store(session.client, server.url, tmp_path / "staging",
                                raise_for_error=session.raise_for_error, backoff_s=0.01)
        src = tmp_path / "model.bin"
        data = os.urandom(3 * CHUNK_SIZE + 11)
        src.write_bytes(data)
        info = store.put_file(src)
        on_s3 = BlobStore(s3.url("blobs"))
        assert on_s3.read_bytes(info.digest) == data
        assert store.read_bytes(info.digest) == data
        assert store.put_file(src) == info  # claimed, not sent again
        start = CHUNK_SIZE + 5
        part = session.client.get(f"{server.url}/api/v1/blobs/{info.digest}",
                                  headers={"Range": f"bytes={start}-{start + 99}"})
        assert part.status_code == 206 and part.content == data[start:start + 100]
        transport = Flaky(cut_downloads=1, cut_at=CHUNK_SIZE + 1000)
        flaky = remote_store(server.url, token, tmp_path, transport)
        assert flaky.read_bytes(info.digest) == data  # resumed with a range from S3
        assert [r for m, _, r in transport.seen if m == "GET"] == [
            None, f"bytes={CHUNK_SIZE + 1000}-"]
        wrong = hash_bytes(b"not this")
        put = session.client.put(f"{server.url}/api/v1/blobs/{wrong}", content=b"this",
                                 headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 422
        assert not on_s3.exists(wrong)


def remote_store(url: str, token: str, tmp_path: Path,
                 transport: httpx2.BaseTransport) -> BlobStore:
    client = httpx2.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30,
                           transport=transport)
    return http_blob_store(client, url, tmp_path / "staging",
                           raise_for_error=RemoteSession(url, None).raise_for_error,
                           retries=3, backoff_s=0.01)
