"""Prefect 3: a linear chain of trivial tasks in one flow, in this process (no deployment).

    bench/.venv-prefect/bin/python bench/pipeline_scenarios/run_prefect.py \\
        --workdir DIR --phase cold|cached

``PREFECT_HOME`` (SQLite database, result storage, profiles) must point into DIR; the
driver sets it. With no ``PREFECT_API_URL`` the first API call starts Prefect's temporary
server (a uvicorn subprocess on 127.0.0.1), which lives as long as this process.

Timed separately: the imports; the temporary server's start (a health check through
``get_client``: uvicorn start-up plus, in a fresh PREFECT_HOME, the database migrations);
a one-task warm-up flow (first-call costs); then the chain itself. The imports, the server
start and the warm-up are Prefect's one-time costs per process. The tasks' end times (from
Prefect's own task-run log records) give the cadence (steady cost per task).

Tasks use ``cache_policy=INPUTS + TASK_SOURCE`` with persisted results, so a second run in
the same PREFECT_HOME hits the cache for every task (Prefect's default policy includes the
flow run id, so it never reuses results across runs).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from chain import emit, parse_args, timed, timeline


class _CachedCounter(logging.Handler):
    """Counts Prefect's own "Finished in state Cached(...)" task-run records: a passive
    check of cache hits that leaves the timed flow code as a user would write it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.finished = 0
        self.cached = 0
        self.finished_at: list[float] = []  # time.time() of each task's end

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Finished in state"):
            self.finished += 1
            self.cached += message.startswith("Finished in state Cached")
            self.finished_at.append(record.created)


def main() -> None:
    args = parse_args("prefect")
    started = time.perf_counter()
    from prefect import flow, task
    from prefect.cache_policies import INPUTS, TASK_SOURCE
    from prefect.client.orchestration import get_client

    import_s = time.perf_counter() - started
    steps = args.steps

    @task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
    def inc(x: int) -> int:
        return x + 1

    @flow
    def chain(start: int = 0) -> int:
        x = start
        for _ in range(steps):
            x = inc(x)
        return x

    @task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
    def warm(x: int) -> int:
        return x

    @flow
    def warmup() -> int:
        return warm(0)

    def start_server() -> None:
        # The server outlives this client: it is a per-process singleton, stopped at exit.
        with get_client(sync_client=True) as client:
            failure = client.api_healthcheck()
        if failure is not None:
            raise SystemExit(f"Prefect's temporary server is not healthy: {failure}")

    server_s, _ = timed(start_server)
    warmup_s, _ = timed(warmup)
    counter = _CachedCounter()
    logging.getLogger("prefect.task_runs").addHandler(counter)
    pipeline_s, output = timed(lambda: chain(start=0))
    ended_at = time.time()
    # How much of the flow's wall time came after its last task had finished (flow-run
    # teardown: final state, log and event flushing).
    tail_s = ended_at - max(counter.finished_at) if counter.finished_at else None

    import prefect

    result: dict[str, Any] = {
        "tool": "prefect", "version": prefect.__version__, "phase": args.phase,
        "steps": steps, "import_s": import_s, "startup_s": server_s + warmup_s,
        "server_start_s": server_s, "warmup_s": warmup_s,
        "pipeline_s": pipeline_s, "output": output,
        "tasks_finished": counter.finished, "cached_steps": counter.cached,
        "after_last_task_s": tail_s,
        **timeline(counter.finished_at),
    }
    emit(result)


if __name__ == "__main__":
    main()
