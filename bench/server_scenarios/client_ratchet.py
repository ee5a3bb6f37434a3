"""ratchet's client side of ``bench/server_bench.py`` (run in the project's venv).

    RATCHET_TRACKING_URI=http://127.0.0.1:PORT python client_ratchet.py PHASE [options]

The same phases as ``client_mlflow.py``, through ratchet's public API in remote mode
(``RATCHET_TRACKING_TOKEN`` too when the server wants one):
- ``warm``: a few light requests (the experiments, one run search of one row);
- ``log_single``: ``ratchet.log_metric`` in a loop inside ``ratchet.start_run()``. The
  remote client queues points and sends them in batches from a background thread; the
  clock runs from the first call until the run has ended, when every point has been sent
  and acknowledged by the server (durable there); the loop alone is ``loop_s``;
- ``log_batch``: ``ratchet.log_batch(metrics=...)`` with ``--batch`` points per call (one
  request each) into a fresh run, until the run has ended;
- ``search``: ``ratchet.search_runs`` with the shared filter, order and page size, after
  two warm-up calls (one when it took over 10 s), ``--calls`` times or until ``--max-s``
  has passed; the page is checked against the expected run names.
Both logging phases read the points back (``metric_history``) before reporting.
"""

from __future__ import annotations

import argparse
import itertools

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

WARMUP_CALLS = 20
WARMUP_SKIP_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["warm", "log_single", "log_batch", "search"])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--max-s", type=float, default=300.0)
    parser.add_argument("--runs", type=int, default=100_000, help="runs loaded (for the check)")
    args = parser.parse_args()

    import ratchet
    from ratchet.tracking.fluent import client

    tracking = client()

    if args.phase == "warm":
        t0 = clock()
        tracking.store.list_experiments()
        tracking.store.get_experiment(SEARCH_EXPERIMENT)
        ratchet.search_runs(experiments=[SEARCH_EXPERIMENT], max_results=1)
        emit({"requests": 3, "s": clock() - t0})
        return

    if args.phase == "search":
        def query() -> list[str]:
            found = ratchet.search_runs(SEARCH_FILTER, experiments=[SEARCH_EXPERIMENT],
                                        order_by=[SEARCH_ORDER_BY], max_results=SEARCH_PAGE)
            return [r.name for r in found]

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

    # Warm-up: the connection pool, first-request costs on both sides.
    with ratchet.start_run(LOG_EXPERIMENT):
        for i in range(WARMUP_CALLS):
            ratchet.log_metric("warm", 0.5, step=i)

    if args.phase == "log_single":
        values = single_values(args.points)
        with ratchet.start_run(LOG_EXPERIMENT) as run:
            t0 = clock()
            for i, v in enumerate(values):
                ratchet.log_metric("loss", v, step=i)
            loop_s = clock() - t0
        total_s = clock() - t0
        stored = len(tracking.metric_history(run.run_id, "loss"))
        emit({"points": args.points, "calls": args.points, "loop_s": loop_s,
              "total_s": total_s, "rate": args.points / total_s, "stored": stored,
              "correct": stored == args.points,
              "timed_until": "the run has ended (every point sent and acknowledged)"})
        return

    points = batch_points(args.points)
    reps = []
    for _ in range(args.reps):
        with ratchet.start_run(LOG_EXPERIMENT) as run:
            t0 = clock()
            calls = 0
            for chunk in chunks(points, args.batch):
                ratchet.log_batch(metrics=list(chunk))
                calls += 1
        total_s = clock() - t0
        keys = sorted({k for k, *_ in points})
        stored = sum(len(tracking.metric_history(run.run_id, k)) for k in keys)
        reps.append({"total_s": total_s, "rate": len(points) / total_s, "calls": calls,
                     "stored": stored, "correct": stored == len(points)})
    median = sorted(reps, key=lambda r: r["total_s"])[len(reps) // 2]
    emit({"points": len(points), "batch": args.batch, "reps": reps, **median,
          "correct": all(r["correct"] for r in reps)})


if __name__ == "__main__":
    main()
