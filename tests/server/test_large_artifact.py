"""A 2 GiB artifact round-trips through a real ``ratchet server`` and the remote blob
store with bounded server memory: the body streams to disk on the way in and from disk
on the way out, so the server's peak RSS grows by a few chunk buffers, not the artifact.

The content is generated on the fly from a seed (never whole in memory, nor on the
client's disk). ``RATCHET_LARGE_ARTIFACT_BYTES`` sets the size (default 2 GiB);
``bench/artifact_bench.py`` times the same round trip.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ratchet.artifacts.http_backend import http_blob_store
from ratchet.hashing import CHUNK_SIZE, hasher
from ratchet.remote.session import RemoteSession
from ratchet.workspace import Workspace
from tests.server.test_artifact_routes import running_server

SIZE = int(os.environ.get("RATCHET_LARGE_ARTIFACT_BYTES", 2 << 30))
MAX_GROWTH = 200 << 20  # what the server may add to its peak RSS for the round trip
_POOL = 64 << 20


def seeded_chunks(size: int, seed: int = 16) -> Iterator[bytes]:
    """``size`` bytes in CHUNK_SIZE pieces, the same for the same seed: slices of a
    seeded 64 MiB random pool at chunk-dependent offsets, each led by its index (so no
    two chunks are equal and a misplaced one changes the digest)."""
    pool = np.random.default_rng(seed).bytes(_POOL)
    view = memoryview(pool)
    index = 0
    sent = 0
    while sent < size:
        n = min(CHUNK_SIZE, size - sent)
        offset = (index * 7_919 * 4_096) % (_POOL - CHUNK_SIZE)
        chunk = index.to_bytes(8, "little") + view[offset:offset + n - 8].tobytes()
        yield chunk[:n]
        sent += n
        index += 1


def seeded_digest(size: int, seed: int = 16) -> str:
    h = hasher()
    for chunk in seeded_chunks(size, seed):
        h.update(chunk)
    return h.hexdigest()


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of ``pid`` in bytes, from /proc."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def _reset_peak(pid: int) -> bool:
    """Reset ``pid``'s VmHWM to its current RSS (Linux >= 4.0); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Sampler:
    """The peak VmRSS of a process, sampled every 50 ms on a thread (a second witness
    beside VmHWM)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status(self.pid)["VmRSS"])
            self._stop.wait(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_large_artifact_round_trips_with_bounded_server_memory(
        tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    home = tmp_path / "server"
    auth = Workspace.at(home).stores.auth
    auth.create_user("wendy", "writer")
    token = auth.create_token("wendy").token
    with running_server(home, tmp_path) as server:
        pid = server.process.pid
        session = RemoteSession(server.url, token)
        store = http_blob_store(session.client, server.url, tmp_path / "staging",
                                raise_for_error=session.raise_for_error)
        # Warm up every code path (imports, first-use caches) before the baseline.
        warm = store.put_bytes(os.urandom(3 * CHUNK_SIZE))
        assert len(store.read_bytes(warm.digest)) == 3 * CHUNK_SIZE
        baseline = _status(pid)["VmRSS"]
        reset = _reset_peak(pid)
        before_hwm = _status(pid)["VmHWM"]

        started = time.perf_counter()
        digest = seeded_digest(SIZE)
        hashed = time.perf_counter()
        backend = store._backend
        with Sampler(pid) as sampler:
            assert not store.claim(digest)
            backend.write(digest, seeded_chunks(SIZE), SIZE)
            uploaded = time.perf_counter()
            assert store.size(digest) == SIZE
            received = 0
            with store.open(digest) as f:  # verified against the digest at the end
                while chunk := f.read(CHUNK_SIZE):
                    received += len(chunk)
            downloaded = time.perf_counter()
        assert received == SIZE
        peak = _status(pid)["VmHWM"]
        blob = home / "artifacts" / "blobs" / digest[:2] / digest[2:]
        assert blob.stat().st_size == SIZE
        blob.unlink()  # free the disk now, not when pytest prunes its temp dirs

    growth = (peak - baseline) if reset else (peak - before_hwm)
    numbers = {
        "bytes": SIZE, "hash_s": round(hashed - started, 1),
        "upload_s": round(uploaded - hashed, 1), "download_s": round(downloaded - uploaded, 1),
        "upload_MBps": round(SIZE / (uploaded - hashed) / 1e6),
        "download_MBps": round(SIZE / (downloaded - uploaded) / 1e6),
        "server_rss_baseline_MB": round(baseline / 1e6, 1),
        "server_peak_growth_MB": round(growth / 1e6, 1),
        "server_sampled_peak_growth_MB": round((sampler.peak - baseline) / 1e6, 1),
    }
    for key, value in numbers.items():
        record_property(key, value)
    print(numbers)
    assert growth < MAX_GROWTH, numbers
    assert sampler.peak - baseline < MAX_GROWTH, numbers
