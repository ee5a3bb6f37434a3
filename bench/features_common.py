"""Shared by the feature store contenders (``features_feast_side.py`` in ``bench/.venv-feast``,
``features_ratchet_side.py`` in the project's ``.venv``): the layout of the generated data,
arguments, peak memory, latency summaries, and how a training set is summarized so that
the orchestrator (``features_bench.py``) can check every contender's answers.

Imports only the standard library at module level; numpy and pandas (present in both
virtualenvs) inside functions.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

VIEWS = 5
FEATURES_PER_VIEW = 10
ENTITY = "driver"
JOIN_KEY = "driver_id"
FEATURE_TS = "event_ts"
ENTITY_TS = "event_timestamp"
ROW_ID = "row_id"
TTL = timedelta(days=2)
BASE = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
# The online lookup: the 10 features of the first view, for one entity per call.
ONLINE_VIEW = "fv0"
REDIS_URL = "redis://127.0.0.1:6379/15"   # a db of its own; only this db is flushed


def view_name(k: int) -> str:
    return f"fv{k}"


def feature_names(k: int) -> list[str]:
    """Unique across views (Feast rejects duplicate names without full_feature_names)."""
    return [f"fv{k}_f{j}" for j in range(FEATURES_PER_VIEW)]


def all_feature_refs() -> list[str]:
    return [f"{view_name(k)}:{f}" for k in range(VIEWS) for f in feature_names(k)]


def all_feature_columns() -> list[str]:
    return [f for k in range(VIEWS) for f in feature_names(k)]


def online_refs() -> list[str]:
    return [f"{ONLINE_VIEW}:{f}" for f in feature_names(0)]


def manifest(data: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((data / "manifest.json").read_text())
    return loaded


def parse_args(tool: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=f"{tool}: one feature store phase in this process over the data written "
                    "by features_bench.py; prints one JSON line to stdout.")
    parser.add_argument("phase", choices=("offline", "online"),
                        help="offline: the training set; online: materialize + lookups")
    parser.add_argument("--data", type=Path, required=True, help="the generated data folder")
    parser.add_argument("--workdir", type=Path, required=True,
                        help="an empty folder for this contender's registry and stores")
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite",
                        help="online store (phase online)")
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args(argv)
    args.data = args.data.resolve()
    args.workdir = args.workdir.resolve()
    if not (args.data / "manifest.json").is_file():
        parser.error(f"--data {args.data} holds no manifest.json: generate the data with "
                     "bench/features_bench.py --data-dir DIR first")
    if args.lookups < 1 or args.warmup < 0:
        parser.error("--lookups must be at least 1 and --warmup at least 0")
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def vm_hwm_mb() -> float | None:
    """This process's peak resident set so far (VmHWM), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def vm_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def number(value: Any) -> float | None:
    """A JSON-safe float (None for missing or NaN)."""
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) else f


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def latency_summary(ns: list[int]) -> dict[str, Any]:
    """p50/p90/p99/max/mean of per-call latencies given in nanoseconds, in milliseconds."""
    import numpy as np

    arr = np.asarray(ns, dtype=np.float64) / 1e6
    return {"calls": len(ns), "p50_ms": float(np.percentile(arr, 50)),
            "p90_ms": float(np.percentile(arr, 90)), "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()), "mean_ms": float(arr.mean()),
            "calls_per_s": float(len(ns) / (arr.sum() / 1e3))}


def lookup_drivers(data: Path, count: int, seed: int) -> list[int]:
    """The drivers looked up online, seeded: the same sequence for every contender."""
    import numpy as np

    n_drivers = int(manifest(data)["drivers"])
    return [int(x) for x in np.random.default_rng(seed).integers(0, n_drivers, count)]


def summarize_training_set(frame: Any, sample_row_ids: list[int]) -> dict[str, Any]:
    """What the orchestrator checks of a training set (a pandas DataFrame with the entity
    columns and one column per feature, any row order): the row count, per feature column
    the sum and the number of nulls over all rows, and the feature values of the sampled
    rows (by ``row_id``; None for null; a sampled row missing from the result is None)."""
    import numpy as np

    columns = all_feature_columns()
    missing = [c for c in [ROW_ID, *columns] if c not in frame.columns]
    if missing:
        raise SystemExit(f"the training set lacks columns {missing}; it has "
                         f"{list(frame.columns)[:20]}")
    sums: dict[str, float | None] = {}
    nulls: dict[str, int] = {}
    for c in columns:
        values = frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
        isnan = np.isnan(values)
        nulls[c] = int(isnan.sum())
        sums[c] = number(values[~isnan].sum())
    row_ids = frame[ROW_ID].to_numpy()
    present = set(np.intersect1d(row_ids, np.asarray(sample_row_ids)).tolist())
    indexed = frame.set_index(ROW_ID)
    indexed = indexed[~indexed.index.duplicated()]
    wanted = [rid for rid in sample_row_ids if rid in present]
    values = indexed.loc[wanted, columns].to_numpy(dtype=np.float64, na_value=np.nan)
    rows: dict[str, list[float | None] | None] = dict.fromkeys(map(str, sample_row_ids))
    for rid, row in zip(wanted, values, strict=True):   # absent rows stay None
        rows[str(rid)] = [None if math.isnan(v) else float(v) for v in row]
    return {"rows": len(frame), "distinct_row_ids": len(np.unique(row_ids)),
            "columns": list(map(str, frame.columns)), "sums": sums, "nulls": nulls,
            "sample": rows}


class Clock:
    """Named laps of ``time.perf_counter``."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now
        return self.laps[name]
