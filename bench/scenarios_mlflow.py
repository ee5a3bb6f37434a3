"""MLflow side of the benchmark: ``python bench/scenarios_mlflow.py SCENARIO --n N --workdir DIR``.

Runs in ``bench/.venv-mlflow`` (never in the project's virtualenv), against
``sqlite:///DIR/mlflow.db`` (MLflow's own SqlAlchemyStore, synchronous logging), and prints
one JSON line. The caller sets ``MLFLOW_DISABLE_TELEMETRY=true`` and ``DO_NOT_TRACK=1``.
"""

from __future__ import annotations

import math
import os
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

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

MAX_METRICS_PER_CALL = 1000  # MLflow rejects larger log_batch calls (its client chunks too)


def tracking_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'mlflow.db'}"


def sqlite_settings(client: MlflowClient) -> dict[str, Any]:
    engine = client._tracking_client.store.engine
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        journal = cur.execute("PRAGMA journal_mode").fetchone()[0]
        sync = cur.execute("PRAGMA synchronous").fetchone()[0]
        cur.close()
    finally:
        raw.close()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return {"journal_mode": journal, "synchronous": names.get(sync, str(sync))}


def log_metric_single(n: int, workdir: Path) -> dict[str, Any]:
    uri = tracking_uri(workdir)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-single")
    with mlflow.start_run():
        for i, v in enumerate(single_values(WARMUP_POINTS)):
            mlflow.log_metric("loss", v, step=i, synchronous=True)
    values = single_values(n)
    with mlflow.start_run() as run:
        run_id = run.info.run_id

        def body() -> None:
            for i, v in enumerate(values):
                mlflow.log_metric("loss", v, step=i, synchronous=True)

        elapsed, _ = timed(body)
    client = MlflowClient(uri)
    stored = len(client.get_metric_history(run_id, "loss"))
    if stored != n:
        raise SystemExit(f"expected {n} stored points, found {stored}")
    return {"n": n, "elapsed_s": elapsed, "rate": n / elapsed, "unit": "points/s",
            "stored_points": stored, "sqlite": sqlite_settings(client)}


def _log_batch(client: MlflowClient, run_id: str, metrics: list[Metric]) -> int:
    calls = 0
    for start in range(0, len(metrics), MAX_METRICS_PER_CALL):
        client.log_batch(run_id, metrics=metrics[start:start + MAX_METRICS_PER_CALL])
        calls += 1
    return calls


def log_batch(n: int, workdir: Path, reps: int) -> dict[str, Any]:
    client = MlflowClient(tracking_uri(workdir))
    exp_id = client.create_experiment("bench-batch")
    metrics = [Metric(key, value, ts, step) for key, value, step, ts in batch_points(n)]
    warm = [Metric(key, value, ts, step) for key, value, step, ts in batch_points(min(n, 1000))]
    _log_batch(client, client.create_run(exp_id).info.run_id, warm)
    times = []
    calls = 0
    for _ in range(reps):
        run_id = client.create_run(exp_id).info.run_id
        elapsed, calls = timed(partial(_log_batch, client, run_id, metrics))
        times.append(elapsed)
        stored = len(client.get_metric_history(run_id, "m0"))
        if stored != math.ceil(n / 10):
            raise SystemExit(f"expected {math.ceil(n / 10)} points of m0, found {stored}")
    out = summarize(times)
    return {"n": n, "calls_per_rep": calls, **out, "rate": n / out["median_s"],
            "unit": "points/s", "sqlite": sqlite_settings(client)}


def seed(client: MlflowClient, exp_id: str, n: int, chunk: int = 10_000) -> None:
    """Bulk SQL into MLflow's tables: the rows ``MlflowClient.create_run`` + ``log_batch``
    would write (runs, the mlflow.runName tag, params, metrics and latest_metrics)."""
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    store = client._tracking_client.store
    artifact_root = client.get_experiment(exp_id).artifact_location
    runs: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    params: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []

    def flush() -> None:
        with store.engine.begin() as conn:
            conn.execute(SqlRun.__table__.insert(), runs)
            conn.execute(SqlTag.__table__.insert(), tags)
            conn.execute(SqlParam.__table__.insert(), params)
            conn.execute(SqlMetric.__table__.insert(), metrics)
            conn.execute(SqlLatestMetric.__table__.insert(), metrics)
        for rows in (runs, tags, params, metrics):
            rows.clear()

    import uuid

    for r in seed_runs(n):
        run_id = uuid.uuid4().hex
        name = f"run-{run_id[-8:]}"
        runs.append({
            "run_uuid": run_id, "name": name, "source_type": "UNKNOWN", "source_name": "",
            "entry_point_name": "", "user_id": "unknown", "status": "FINISHED",
            "start_time": r.start_time, "end_time": r.start_time + 1000, "deleted_time": None,
            "source_version": "", "lifecycle_stage": "active",
            "artifact_uri": f"{artifact_root}/{run_id}/artifacts", "experiment_id": int(exp_id),
        })
        tags.append({"run_uuid": run_id, "key": MLFLOW_RUN_NAME, "value": name})
        params.append({"run_uuid": run_id, "key": "C", "value": r.C})
        params.append({"run_uuid": run_id, "key": "kernel", "value": r.kernel})
        for key, value in (("auc", r.auc), ("loss", r.loss)):
            metrics.append({"run_uuid": run_id, "key": key, "value": value, "is_nan": False,
                            "step": 0, "timestamp": r.start_time + 500})
        if len(runs) >= chunk:
            flush()
    if runs:
        flush()


def search_runs(n: int, workdir: Path, reps: int) -> dict[str, Any]:
    client = MlflowClient(tracking_uri(workdir))
    exp_id = client.create_experiment("bench-search")
    seed_s, _ = timed(lambda: seed(client, exp_id, n))
    log(f"mlflow: seeded {n} runs in {seed_s:.1f}s")

    def query() -> list[Any]:
        return list(client.search_runs([exp_id], filter_string=SEARCH_FILTER,
                                       order_by=list(SEARCH_ORDER_BY),
                                       max_results=SEARCH_MAX_RESULTS))

    warmup_s, found = timed(query)
    times = []
    for _ in range(reps):
        elapsed, found = timed(query)
        times.append(elapsed)
    expected = min(expected_matches(n), SEARCH_MAX_RESULTS)
    aucs = [r.data.metrics["auc"] for r in found]
    correct = (len(found) == expected and aucs == sorted(aucs, reverse=True)
               and all(r.data.params.get("C") == "1.0" and r.data.metrics["auc"] > 0.9
                       for r in found))
    if not correct:
        raise SystemExit(f"wrong search result: {len(found)} runs, expected {expected}")
    out = summarize(times)
    return {"n": n, "seed_s": seed_s, "warmup_s": warmup_s, **out, "n_results": len(found),
            "unit": "s", "filter": SEARCH_FILTER, "order_by": list(SEARCH_ORDER_BY),
            "sqlite": sqlite_settings(client)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args("mlflow", argv)
    os.chdir(args.workdir)  # MLflow's default artifact root (./mlruns) lands in the temp dir
    started = time.perf_counter()
    if args.scenario == "log_metric_single":
        result = log_metric_single(args.n, args.workdir)
    elif args.scenario == "log_batch":
        result = log_batch(args.n, args.workdir, args.reps)
    else:
        result = search_runs(args.n, args.workdir, args.reps)
    emit({"tool": "mlflow", "version": mlflow.__version__, "scenario": args.scenario,
          "python": sys.version.split()[0], "total_s": time.perf_counter() - started,
          **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
