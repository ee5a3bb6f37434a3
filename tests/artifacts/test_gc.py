"""``ratchet.gc``: purged records free their blobs; a concurrent writer never loses one."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from ratchet.config import Settings
from ratchet.errors import InvalidInput
from ratchet.store.records import ArtifactEntry
from ratchet.tracking.client import TrackingClient
from ratchet.tracking.deletion import delete_experiment, delete_run
from ratchet.tracking.gc import gc, parse_age
from ratchet.workspace import Workspace

TWO_HOURS_AGO = time.time() - 7200


def _blob_path(client: TrackingClient, digest: str) -> Path:
    return Path(client.blobs.root) / "blobs" / digest[:2] / digest[2:]


def _age(path: Path, when: float = TWO_HOURS_AGO) -> None:
    os.utime(path, (when, when))


@pytest.fixture
def client(local_settings: Settings) -> TrackingClient:
    return TrackingClient(Workspace(local_settings))


def _logged(client: TrackingClient, run_id: str, content: bytes, name: str) -> str:
    info = client.blobs.put_bytes(content)
    client.store.record_artifacts(run_id, [ArtifactEntry(name, info.digest, info.size)])
    return info.digest


def test_gc_frees_the_blobs_of_purged_runs_only(client: TrackingClient) -> None:
    keep_run = client.create_run("e").run_id
    drop_run = client.create_run("e").run_id
    kept = _logged(client, keep_run, b"kept", "a.txt")
    shared = _logged(client, keep_run, b"shared", "s.txt")
    _logged(client, drop_run, b"shared", "s.txt")
    dropped = _logged(client, drop_run, b"dropped" * 1000, "b.txt")
    orphan = client.blobs.put_bytes(b"never recorded").digest
    for digest in (kept, shared, dropped, orphan):
        _age(_blob_path(client, digest))
    delete_run(drop_run, workspace=client.workspace)

    dry = gc(dry_run=True, workspace=client.workspace)
    assert dry.records.runs == [drop_run]
    assert sorted(dry.blobs) == sorted([dropped, orphan])
    assert dry.blob_bytes == 7000 + len(b"never recorded")
    assert all(_blob_path(client, d).exists() for d in (dropped, orphan))  # nothing changed
    assert client.store.get_run(drop_run, include_deleted=True).run_id == drop_run

    done = gc(workspace=client.workspace)
    assert done.records.runs == [drop_run] and sorted(done.blobs) == sorted(dry.blobs)
    assert not _blob_path(client, dropped).exists()
    assert not _blob_path(client, orphan).exists()
    assert client.read_artifact(keep_run, "a.txt") == b"kept"
    assert client.read_artifact(keep_run, "s.txt") == b"shared"
    assert gc(workspace=client.workspace).blobs == []  # nothing left to do


def test_unreferenced_blobs_younger_than_the_grace_are_kept(client: TrackingClient) -> None:
    fresh = client.blobs.put_bytes(b"just written").digest
    report = gc(workspace=client.workspace)  # default grace: 1 hour
    assert report.blobs == [] and report.kept_recent_blobs == 1
    assert _blob_path(client, fresh).exists()
    _age(_blob_path(client, fresh), time.time() - 600)
    assert gc(grace="5m", workspace=client.workspace).blobs == [fresh]


def test_deleted_but_not_purged_records_keep_their_blobs(client: TrackingClient) -> None:
    run = client.create_run("e").run_id
    digest = _logged(client, run, b"x", "x")
    _age(_blob_path(client, digest))
    delete_experiment("e", workspace=client.workspace)
    report = gc(older_than="1h", workspace=client.workspace)  # deleted seconds ago: not yet purged
    assert report.records.runs == [] and report.blobs == []
    assert client.store.get_run(run, include_deleted=True).deleted_at is not None


def test_gc_leaves_files_that_are_not_blobs_alone(client: TrackingClient) -> None:
    root = Path(client.blobs.root)
    others = [root / "predictions" / "web" / "part-0.parquet", root / "reports" / "r.html",
              root / "blobs" / "zz" / "not-a-digest"]
    for path in others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        _age(path)
    gc(grace=0, workspace=client.workspace)
    assert all(p.exists() for p in others)


def test_a_concurrent_writer_never_loses_a_blob(client: TrackingClient) -> None:
    """A real writer thread re-logs the content of old unreferenced blobs (deduplicated:
    no new file is written) and logs new content while gc removes unreferenced blobs.
    Every blob a committed record refers to must survive."""
    contents = [f"orphan {i}".encode() * 50 for i in range(400)]
    for content in contents:
        _age(_blob_path(client, client.blobs.put_bytes(content).digest))
    run = client.create_run("e").run_id
    writer_client = TrackingClient(Workspace(client.settings))  # its own store handle, as a process has
    started, done = threading.Event(), threading.Event()
    recorded: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            # Newest first: gc walks the other way, so the two meet in the middle.
            for i, content in enumerate(reversed(contents)):
                recorded.append(_logged(writer_client, run, content, f"reused/{i}"))
                recorded.append(_logged(writer_client, run, f"new {i}".encode(), f"new/{i}"))
                if i == 5:
                    started.set()
                if done.is_set() and i > 20:
                    break
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert started.wait(60)
    # The grace covers a writer's store-then-commit (milliseconds here); the orphans
    # are two hours old, so only the writer's re-use can save them.
    report = gc(grace="1m", workspace=client.workspace)
    done.set()
    thread.join(120)
    assert not thread.is_alive() and not errors
    assert report.blobs  # it did remove orphans while the writer ran
    missing = [d for d in recorded if not client.blobs.exists(d)]
    assert missing == []
    for digest in recorded:
        client.blobs.read_bytes(digest)  # present and intact


def test_ages() -> None:
    assert parse_age("30d").total_seconds() == 30 * 86400
    assert parse_age("1.5h").total_seconds() == 5400
    assert parse_age(0).total_seconds() == 0
    with pytest.raises(InvalidInput, match="30d"):
        parse_age("soon")
    with pytest.raises(InvalidInput):
        parse_age(-1)


def test_an_fsspec_root_lists_and_removes_by_age(tmp_path: Path) -> None:
    from ratchet.artifacts import BlobStore

    blobs = BlobStore(f"memory://{tmp_path.name}-gc")
    digest = blobs.put_bytes(b"remote").digest
    [listed] = list(blobs.list_blobs())
    assert listed.digest == digest and listed.size == 6
    assert not blobs.remove_unused(digest, listed.mtime - 60)  # newer than the cutoff
    assert blobs.exists(digest)
    assert blobs.remove_unused(digest, time.time() + 60)
    assert not blobs.exists(digest) and list(blobs.list_blobs()) == []
