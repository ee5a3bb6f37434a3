"""Bulk-load MLflow's database with the seeded runs (run in ``bench/.venv-mlflow-server``).

    python populate_mlflow.py --db-url sqlite:////tmp/x/mlflow.db --runs 100000 \
        --artifact-root /tmp/x/artifacts

MLflow's own ``SqlAlchemyStore`` creates (migrates) the tables and the experiment, then
the rows ``MlflowClient.create_run`` + ``log_batch`` would write go straight into its
tables: runs, the ``mlflow.runName`` tag, params, metrics and latest_metrics. SQLite gets
SQLAlchemy Core ``executemany`` in chunks; PostgreSQL gets ``COPY`` (then ``ANALYZE``, as
autovacuum would after a bulk load). Prints one JSON line: experiment id, rows, seconds.
"""

from __future__ import annotations

import argparse
import io
import uuid
from typing import Any

from data import SEARCH_EXPERIMENT, clock, copy_sql, csv_text, emit, log, seed_runs

CHUNK = 5_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--artifact-root", required=True)
    args = parser.parse_args()

    started = clock()
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    store = SqlAlchemyStore(args.db_url, args.artifact_root)
    exp_id = store.create_experiment(SEARCH_EXPERIMENT)
    artifact_root = store.get_experiment(exp_id).artifact_location
    schema_s = clock() - started
    engine = store.engine
    postgres = engine.dialect.name == "postgresql"
    tables = [SqlRun.__table__, SqlTag.__table__, SqlParam.__table__, SqlMetric.__table__,
              SqlLatestMetric.__table__]
    batches: dict[str, list[dict[str, Any]]] = {t.name: [] for t in tables}
    counts = dict.fromkeys(batches, 0)

    def flush() -> None:
        if postgres:
            raw = engine.raw_connection()
            try:
                cur = raw.cursor()
                for table in tables:
                    rows = batches[table.name]
                    columns = list(rows[0])
                    cur.copy_expert(copy_sql(table.name, columns), io.StringIO(csv_text(rows, columns)))
                raw.commit()
            finally:
                raw.close()
        else:
            with engine.begin() as conn:
                for table in tables:
                    conn.execute(table.insert(), batches[table.name])
        for name, rows in batches.items():
            counts[name] += len(rows)
            rows.clear()

    for r in seed_runs(args.runs):
        run_id = uuid.uuid4().hex
        batches["runs"].append({
            "run_uuid": run_id, "name": r.name, "source_type": "UNKNOWN", "source_name": "",
            "entry_point_name": "", "user_id": "bench", "status": "FINISHED",
            "start_time": r.start_time, "end_time": r.start_time + 900, "deleted_time": None,
            "source_version": "", "lifecycle_stage": "active",
            "artifact_uri": f"{artifact_root}/{run_id}/artifacts", "experiment_id": int(exp_id),
        })
        batches["tags"].append({"key": MLFLOW_RUN_NAME, "value": r.name, "run_uuid": run_id})
        batches["params"].extend({"key": f"p{k}", "value": v, "run_uuid": run_id}
                                 for k, v in enumerate(r.params))
        points = [{"key": f"m{k}", "value": v, "timestamp": r.start_time + 500, "step": 0,
                   "is_nan": False, "run_uuid": run_id} for k, v in enumerate(r.metrics)]
        batches["metrics"].extend(points)
        batches["latest_metrics"].extend(points)
        if len(batches["runs"]) >= CHUNK:
            flush()
            if counts["runs"] % 20_000 == 0:
                log("mlflow", f"populate: {counts['runs']:,} runs ({clock() - started:.0f}s)")
    if batches["runs"]:
        flush()
    load_s = clock() - started - schema_s
    analyze_s = 0.0
    if postgres:
        t0 = clock()
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
        analyze_s = clock() - t0
    engine.dispose()
    emit({"experiment_id": str(exp_id), "rows": counts, "schema_s": schema_s,
          "load_s": load_s, "analyze_s": analyze_s, "total_s": clock() - started})


if __name__ == "__main__":
    main()
