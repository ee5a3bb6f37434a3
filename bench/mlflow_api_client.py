"""The MLflow client program of ``bench/mlflow_api_bench.py`` (run in ``bench/.venv-mlflow``).

    python mlflow_api_client.py SCENARIO --uri http://127.0.0.1:PORT [options]

The same program runs against ``mlflow server`` and against ``ratchet server``: only the
tracking URI differs. Each scenario prints one JSON line on stdout; imports and warm-up
happen before the clock starts, and every result is read back and checked before a number
is reported (``correct``).

- ``warm``: a few light requests (experiments, one run, one metric);
- ``log_metric``: ``--points`` calls of ``mlflow.log_metric(..., synchronous=True)`` in one
  run, each one HTTP request; timed from the first call until the run has ended;
- ``log_batch``: ``--points`` points (10 keys x steps) in ``MlflowClient.log_batch`` calls
  of ``--chunk`` metrics (MLflow's limit is 1,000) into a fresh run, until
  ``set_terminated``; ``--reps`` runs, the median reported;
- ``search``: seeds ``--runs`` runs (``create_run`` with a run name and start time, then one
  ``log_batch`` of params C, kernel and metrics auc, loss; ``--seed-threads`` at a time),
  then ``search_runs`` with ``common.SEARCH_FILTER``, ``order_by`` and ``max_results``: one
  warm-up, ``--reps`` timed calls, the median; each answer must be the expected run names
  in the expected order;
- ``model``: ``mlflow.sklearn.log_model(..., registered_model_name=...)`` in a run (with
  ``pip_requirements`` given: inferring them costs a subprocess, client-side only), the
  alias ``champion`` set on the new version, then
  ``mlflow.pyfunc.load_model("models:/NAME@champion")`` and a prediction compared with the
  fitted model's; one unmeasured round first (imports, first-call costs), then ``--reps``.

``null-server --port P`` serves the floor: a server that answers every MLflow request at
once with the least the client accepts (stdlib, TCP_NODELAY). ``log_metric`` and
``log_batch`` against it with ``--no-verify`` measure the client's own cost per call, the
ceiling any server can reach with this client on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import (  # bench/common.py: the script's directory is on sys.path
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    batch_points,
    emit,
    seed_runs,
    single_values,
)

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
EXPERIMENT = "mlflow-api-bench"
SEARCH_EXPERIMENT = "mlflow-api-bench-search"
MODEL_NAME = "mlflow-api-bench-model"
ALIAS = "champion"
WARMUP_CALLS = 20
clock = time.perf_counter


def run_name(index: int) -> str:
    return f"run-{index:06d}"


def expected_search(runs: int) -> list[str]:
    """The run names the search must return, in order (auc descending, then MLflow's
    tie-break on start time descending: ties do not occur with these seeded floats)."""
    matches = [r for r in seed_runs(runs) if r.auc > 0.9 and r.C == "1.0"]
    matches.sort(key=lambda r: (-r.auc, -r.start_time))
    return [run_name(r.index) for r in matches[:SEARCH_MAX_RESULTS]]


def median_rep(reps: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return sorted(reps, key=lambda r: r[key])[len(reps) // 2]


def scenario_warm(client: Any) -> dict[str, Any]:
    import mlflow

    t0 = clock()
    client.search_experiments(max_results=10)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run():
        for i in range(WARMUP_CALLS):
            mlflow.log_metric("warm", 0.5, step=i)
    return {"s": clock() - t0, "requests": WARMUP_CALLS + 5}


def scenario_log_metric(client: Any, points: int, verify: bool) -> dict[str, Any]:
    import mlflow

    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run():  # warm-up: connection, first-request costs on both sides
        for i in range(WARMUP_CALLS):
            mlflow.log_metric("warm", 0.5, step=i, synchronous=True)
    values = single_values(points)
    t0 = clock()
    with mlflow.start_run() as run:
        for i, v in enumerate(values):
            mlflow.log_metric("loss", v, step=i, synchronous=True)
        loop_s = clock() - t0
    total_s = clock() - t0
    result = {"points": points, "calls": points, "loop_s": loop_s, "total_s": total_s,
              "rate": points / total_s}
    if not verify:
        return {**result, "correct": None}
    history = client.get_metric_history(run.info.run_id, "loss")
    stored = sorted((m.step, m.value) for m in history)
    return {**result, "stored": len(stored), "correct": stored == list(enumerate(values))}


def scenario_log_batch(client: Any, points: int, chunk: int, reps: int,
                       verify: bool) -> dict[str, Any]:
    import mlflow
    from mlflow.entities import Metric

    exp_id = mlflow.set_experiment(EXPERIMENT).experiment_id
    data = batch_points(points)
    metrics = [Metric(k, v, ts, step) for k, v, step, ts in data]
    expected = {k: sorted((step, v) for key, v, step, _ in data if key == k)
                for k in sorted({k for k, *_ in data})}
    warm = client.create_run(exp_id).info.run_id
    client.log_batch(warm, metrics=metrics[:chunk])
    results = []
    for _ in range(reps):
        run_id = client.create_run(exp_id).info.run_id
        t0 = clock()
        calls = 0
        for start in range(0, len(metrics), chunk):
            client.log_batch(run_id, metrics=metrics[start:start + chunk])
            calls += 1
        client.set_terminated(run_id)
        total_s = clock() - t0
        if not verify:
            results.append({"total_s": total_s, "rate": len(metrics) / total_s,
                            "calls": calls, "correct": None})
            continue
        stored = {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k))
                  for k in expected}
        results.append({"total_s": total_s, "rate": len(metrics) / total_s, "calls": calls,
                        "stored": sum(len(v) for v in stored.values()),
                        "correct": stored == expected})
    return {"points": len(metrics), "chunk": chunk, "reps": results,
            **median_rep(results, "total_s"),
            "correct": all(r["correct"] for r in results) if verify else None}


def seed(client: Any, exp_id: str, runs: int, threads: int) -> dict[str, Any]:
    from mlflow.entities import Metric, Param

    def one(run: Any) -> None:
        run_id = client.create_run(exp_id, start_time=run.start_time,
                                   run_name=run_name(run.index)).info.run_id
        client.log_batch(run_id,
                         metrics=[Metric("auc", run.auc, run.start_time, 0),
                                  Metric("loss", run.loss, run.start_time, 0)],
                         params=[Param("C", run.C), Param("kernel", run.kernel)])

    t0 = clock()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, seed_runs(runs)):
            pass
    seed_s = clock() - t0
    return {"runs": runs, "requests": 2 * runs, "threads": threads, "seed_s": seed_s,
            "seed_runs_per_s": runs / seed_s}


def scenario_search(client: Any, runs: int, reps: int, threads: int) -> dict[str, Any]:
    exp_id = client.create_experiment(SEARCH_EXPERIMENT)
    seeded = seed(client, exp_id, runs, threads)
    expected = expected_search(runs)

    def query() -> list[str]:
        found = client.search_runs([exp_id], filter_string=SEARCH_FILTER,
                                   order_by=list(SEARCH_ORDER_BY),
                                   max_results=SEARCH_MAX_RESULTS)
        return [r.info.run_name for r in found]

    t0 = clock()
    warm_names = query()
    warmup_s = clock() - t0
    times, answers = [], []
    for _ in range(reps):
        t0 = clock()
        names = query()
        times.append(clock() - t0)
        answers.append(names == expected)
    return {**seeded, "filter": SEARCH_FILTER, "order_by": list(SEARCH_ORDER_BY),
            "max_results": SEARCH_MAX_RESULTS, "warmup_s": warmup_s, "times_s": times,
            "median_s": statistics.median(times), "rows": len(warm_names),
            "expected_rows": len(expected),
            "correct": warm_names == expected and all(answers)}


def scenario_model(client: Any, reps: int) -> dict[str, Any]:
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    import sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    want = model.predict(X)
    # Given, not inferred: MLflow infers requirements in a subprocess that loads the model
    # (~15 s here, client-side only, the same against either server), which would bury
    # the server's part of the round trip.
    requirements = [f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}"]
    mlflow.set_experiment(EXPERIMENT)

    def round_trip(name: str) -> dict[str, Any]:
        t0 = clock()
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                            input_example=X[:5], pip_requirements=requirements)
        version = info.registered_model_version
        client.set_registered_model_alias(name, ALIAS, version)
        t1 = clock()
        loaded = mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}")
        got = np.asarray(loaded.predict(X))
        t2 = clock()
        return {"register_s": t1 - t0, "load_s": t2 - t1, "total_s": t2 - t0,
                "version": str(version), "correct": bool(np.array_equal(got, want))}

    warm = round_trip(MODEL_NAME + "-warm")
    results = [round_trip(MODEL_NAME) for _ in range(reps)]
    versions = [r["version"] for r in results]
    return {"reps": results, "warmup": warm,
            "register_s": statistics.median(r["register_s"] for r in results),
            "load_s": statistics.median(r["load_s"] for r in results),
            "total_s": statistics.median(r["total_s"] for r in results),
            "versions": versions,
            "correct": (warm["correct"] and all(r["correct"] for r in results)
                        and versions == [str(i) for i in range(1, reps + 1)])}


def null_server(port: int) -> None:
    """The floor: answers at once, with the least MLflow's client accepts (a run for
    runs/create, an experiment for get-by-name, ``{}`` for everything else)."""
    import json
    import uuid
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real servers
        disable_nagle_algorithm = True  # else delayed ACKs add 40 ms per request

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            reply: dict[str, Any] = {}
            if self.path.startswith("/api/2.0/mlflow/runs/create"):
                run_id = uuid.uuid4().hex
                reply = {"run": {"info": {"run_id": run_id, "run_uuid": run_id,
                                          "experiment_id": "1", "status": "RUNNING",
                                          "lifecycle_stage": "active"}, "data": {}}}
            elif self.path.startswith("/api/2.0/mlflow/experiments/get-by-name"):
                reply = {"experiment": {"experiment_id": "1", "name": EXPERIMENT,
                                        "lifecycle_stage": "active"}}
            body = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Answer).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["warm", "log_metric", "log_batch", "search",
                                             "model", "null-server"])
    parser.add_argument("--uri")
    parser.add_argument("--port", type=int, help="null-server: the port to bind")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not read the points back (against the null server)")
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed-threads", type=int, default=4)
    args = parser.parse_args()
    if args.scenario == "null-server":
        null_server(args.port)
        return
    if not args.uri:
        parser.error("--uri is required")

    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(args.uri)
    mlflow.set_registry_uri(args.uri)
    client = MlflowClient(args.uri, registry_uri=args.uri)
    if args.scenario == "warm":
        out = scenario_warm(client)
    elif args.scenario == "log_metric":
        out = scenario_log_metric(client, args.points, not args.no_verify)
    elif args.scenario == "log_batch":
        out = scenario_log_batch(client, args.points, args.chunk, args.reps,
                                 not args.no_verify)
    elif args.scenario == "search":
        out = scenario_search(client, args.runs, args.reps, args.seed_threads)
    else:
        out = scenario_model(client, args.reps)
    emit({"scenario": args.scenario, "mlflow": mlflow.__version__, **out})


if __name__ == "__main__":
    main()
