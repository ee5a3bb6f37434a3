"""Benchmark: ``ratchet.data.validate`` on 1,000,000 rows x 30 columns with 60 checks.

    .venv/bin/python bench/validation_bench.py [--rows N] [--reps R]

Prints one JSON object. The measurement runs in a fresh subprocess so its peak RSS
(``ru_maxrss``) belongs to this workload alone: data generation, one warm-up call, then
``reps`` timed calls (median reported). The kernel's peak-RSS mark is reset after data
generation, so ``peak_rss_mb_validate`` is the peak while validating (data included). About 1% of rows are made to fail in four columns.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
N_INT = N_FLOAT = 8
N_CAT = N_STR = 7
CATEGORIES = ["red", "green", "blue", "yellow", "black"]
FAIL_RATE = 0.01


def make_frame(rows: int, seed: int = 0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i in range(N_INT):
        cols[f"int_{i}"] = rng.integers(0, 10_000, rows)
    for i in range(N_FLOAT):
        a = rng.normal(0.0, 2.0, rows)
        a[rng.random(rows) < 0.05] = np.nan  # nulls are allowed here
        cols[f"float_{i}"] = a
    cats = np.array(CATEGORIES)
    for i in range(N_CAT):
        cols[f"cat_{i}"] = pd.Series(cats[rng.integers(0, len(cats), rows)], dtype="str")
    ids = pd.Series(np.arange(rows)).map("u{:07d}".format).astype("str")
    for i in range(N_STR):
        cols[f"code_{i}"] = ids
    df = pd.DataFrame(cols)

    # Failures: ~1% of rows in four columns.
    def bad() -> Any:
        return rng.random(rows) < FAIL_RATE

    df.loc[bad(), "int_0"] = -1  # fails in_range and notin
    df.loc[bad(), "float_0"] = 50.0  # fails in_range (a warn check fails too)
    df.loc[bad(), "cat_0"] = "purple"  # fails isin
    df.loc[bad(), "code_0"] = "x"  # fails str_length and str_startswith
    return df


def make_schema() -> Any:
    """30 columns, 2 explicit checks each (60), plus dtype and nullability per column."""
    import pandera.pandas as pa

    Check = pa.Check
    columns = {}
    for i in range(N_INT):
        columns[f"int_{i}"] = pa.Column(
            "int64", [Check.in_range(0, 9_999), Check.notin([-1])], nullable=False
        )
    for i in range(N_FLOAT):
        columns[f"float_{i}"] = pa.Column(
            "float64",
            [Check.in_range(-20.0, 20.0), Check.lt(15.0, raise_warning=True)],
            nullable=True,
        )
    for i in range(N_CAT):
        columns[f"cat_{i}"] = pa.Column(
            "str", [Check.isin(CATEGORIES), Check.str_length(3, 6)], nullable=False
        )
    for i in range(N_STR):
        columns[f"code_{i}"] = pa.Column(
            "str", [Check.str_length(8, 8), Check.str_startswith("u")], nullable=False
        )
    return pa.DataFrameSchema(columns, name="bench", coerce=False, strict=False)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0) so VmHWM covers validation only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def child(rows: int, reps: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "src"))
    from ratchet.data.validation import validate

    t0 = time.perf_counter()
    df = make_frame(rows)
    schema = make_schema()
    gen_s = time.perf_counter() - t0
    df_mb = float(df.memory_usage(deep=True).sum()) / 2**20
    rss_before = _status_mb("VmRSS")
    peak_reset = _reset_peak()
    n_checks = sum(len(c.checks) for c in schema.columns.values())

    report = validate(df, schema)  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        report = validate(df, schema)
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    return {
        "benchmark": "validation",
        "rows": rows,
        "columns": len(df.columns),
        "checks": n_checks,
        "checks_run": report.checks_run,
        "validate_s_median": round(median, 4),
        "validate_s_all": [round(t, 4) for t in times],
        "rows_per_s": round(rows / median),
        "failures_found": len(report.failures),
        "error_failures": len(report.errors),
        "warn_failures": len(report.warnings),
        "failing_rows_total": sum(f.failing_count for f in report.failures),
        # ru_maxrss covers data generation too; VmHWM after the reset covers validation.
        "peak_rss_mb_process": round(_rss_mb(), 1),
        "peak_rss_mb_validate": _round(_status_mb("VmHWM")) if peak_reset else None,
        "rss_mb_before_validate": _round(rss_before),
        "dataframe_mb": round(df_mb, 1),
        "generate_s": round(gen_s, 2),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.rows, args.reps)))
        return 0
    cmd = [sys.executable, __file__, "--child", "--rows", str(args.rows), "--reps", str(args.reps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
