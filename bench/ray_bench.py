"""Ray executor benchmark: independent 1-second tasks on a private 2-CPU Ray cluster.

    .venv/bin/python bench/ray_bench.py [--tasks 16] [--seconds 1.0] [--cpus 2]
                                        [--only executor_fanout --only pipeline_fanout]

Prints one JSON document on stdout (progress on stderr). The cluster is started here
the way the tests start theirs (``ray start --head --block`` on 127.0.0.1, in its own
session, with its own temp dir) and stopped by killing exactly its processes.

Scenarios (``SCENARIOS``; add one by writing a function ``(address, args) -> dict``):

- ``executor_fanout``: ``--tasks`` tasks of ``time.sleep(--seconds)`` submitted at once to
  ``RayExecutor``. The floor is ``ceil(tasks / cpus) * seconds`` (8 s for 16 x 1 s on
  2 CPUs); the goal is a wall time close to it.
- ``pipeline_fanout``: the same work as a ratchet pipeline: ``--tasks`` independent steps
  (``cpus=1``) that sleep and return an int, then a step summing them, run with
  ``executor=RayExecutor(address)`` and ``cache=False`` in a fresh ratchet store. The
  floor is the same plus the summing step; the rest is pipeline bookkeeping (metadata
  writes, output storage, tracking runs).

Each scenario does one untimed warm-up first (connecting, starting Ray's worker
processes), then the timed run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CLUSTER_START_TIMEOUT_S = 120.0


def progress(message: str) -> None:
    print(f"[ray_bench] {message}", file=sys.stderr, flush=True)


# -- the cluster -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _session_pids(sid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
            if os.getsid(int(entry)) == sid and state != "Z":
                found.add(int(entry))
        except OSError:  # exited while we looked
            pass
    return found


@contextlib.contextmanager
def ray_cluster(cpus: int) -> Iterator[str]:
    """A head node on 127.0.0.1 with ``cpus`` CPUs; yields its address, then kills it."""
    port = _free_port()
    temp_dir = Path(tempfile.mkdtemp(prefix="rt-ray-"))  # short: Ray's socket paths
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.update(RAY_USAGE_STATS_ENABLED="0",
               # keep 127.0.0.1: on Linux Ray otherwise binds the machine's address
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               # `ray start` enables tokens when ~/.ray/auth_token exists; drivers given
               # an explicit address do not: pin it
               RAY_AUTH_MODE="disabled")
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
               "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={cpus}",
               "--include-dashboard=false", "--disable-usage-stats",
               f"--temp-dir={temp_dir}", "--object-store-memory=200000000"]
    log_path = temp_dir / "ray-start.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + CLUSTER_START_TIMEOUT_S
        while "Ray runtime started" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Ray cluster did not start:\n"
                                   + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        # SIGKILL by pid, the whole session: SIGTERM makes `ray start` drain for 30 s
        deadline = time.monotonic() + 30
        while (left := _session_pids(proc.pid)) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        proc.wait(timeout=10)
        shutil.rmtree(temp_dir, ignore_errors=True)
        if left:
            progress(f"WARNING: Ray processes {sorted(left)} survived")


# -- scenarios -------------------------------------------------------------------------


def sleep_task(seconds: float) -> Callable[[], tuple[float, float]]:
    def task() -> tuple[float, float]:
        start = time.time()
        time.sleep(seconds)
        return start, time.time()
    return task


def max_concurrency(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def executor_fanout(address: str, args: argparse.Namespace) -> dict[str, Any]:
    from ratchet.executors.ray import RayExecutor

    floor = math.ceil(args.tasks / args.cpus) * args.seconds
    with RayExecutor(address) as executor:
        started = time.perf_counter()
        warm = [executor.submit(sleep_task(0.0), name=f"warm-up {i}") for i in range(args.cpus)]
        for future in warm:
            future.result()
        warm_up_s = time.perf_counter() - started
        progress(f"executor_fanout: warm-up {warm_up_s:.2f} s; {args.tasks} x "
                 f"{args.seconds:g} s on {executor.parallelism} CPUs")
        started = time.perf_counter()
        futures = [executor.submit(sleep_task(args.seconds), name=f"sleep {i}")
                   for i in range(args.tasks)]
        submitted_s = time.perf_counter() - started
        intervals = [future.result() for future in futures]
        wall = time.perf_counter() - started
    return {
        "what": f"{args.tasks} independent tasks of time.sleep({args.seconds:g}) through "
                f"RayExecutor on {args.cpus} CPUs",
        "wall_s": round(wall, 3),
        "floor_s": floor,
        "overhead_s": round(wall - floor, 3),
        "efficiency": round(floor / wall, 3),
        "submit_all_s": round(submitted_s, 4),
        "max_concurrent_tasks": max_concurrency(intervals),
        "warm_up_s": round(warm_up_s, 3),
        "goal": f"wall_s close to floor_s ({floor:g} s)",
    }


def pipeline_fanout(address: str, args: argparse.Namespace) -> dict[str, Any]:
    import ratchet
    from ratchet.executors.ray import RayExecutor

    seconds = args.seconds

    @ratchet.step(cpus=1)
    def nap(i: int) -> int:
        time.sleep(seconds)
        return i

    @ratchet.step(cpus=1)
    def total(values: list[int]) -> int:
        return sum(values)

    @ratchet.pipeline
    def fanout(n: int = args.tasks) -> Any:
        return total([nap(i) for i in range(n)])

    floor = math.ceil(args.tasks / args.cpus) * seconds
    with RayExecutor(address) as executor:
        started = time.perf_counter()
        fanout.run(executor=executor, cache=False, n=args.cpus)  # warm-up, smaller
        warm_up_s = time.perf_counter() - started
        progress(f"pipeline_fanout: warm-up {warm_up_s:.2f} s; {args.tasks} steps x "
                 f"{seconds:g} s + a summing step")
        started = time.perf_counter()
        result = fanout.run(executor=executor, cache=False)
        wall = time.perf_counter() - started
    expected = sum(range(args.tasks))
    if result.output != expected:
        raise RuntimeError(f"pipeline returned {result.output!r}, expected {expected}")
    steps = [s for s in result.steps if s.started_at is not None and s.ended_at is not None]
    naps = [s for s in steps if s.node != "total"]
    return {
        "what": f"pipeline of {args.tasks} independent steps (time.sleep({seconds:g}), "
                f"cpus=1) + 1 summing step, RayExecutor on {args.cpus} CPUs, cache=False",
        "wall_s": round(wall, 3),
        "floor_s": floor,
        "overhead_s": round(wall - floor, 3),
        "efficiency": round(floor / wall, 3),
        "steps": len(result.steps),
        "status": result.status,
        "output": result.output,
        "max_concurrent_steps": max_concurrency(
            [(s.started_at / 1000, s.ended_at / 1000) for s in naps]),  # type: ignore[operator]
        "warm_up_s": round(warm_up_s, 3),
        "executor": getattr(result.record, "executor", None),
        "goal": f"wall_s close to floor_s ({floor:g} s)",
    }


SCENARIOS: dict[str, Callable[[str, argparse.Namespace], dict[str, Any]]] = {
    "executor_fanout": executor_fanout,
    "pipeline_fanout": pipeline_fanout,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS),
                        help="run only this scenario (repeatable)")
    args = parser.parse_args(argv)
    names = args.only or list(SCENARIOS)

    import ray

    workdir = Path(tempfile.mkdtemp(prefix="ratchet-ray-bench-"))
    # a fresh ratchet store for the pipeline scenario; nothing of the user's is touched
    os.environ["RATCHET_HOME"] = str(workdir / ".ratchet")
    for key in ("RATCHET_DB", "RATCHET_ARTIFACTS", "RATCHET_TRACKING_URI", "RAY_ADDRESS"):
        os.environ.pop(key, None)
    previous_cwd = os.getcwd()
    os.chdir(workdir)
    document: dict[str, Any] = {
        "benchmark": "ray_executor",
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(),
                    "load_average_1m": os.getloadavg()[0]},
        "versions": {"ray": ray.__version__},
        "cluster": {"cpus": args.cpus, "node_ip": "127.0.0.1",
                    "object_store_bytes": 200_000_000},
        "scenarios": {},
    }
    try:
        progress(f"starting a {args.cpus}-CPU Ray cluster on 127.0.0.1")
        started = time.perf_counter()
        with ray_cluster(args.cpus) as address:
            document["cluster"]["start_s"] = round(time.perf_counter() - started, 2)
            for name in names:
                progress(f"running {name}")
                try:
                    document["scenarios"][name] = SCENARIOS[name](address, args)
                except Exception as exc:  # report the failure, keep the other scenarios
                    document["scenarios"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                    progress(f"{name} failed: {type(exc).__name__}: {exc}")
                else:
                    result = document["scenarios"][name]
                    progress(f"{name}: {result['wall_s']} s (floor {result['floor_s']:g} s)")
    finally:
        os.chdir(previous_cwd)
        shutil.rmtree(workdir, ignore_errors=True)
    document["machine"]["load_average_1m_after"] = os.getloadavg()[0]
    print(json.dumps(document, indent=2))
    return 1 if any("error" in s for s in document["scenarios"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
