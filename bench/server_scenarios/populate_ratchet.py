"""Bulk-load ratchet's database with the seeded runs (run in the project's venv).

    python populate_ratchet.py --db-url sqlite:////tmp/x/ratchet.db --runs 100000

``ratchet.store.open_database`` creates the schema and ``TrackingStore.create_experiment``
the experiment; then the rows ``create_run`` + ``log_params`` + ``log_batch`` would write
go straight into ratchet's tables (``runs`` rows from the store's own ``new_run_rows``,
then ``params``, ``metrics`` and ``latest_metrics``), finished runs with one point per
metric. SQLite gets SQLAlchemy Core ``executemany`` in chunks; PostgreSQL gets ``COPY``
(then ``ANALYZE``, as autovacuum would after a bulk load). Prints one JSON line.
"""

from __future__ import annotations

import argparse
from typing import Any

from data import SEARCH_EXPERIMENT, clock, copy_sql, csv_text, emit, log, seed_runs

CHUNK = 5_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--runs", type=int, required=True)
    args = parser.parse_args()

    started = clock()
    from sqlalchemy import insert

    from ratchet.store import schema as t
    from ratchet.store.database import open_database
    from ratchet.store.stores import SqlStores
    from ratchet.store.tracking_store import new_run_rows

    db = open_database(args.db_url)
    exp = SqlStores(db).tracking.create_experiment(SEARCH_EXPERIMENT)
    schema_s = clock() - started
    postgres = db.dialect == "postgresql"
    tables = [t.runs, t.params, t.metrics, t.latest_metrics]
    batches: dict[str, list[dict[str, Any]]] = {table.name: [] for table in tables}
    counts = dict.fromkeys(batches, 0)

    def flush() -> None:
        if postgres:
            raw = db.engine.raw_connection()
            try:
                cur = raw.cursor()
                for table in tables:
                    rows = batches[table.name]
                    columns = list(rows[0])
                    with cur.copy(copy_sql(table.name, columns)) as copy:
                        copy.write(csv_text(rows, columns))
                raw.commit()
            finally:
                raw.close()
        else:
            with db.write() as conn:
                for table in tables:
                    conn.execute(insert(table), batches[table.name])
        for name, rows in batches.items():
            counts[name] += len(rows)
            rows.clear()

    for r in seed_runs(args.runs):
        run, _tags = new_run_rows(exp.experiment_id, name=r.name, start_time=r.start_time)
        run_id = run["run_id"]
        run.update(status="finished", end_time=r.start_time + 900, user="bench")
        batches["runs"].append(run)
        batches["params"].extend({"run_id": run_id, "key": f"p{k}", "value": v}
                                 for k, v in enumerate(r.params))
        points = [{"run_id": run_id, "key": f"m{k}", "value": v, "is_nan": False, "step": 0,
                   "timestamp": r.start_time + 500} for k, v in enumerate(r.metrics)]
        batches["metrics"].extend(points)
        batches["latest_metrics"].extend(points)
        if len(batches["runs"]) >= CHUNK:
            flush()
            if counts["runs"] % 20_000 == 0:
                log("ratchet", f"populate: {counts['runs']:,} runs ({clock() - started:.0f}s)")
    if batches["runs"]:
        flush()
    load_s = clock() - started - schema_s
    analyze_s = 0.0
    if postgres:
        t0 = clock()
        raw = db.engine.raw_connection()
        try:
            raw.cursor().execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
        analyze_s = clock() - t0
    db.dispose()
    emit({"experiment_id": exp.experiment_id, "rows": counts, "schema_s": schema_s,
          "load_s": load_s, "analyze_s": analyze_s, "total_s": clock() - started})


if __name__ == "__main__":
    main()
