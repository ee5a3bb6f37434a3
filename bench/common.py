"""Shared by both scenario scripts: argument parsing, seeded data, timing helpers.

Standard library only: this module is imported by ``scenarios_ratchet.py`` (run in the
project's virtualenv) and by ``scenarios_mlflow.py`` (run in ``bench/.venv-mlflow``), so
both tools log and search exactly the same values.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCENARIOS = ("log_metric_single", "log_batch", "search_runs")

SEARCH_FILTER = "metrics.auc > 0.9 and params.C = '1.0'"
SEARCH_ORDER_BY = ("metrics.auc DESC",)
SEARCH_MAX_RESULTS = 1000
C_VALUES = ("0.01", "0.1", "1.0", "10.0")
KERNELS = ("linear", "rbf", "poly")
SEED = 20240501
BATCH_KEYS = 10
WARMUP_POINTS = 200
BASE_TIME_MS = 1_700_000_000_000


@dataclass(frozen=True)
class SeedRun:
    index: int
    C: str
    kernel: str
    auc: float
    loss: float
    start_time: int


def seed_runs(n: int, seed: int = SEED) -> Iterator[SeedRun]:
    """The runs both tools are seeded with: the same values, in the same order."""
    rng = random.Random(seed)
    for i in range(n):
        yield SeedRun(i, rng.choice(C_VALUES), rng.choice(KERNELS), rng.random(), rng.random(),
                      BASE_TIME_MS + i)


def expected_matches(n: int) -> int:
    """How many seeded runs the benchmark filter matches (before ``max_results``)."""
    return sum(1 for r in seed_runs(n) if r.auc > 0.9 and r.C == "1.0")


def batch_points(n: int, seed: int = SEED) -> list[tuple[str, float, int, int]]:
    """``n`` points as (key, value, step, timestamp): ``BATCH_KEYS`` keys x n/keys steps."""
    rng = random.Random(seed)
    steps = max(1, n // BATCH_KEYS)
    return [(f"m{k}", rng.random(), step, BASE_TIME_MS + step)
            for step in range(steps) for k in range(BATCH_KEYS)][:n]


def single_values(n: int) -> list[float]:
    return [1.0 / (i + 1) for i in range(n)]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def summarize(times: list[float]) -> dict[str, Any]:
    return {
        "times_s": [round(x, 6) for x in times],
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
    }


def parse_args(tool: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"One {tool} benchmark scenario; prints one "
                                     "JSON line to stdout.")
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--n", type=int, required=True,
                        help="points (log_* scenarios) or seeded runs (search_runs)")
    parser.add_argument("--workdir", type=Path, required=True,
                        help="an empty directory for this tool's SQLite file")
    parser.add_argument("--reps", type=int, default=5,
                        help="timed repetitions after one warm-up (log_batch, search_runs)")
    if tool == "ratchet":
        parser.add_argument("--sync", choices=("default", "full"), default="default",
                            help="'full': force PRAGMA synchronous=FULL (fsync every commit)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.reps < 1:
        parser.error("--n and --reps must be at least 1")
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
