"""What every side of ``bench/server_bench.py`` shares: the seeded runs both tools are
bulk-loaded with, the search both answer, the points both log, and small helpers.

Standard library only: imported by the populate and client scripts in the project's venv
(ratchet) and in ``bench/.venv-mlflow-server`` (MLflow) alike, so both tools hold, log and
search exactly the same values.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

SEED = 20261206
N_METRICS = 20
N_PARAMS = 20
SEARCH_EXPERIMENT = "bench-search"
LOG_EXPERIMENT = "bench-log"
# ~1/2 of the runs have m3 > 0.5 and ~1/4 have p1 = 'x': ~12.5 % match; the first page
# of 100 sorted by m5 is what a UI's runs table asks for.
P1_VALUES = ("x", "y", "z", "w")
SEARCH_FILTER = "metrics.m3 > 0.5 and params.p1 = 'x'"
SEARCH_ORDER_BY = "metrics.m5 DESC"
SEARCH_PAGE = 100
BASE_TIME_MS = 1_760_000_000_000
BATCH_KEYS = 10


@dataclass(frozen=True)
class SeedRun:
    index: int
    name: str
    start_time: int
    params: tuple[str, ...]     # p0..p19
    metrics: tuple[float, ...]  # m0..m19, one point each at step 0


def seed_runs(n: int, seed: int = SEED) -> Iterator[SeedRun]:
    """The runs both tools are loaded with: the same values, in the same order."""
    rng = random.Random(seed)
    rand, choice, randrange = rng.random, rng.choice, rng.randrange
    for i in range(n):
        params = tuple(choice(P1_VALUES) if k == 1 else f"v{k}-{randrange(50)}"
                       for k in range(N_PARAMS))
        metrics = tuple(rand() for _ in range(N_METRICS))
        yield SeedRun(i, f"run-{i:07d}", BASE_TIME_MS + i * 1000, params, metrics)


def expected_page(n: int) -> list[str]:
    """Run names of the search's first page over ``n`` seeded runs, in order."""
    hits = [(r.metrics[5], r.name) for r in seed_runs(n)
            if r.metrics[3] > 0.5 and r.params[1] == "x"]
    hits.sort(reverse=True)
    return [name for _, name in hits[:SEARCH_PAGE]]


def single_values(n: int) -> list[float]:
    return [1.0 / (i + 1) for i in range(n)]


def batch_points(n: int) -> list[tuple[str, float, int, int]]:
    """``n`` points as (key, value, step, timestamp): BATCH_KEYS keys x n/keys steps."""
    rng = random.Random(SEED + 1)
    steps = max(1, -(-n // BATCH_KEYS))
    return [(f"b{k}", rng.random(), step, BASE_TIME_MS + step)
            for step in range(steps) for k in range(BATCH_KEYS)][:n]


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV for PostgreSQL's ``COPY ... FROM STDIN (FORMAT csv)`` (None: NULL)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if row[c] is None else
                         ("t" if row[c] is True else "f" if row[c] is False else repr(row[c])
                          if isinstance(row[c], float) else row[c]) for c in columns])
    return buf.getvalue()


def copy_sql(table: str, columns: Sequence[str]) -> str:
    quoted = ", ".join(f'"{c}"' for c in columns)  # "user" is a reserved word
    return f"COPY {table} ({quoted}) FROM STDIN WITH (FORMAT csv)"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1), linear between closest ranks."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(times: Sequence[float]) -> dict[str, Any]:
    return {"calls": len(times), "p50_ms": percentile(times, 0.5) * 1000,
            "p95_ms": percentile(times, 0.95) * 1000, "min_ms": min(times) * 1000,
            "max_ms": max(times) * 1000, "times_ms": [round(t * 1000, 3) for t in times]}


def log(tool: str, message: str) -> None:
    print(f"[server_bench:{tool}] {message}", file=sys.stderr, flush=True)


def emit(doc: dict[str, Any]) -> None:
    """The one JSON line a scenario script prints on stdout."""
    print(json.dumps(doc), flush=True)


def clock() -> float:
    return time.perf_counter()
