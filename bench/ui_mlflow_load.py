"""The dashboard benchmark's data in MLflow's SQLite store (run in ``bench/.venv-mlflow-ui``).

    bench/.venv-mlflow-ui/bin/python bench/ui_mlflow_load.py ROOT --runs 100000
    bench/.venv-mlflow-ui/bin/python bench/ui_mlflow_load.py ROOT --small
    bench/.venv-mlflow-ui/bin/python bench/ui_mlflow_load.py ROOT --runs 2000 --api-runs

The same seeded values as ``bench/ui_data.py`` (its generators are imported; standard
library only), in ``ROOT/mlflow-<runs>-<steps>-<compare>-<key>/mlflow.db``, cached like the
ratchet build (``built.json`` inside when complete). Prints the manifest as JSON.

How each part is written:

- ``bench-ui-history`` (one run, ``loss`` with 1,000,000 steps) and ``bench-ui-compare``
  (100 runs, 20 params, 20 metrics, ``loss`` and ``accuracy`` with 1,000 steps each) go
  through MLflow's own API: ``MlflowClient(tracking_uri="sqlite:///...")`` ``create_run``,
  ``log_batch`` (at most 1,000 metrics per call: MLflow's limit), ``set_terminated``.
- ``bench-ui``'s 100,000 runs: ``MlflowClient`` at ~20-30 ms a run would take most of an
  hour on this machine, so by default they are bulk-loaded into MLflow's schema (MLflow's
  own ``SqlAlchemyStore`` creates the tables and the experiment; then the rows
  ``create_run`` + ``log_batch`` + ``set_terminated`` would write: ``runs``, the
  ``mlflow.runName`` tag, ``params``, ``metrics``, ``latest_metrics``),
  as ``bench/server_scenarios/populate_mlflow.py`` does. ``--api-runs`` writes them through
  ``MlflowClient`` instead (honest but slow); the manifest records which (``runs_via``)
  and the API's rate measured on the first runs (``api_runs_per_s``) either way.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ui_data as d  # standard library only

API_PROBE_RUNS = 200  # runs written through MlflowClient to measure its rate
BULK_CHUNK = 5_000
MAX_METRICS_PER_CALL = 1_000  # MLflow's log_batch limit


def log(message: str) -> None:
    print(f"[ui_mlflow_load] {message}", file=sys.stderr, flush=True)


def folder(root: Path, runs: int, steps: int, compare: int) -> Path:
    import mlflow

    return root / f"mlflow-{runs}-{steps}-{compare}-{d.cache_key()}-{mlflow.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--runs", type=int, default=d.DEFAULT_RUNS)
    parser.add_argument("--history-steps", type=int, default=d.DEFAULT_HISTORY_STEPS)
    parser.add_argument("--compare-runs", type=int, default=d.DEFAULT_COMPARE_RUNS)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--api-runs", action="store_true",
                        help="write bench-ui's runs through MlflowClient too (slow)")
    args = parser.parse_args(argv)
    if args.small:
        args.runs, args.history_steps, args.compare_runs = (
            d.SMALL["runs"], d.SMALL["history_steps"], d.SMALL["compare_runs"])
    root = args.root.expanduser().resolve()
    final = folder(root, args.runs, args.history_steps, args.compare_runs)
    if (final / "built.json").exists():
        doc = json.loads((final / "built.json").read_text())
        print(json.dumps({**doc, "cached": True}))
        return 0
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    doc = load(partial, args.runs, args.history_steps, args.compare_runs, args.api_runs)
    (partial / "built.json").write_text(json.dumps(doc, indent=2) + "\n")
    partial.rename(final)
    doc = {**doc, "home": str(final), "db_url": f"sqlite:///{final / 'mlflow.db'}",
           "artifacts": str(final / "artifacts")}
    (final / "built.json").write_text(json.dumps(doc, indent=2) + "\n")
    log(f"done in {doc['build_s']:.0f}s: {final}")
    print(json.dumps({**doc, "cached": False}))
    return 0


def load(home: Path, runs: int, steps: int, compare_n: int, api_runs: bool) -> dict[str, Any]:
    started = time.perf_counter()
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    db_url = f"sqlite:///{home / 'mlflow.db'}"
    artifacts = (home / "artifacts").as_uri()
    client = MlflowClient(tracking_uri=db_url)
    ids = {name: client.create_experiment(name, artifact_location=f"{artifacts}/{name}")
           for name in (d.EXPERIMENT, d.HISTORY_EXPERIMENT, d.COMPARE_EXPERIMENT)}
    phases: dict[str, float] = {"schema_s": time.perf_counter() - started}

    def api_run(exp: str, r: d.SeedRun, extra: list[Any] | None = None) -> str:
        run = client.create_run(ids[exp], start_time=r.start_time, run_name=r.name)
        run_id = run.info.run_id
        metrics = [Metric(k, v, ts, s) for k, v, s, ts in r.metric_points()] + (extra or [])
        params = [Param(k, v) for k, v in r.param_dict().items()]
        for start in range(0, max(len(metrics), 1), MAX_METRICS_PER_CALL):
            client.log_batch(run_id, metrics=metrics[start:start + MAX_METRICS_PER_CALL],
                             params=params if start == 0 else [])
        client.set_terminated(run_id, "FINISHED", end_time=r.end_time)
        return run_id

    # bench-ui: the first API_PROBE_RUNS through the API (its rate), the rest in bulk.
    t0 = time.perf_counter()
    seeded = d.seed_runs(runs)
    probe = runs if api_runs else min(API_PROBE_RUNS, runs)
    log(f"{d.EXPERIMENT}: {probe:,} runs through MlflowClient"
        f"{'' if api_runs else f', then {runs - probe:,} in bulk'}")
    for _ in range(probe):
        r = next(seeded)
        api_run(d.EXPERIMENT, r)
        if (r.index + 1) % d.PROGRESS_EVERY == 0:
            spent = time.perf_counter() - t0
            log(f"  {r.index + 1:,}/{runs:,} runs, {(r.index + 1) / spent:,.1f} runs/s")
    api_s = time.perf_counter() - t0
    api_rate = probe / api_s if probe else None
    if api_rate:
        log(f"  MlflowClient: {api_rate:.1f} runs/s ({runs / api_rate / 60:.0f} min for "
            f"{runs:,} runs at that rate)")
    if probe < runs:
        bulk(home / "mlflow.db", ids[d.EXPERIMENT], f"{artifacts}/{d.EXPERIMENT}", seeded,
             runs - probe)
    phases["runs_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    log(f"{d.HISTORY_EXPERIMENT}: {d.HISTORY_KEY!r} with {steps:,} steps through log_batch "
        f"({MAX_METRICS_PER_CALL:,} a call)")
    run = client.create_run(ids[d.HISTORY_EXPERIMENT], start_time=d.BASE_TIME_MS,
                            run_name=d.HISTORY_RUN)
    history_run = run.info.run_id
    client.log_batch(history_run, params=[Param("steps", str(steps))])
    chunk: list[Any] = []
    calls = 0
    for step, value, ts in d.history(steps):
        chunk.append(Metric(d.HISTORY_KEY, value, ts, step))
        if len(chunk) == MAX_METRICS_PER_CALL:
            client.log_batch(history_run, metrics=chunk)
            chunk = []
            calls += 1
            if calls % 100 == 0:
                spent = time.perf_counter() - t0
                log(f"  {calls * MAX_METRICS_PER_CALL:,}/{steps:,} points, "
                    f"{calls * MAX_METRICS_PER_CALL / spent:,.0f} points/s")
    if chunk:
        client.log_batch(history_run, metrics=chunk)
    client.set_terminated(history_run, "FINISHED", end_time=d.BASE_TIME_MS + steps)
    phases["history_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    log(f"{d.COMPARE_EXPERIMENT}: {compare_n} runs through MlflowClient")
    compare_ids = []
    for r in d.compare_runs(compare_n):
        curves = [Metric(key, value, ts, step) for key in d.COMPARE_KEYS
                  for step, value, ts in d.compare_history(r.index, key)]
        compare_ids.append(api_run(d.COMPARE_EXPERIMENT, r, curves))
    phases["compare_s"] = time.perf_counter() - t0
    return {"runs": runs, "history_steps": steps, "compare_runs": compare_n,
            "experiment_ids": ids, "history_run_id": history_run,
            "compare_run_ids": compare_ids, "runs_via": "api" if api_runs else
            f"api for the first {probe}, bulk rows for the rest",
            "api_runs_per_s": api_rate, "build_s": time.perf_counter() - started,
            "phases_s": phases}


def bulk(db_file: Path, exp_id: str, artifact_root: str, seeded: Any, n: int) -> None:
    """The rows MlflowClient writes for each run, straight into MLflow's tables."""
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{db_file}")
    tables = [SqlRun.__table__, SqlTag.__table__, SqlParam.__table__, SqlMetric.__table__,
              SqlLatestMetric.__table__]
    batches: dict[str, list[dict[str, Any]]] = {t.name: [] for t in tables}
    user = "unknown"  # what MlflowClient.create_run records without a user tag
    t0 = time.perf_counter()

    def flush() -> None:
        with engine.begin() as conn:
            for table in tables:
                conn.execute(table.insert(), batches[table.name])
        for rows in batches.values():
            rows.clear()

    for done, r in enumerate(itertools.islice(seeded, n), 1):
        run_id = uuid.uuid4().hex
        batches["runs"].append({
            "run_uuid": run_id, "name": r.name, "source_type": "UNKNOWN", "source_name": "",
            "entry_point_name": "", "user_id": user, "status": "FINISHED",
            "start_time": r.start_time, "end_time": r.end_time, "deleted_time": None,
            "source_version": "", "lifecycle_stage": "active",
            "artifact_uri": f"{artifact_root}/{run_id}/artifacts", "experiment_id": int(exp_id),
        })
        batches["tags"].append({"key": MLFLOW_RUN_NAME, "value": r.name, "run_uuid": run_id})
        batches["params"] += [{"key": k, "value": v, "run_uuid": run_id}
                              for k, v in r.param_dict().items()]
        points = [{"key": k, "value": v, "timestamp": ts, "step": s, "is_nan": False,
                   "run_uuid": run_id} for k, v, s, ts in r.metric_points()]
        batches["metrics"] += points
        batches["latest_metrics"] += points
        if len(batches["runs"]) >= BULK_CHUNK:
            flush()
            if done % 20_000 < BULK_CHUNK:
                log(f"  bulk: {done:,}/{n:,} runs ({time.perf_counter() - t0:.0f}s)")
    if batches["runs"]:
        flush()
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
