"""Artifact transfer through the team server: one large blob (default 2 GiB) uploaded and
downloaded through ``ratchet server`` by the remote blob store, with the server's memory.

Starts ``ratchet server --auth`` (one process) over a fresh workspace on a free loopback
port, warms it up, then times: hashing the content (the client needs the digest first),
the streamed PUT (the server hashes while writing and publishes once it matches), and a
streamed GET read through the verifying reader. The content is generated on the fly from
a seed, so neither side ever holds it whole. The server's peak RSS is its VmHWM, reset
after the warm-up (``/proc/PID/clear_refs``), and also sampled every 50 ms.

Prints one JSON document:

    python bench/artifact_bench.py [--bytes N] [--artifacts s3://…] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_POOL = 64 << 20


def seeded_chunks(size: int, chunk_size: int, seed: int = 16) -> Iterator[bytes]:
    """``size`` bytes: slices of a seeded 64 MiB pool at chunk-dependent offsets, each
    led by its index (as ``tests/server/test_large_artifact.py`` generates them)."""
    import numpy as np

    view = memoryview(np.random.default_rng(seed).bytes(_POOL))
    index = sent = 0
    while sent < size:
        n = min(chunk_size, size - sent)
        offset = (index * 7_919 * 4_096) % (_POOL - chunk_size)
        yield (index.to_bytes(8, "little") + view[offset:offset + n - 8].tobytes())[:n]
        sent += n
        index += 1


def proc_status(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, artifacts: str | None) -> tuple[subprocess.Popen[bytes], str]:
    from ratchet.workspace import Workspace

    ws = Workspace.at(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}
    env.update(RATCHET_HOME=str(home), RATCHET_DB=ws.settings.db_url,
               RATCHET_ARTIFACTS=artifacts or ws.settings.artifacts_uri)
    port = free_port()
    log = (home / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "ratchet.cli.main", "server", "--host",
                                "127.0.0.1", "--port", str(port), "--auth"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit((home / "server.log").read_text())
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return process, url
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("server did not start: "
                                 + (home / "server.log").read_text()) from None
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def measure(size: int, artifacts: str | None) -> dict[str, Any]:
    from ratchet.artifacts.http_backend import http_blob_store
    from ratchet.hashing import CHUNK_SIZE, hasher
    from ratchet.remote.session import RemoteSession
    from ratchet.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="ratchet-artifact-bench-") as tmp:
        home = Path(tmp) / "server"
        auth = Workspace.at(home).stores.auth
        auth.create_user("bench", "writer")
        token = auth.create_token("bench").token
        process, url = start_server(home, artifacts)
        try:
            pid = process.pid
            session = RemoteSession(url, token)
            store = http_blob_store(session.client, url, Path(tmp) / "staging",
                                    raise_for_error=session.raise_for_error)
            warm = store.put_bytes(os.urandom(3 * CHUNK_SIZE))
            store.read_bytes(warm.digest)
            baseline = proc_status(pid)["VmRSS"]
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS

            peak = [baseline]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], proc_status(pid)["VmRSS"])
                    done.wait(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            h = hasher()
            for chunk in seeded_chunks(size, CHUNK_SIZE):
                h.update(chunk)
            digest = h.hexdigest()
            t1 = time.perf_counter()
            store._backend.write(digest, seeded_chunks(size, CHUNK_SIZE), size)
            t2 = time.perf_counter()
            received = 0
            with store.open(digest) as f:
                while chunk := f.read(CHUNK_SIZE):
                    received += len(chunk)
            t3 = time.perf_counter()
            done.set()
            sampler.join()
            hwm = proc_status(pid)["VmHWM"]
            if received != size:
                raise SystemExit(f"downloaded {received} bytes of {size}")
        finally:
            stop(process)
    mb = size / 1e6
    return {
        "bytes": size, "artifacts": artifacts or "local directory",
        "hash_s": round(t1 - t0, 2), "upload_s": round(t2 - t1, 2),
        "download_s": round(t3 - t2, 2),
        "upload_MBps": round(mb / (t2 - t1), 1), "download_MBps": round(mb / (t3 - t2), 1),
        "server_rss_baseline_MB": round(baseline / 1e6, 1),
        "server_peak_rss_growth_MB": round((hwm - baseline) / 1e6, 1),
        "server_sampled_peak_growth_MB": round((peak[0] - baseline) / 1e6, 1),
        "client_peak_rss_MB": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=2 << 30)
    parser.add_argument("--artifacts", help="the server's artifact root (default: a local "
                        "directory in its workspace), e.g. s3://bucket/prefix")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    result = measure(args.bytes, args.artifacts)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
