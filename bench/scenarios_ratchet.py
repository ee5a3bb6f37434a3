"""ratchet side of the benchmark: ``python bench/scenarios_ratchet.py SCENARIO --n N --workdir DIR``.

Runs in the project's virtualenv, against a SQLite file in ``DIR``, and prints one JSON
line. Everything is timed in-process with ``time.perf_counter`` after a warm-up.
"""

from __future__ import annotations

import math
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from common import (
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    WARMUP_POINTS,
    batch_points,
    emit,
    expected_matches,
    log,
    parse_args,
    seed_runs,
    single_values,
    summarize,
    timed,
)

import ratchet
from ratchet.config import Settings
from ratchet.tracking.client import TrackingClient
from ratchet.workspace import Workspace


def make_client(workdir: Path, sync: str = "default") -> TrackingClient:
    settings = Settings(home=workdir, db_url=f"sqlite:///{workdir / 'ratchet.db'}",
                        artifacts_uri=str(workdir / "artifacts"))
    client = TrackingClient(Workspace(settings))
    if sync == "full":
        from sqlalchemy import event

        engine = client.store.db.engine

        @event.listens_for(engine, "connect")
        def _full_sync(dbapi_conn: Any, _record: Any) -> None:  # runs after ratchet's own
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        engine.dispose()  # connections opened from now on get the listener
    return client


def sqlite_settings(client: TrackingClient) -> dict[str, Any]:
    raw = client.store.db.engine.raw_connection()
    try:
        cur = raw.cursor()
        journal = cur.execute("PRAGMA journal_mode").fetchone()[0]
        sync = cur.execute("PRAGMA synchronous").fetchone()[0]
        cur.close()
    finally:
        raw.close()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return {"journal_mode": journal, "synchronous": names.get(sync, str(sync))}


def log_metric_single(n: int, workdir: Path, sync: str) -> dict[str, Any]:
    client = make_client(workdir, sync)
    exp = client.create_experiment("bench-single").name
    warm = client.create_run(exp).run_id
    for i, v in enumerate(single_values(WARMUP_POINTS)):
        client.log_metric(warm, "loss", v, step=i)
    run_id = client.create_run(exp).run_id
    values = single_values(n)

    def body() -> None:
        for i, v in enumerate(values):
            client.log_metric(run_id, "loss", v, step=i)

    elapsed, _ = timed(body)
    stored = len(client.metric_history(run_id, "loss"))
    if stored != n:
        raise SystemExit(f"expected {n} stored points, found {stored}")
    return {"n": n, "elapsed_s": elapsed, "rate": n / elapsed, "unit": "points/s",
            "stored_points": stored, "sqlite": sqlite_settings(client)}


def log_batch(n: int, workdir: Path, reps: int) -> dict[str, Any]:
    client = make_client(workdir)
    exp = client.create_experiment("bench-batch").name
    points = batch_points(n)
    client.log_batch(client.create_run(exp).run_id, batch_points(min(n, 1000)))  # warm-up
    times = []
    for _ in range(reps):
        run_id = client.create_run(exp).run_id
        elapsed, _ = timed(partial(client.log_batch, run_id, points))
        times.append(elapsed)
        stored = len(client.metric_history(run_id, "m0"))
        if stored != math.ceil(n / 10):
            raise SystemExit(f"expected {math.ceil(n / 10)} points of m0, found {stored}")
    out = summarize(times)
    return {"n": n, "calls_per_rep": 1, **out, "rate": n / out["median_s"], "unit": "points/s",
            "sqlite": sqlite_settings(client)}


def seed(client: TrackingClient, exp_id: str, n: int, chunk: int = 10_000) -> None:
    """Bulk SQL into ratchet's tables: the rows ``create_run(code=None)`` + ``log_params``
    + ``log_batch`` would write (runs, params, metrics history and latest_metrics)."""
    from sqlalchemy import insert

    from ratchet.ids import new_id
    from ratchet.store import schema as t

    runs: list[dict[str, Any]] = []
    params: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []

    def flush() -> None:
        with client.store.db.write() as conn:
            conn.execute(insert(t.runs), runs)
            conn.execute(insert(t.params), params)
            conn.execute(insert(t.metrics), metrics)
            conn.execute(insert(t.latest_metrics), metrics)
        runs.clear()
        params.clear()
        metrics.clear()

    for r in seed_runs(n):
        run_id = new_id()
        runs.append({
            "run_id": run_id, "experiment_id": exp_id, "parent_run_id": None,
            "name": f"run-{run_id[-8:]}", "status": "finished", "start_time": r.start_time,
            "end_time": r.start_time + 1000, "error": None, "user": None, "host": None,
            "entry_point": None, "git_commit": None, "git_branch": None, "git_dirty": None,
            "git_diff_hash": None, "python_version": None, "packages": None,
        })
        params.append({"run_id": run_id, "key": "C", "value": r.C})
        params.append({"run_id": run_id, "key": "kernel", "value": r.kernel})
        for key, value in (("auc", r.auc), ("loss", r.loss)):
            metrics.append({"run_id": run_id, "key": key, "value": value, "is_nan": False,
                            "step": 0, "timestamp": r.start_time + 500})
        if len(runs) >= chunk:
            flush()
    if runs:
        flush()


def search_runs(n: int, workdir: Path, reps: int) -> dict[str, Any]:
    client = make_client(workdir)
    exp = client.create_experiment("bench-search")
    seed_s, _ = timed(lambda: seed(client, exp.experiment_id, n))
    log(f"ratchet: seeded {n} runs in {seed_s:.1f}s")

    def query() -> list[Any]:
        found, _token = client.search_runs(SEARCH_FILTER, experiments=[exp.name],
                                           order_by=list(SEARCH_ORDER_BY),
                                           max_results=SEARCH_MAX_RESULTS)
        return found

    warmup_s, found = timed(query)
    times = []
    for _ in range(reps):
        elapsed, found = timed(query)
        times.append(elapsed)
    expected = min(expected_matches(n), SEARCH_MAX_RESULTS)
    aucs = [r.metrics["auc"] for r in found]
    correct = (len(found) == expected and aucs == sorted(aucs, reverse=True)
               and all(r.params.get("C") == "1.0" and r.metrics["auc"] > 0.9 for r in found))
    if not correct:
        raise SystemExit(f"wrong search result: {len(found)} runs, expected {expected}")
    out = summarize(times)
    return {"n": n, "seed_s": seed_s, "warmup_s": warmup_s, **out, "n_results": len(found),
            "unit": "s", "filter": SEARCH_FILTER, "order_by": list(SEARCH_ORDER_BY),
            "sqlite": sqlite_settings(client)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args("ratchet", argv)
    started = time.perf_counter()
    if args.scenario == "log_metric_single":
        result = log_metric_single(args.n, args.workdir, args.sync)
    elif args.scenario == "log_batch":
        result = log_batch(args.n, args.workdir, args.reps)
    else:
        result = search_runs(args.n, args.workdir, args.reps)
    emit({"tool": "ratchet", "version": ratchet.__version__, "scenario": args.scenario,
          "sync": args.sync, "python": sys.version.split()[0],
          "total_s": time.perf_counter() - started, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
