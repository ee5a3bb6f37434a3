"""MLflow's client side of ``bench/server_bench.py`` (run in ``bench/.venv-mlflow-server``).

    python client_mlflow.py PHASE --uri http://127.0.0.1:PORT [options]

Phases (each prints one JSON line; imports and warm-up happen before the clock starts):
- ``warm``: a few light requests (the experiments, one run search of one row);
- ``log_single``: ``mlflow.log_metric`` in a loop inside ``mlflow.start_run()``, each call
  one synchronous HTTP request; timed from the first call until the run has ended;
- ``log_single_async``: the same with ``synchronous=False`` (MLflow's own queue, a
  supplementary number: not its default), timed until ``flush_async_logging`` returned
  and the run has ended;
- ``log_batch``: ``MlflowClient.log_batch`` with ``--batch`` points per call (MLflow's
  server caps a batch at 1,000 metrics) into a fresh run, until ``set_terminated``;
- ``search``: ``MlflowClient.search_runs`` with the shared filter, order and page size,
  after two warm-up calls (one when it took over 10 s), ``--calls`` times or until
  ``--max-s`` has passed; the page is checked against the expected run names.
Both logging phases read the points back (``get_metric_history``) before reporting.
"""

from __future__ import annotations

import argparse
import itertools
import os

from data import (
    LOG_EXPERIMENT,
    SEARCH_EXPERIMENT,
    SEARCH_FILTER,
    SEARCH_ORDER_BY,
    SEARCH_PAGE,
    batch_points,
    chunks,
    clock,
    emit,
    expected_page,
    latency_summary,
    single_values,
)

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
WARMUP_CALLS = 20
WARMUP_SKIP_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["warm", "log_single", "log_single_async", "log_batch",
                                          "search"])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--max-s", type=float, default=300.0,
                        help="stop searching after this long (at least one timed call)")
    parser.add_argument("--runs", type=int, default=100_000, help="runs loaded (for the check)")
    args = parser.parse_args()

    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(args.uri)
    client = MlflowClient(args.uri)

    if args.phase == "warm":
        t0 = clock()
        client.search_experiments()
        exp = client.get_experiment_by_name(SEARCH_EXPERIMENT)
        client.search_runs([exp.experiment_id], max_results=1)
        emit({"requests": 3, "s": clock() - t0})
        return

    if args.phase == "search":
        exp = client.get_experiment_by_name(SEARCH_EXPERIMENT)

        def query() -> list[str]:
            found = client.search_runs([exp.experiment_id], filter_string=SEARCH_FILTER,
                                       order_by=[SEARCH_ORDER_BY], max_results=SEARCH_PAGE)
            return [r.info.run_name for r in found]

        warm = [clock()]
        for _ in range(2):  # the second only when the first was quick (MLflow: minutes)
            names = query()
            warm.append(clock())
            if warm[-1] - warm[0] > WARMUP_SKIP_S:
                break
        times: list[float] = []
        deadline = clock() + args.max_s
        expected = expected_page(args.runs)
        while len(times) < args.calls and (not times or clock() < deadline):
            t0 = clock()
            names = query()
            times.append(clock() - t0)
            emit({"filter": SEARCH_FILTER, "order_by": SEARCH_ORDER_BY,  # after every call
                  "max_results": SEARCH_PAGE,
                  "warmup_ms": [(b - a) * 1000 for a, b in itertools.pairwise(warm)],
                  **latency_summary(times), "rows": len(names), "correct": names == expected,
                  "first": names[:3]})
        return

    exp_id = mlflow.set_experiment(LOG_EXPERIMENT).experiment_id
    # Warm-up: the connection pool, first-request costs on both sides.
    with mlflow.start_run():
        for i in range(WARMUP_CALLS):
            mlflow.log_metric("warm", 0.5, step=i)

    if args.phase in ("log_single", "log_single_async"):
        synchronous = args.phase == "log_single"
        values = single_values(args.points)
        with mlflow.start_run() as run:
            t0 = clock()
            for i, v in enumerate(values):
                mlflow.log_metric("loss", v, step=i, synchronous=synchronous)
            loop_s = clock() - t0
            if not synchronous:
                mlflow.flush_async_logging()
        total_s = clock() - t0
        stored = len(client.get_metric_history(run.info.run_id, "loss"))
        emit({"points": args.points, "calls": args.points, "loop_s": loop_s,
              "total_s": total_s, "rate": args.points / total_s, "stored": stored,
              "correct": stored == args.points})
        return

    points = batch_points(args.points)
    reps = []
    for _ in range(args.reps):
        run_id = client.create_run(exp_id).info.run_id
        t0 = clock()
        calls = 0
        for chunk in chunks(points, args.batch):
            client.log_batch(run_id, metrics=[Metric(k, v, ts, step) for k, v, step, ts in chunk])
            calls += 1
        client.set_terminated(run_id)
        total_s = clock() - t0
        keys = sorted({k for k, *_ in points})
        stored = sum(len(client.get_metric_history(run_id, k)) for k in keys)
        reps.append({"total_s": total_s, "rate": len(points) / total_s, "calls": calls,
                     "stored": stored, "correct": stored == len(points)})
    median = sorted(reps, key=lambda r: r["total_s"])[len(reps) // 2]  # the median rep
    emit({"points": len(points), "batch": args.batch, "reps": reps, **median,
          "correct": all(r["correct"] for r in reps)})


if __name__ == "__main__":
    main()
