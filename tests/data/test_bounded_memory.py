"""Logging streams: a CSV larger than the process may grow to is logged in bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as csv
import pytest

ROWS_PER_CHUNK = 1_000_000
CHUNKS = 10  # ~650 MB of CSV
PEAK_RSS_LIMIT = 600 * 2**20  # measured ~390 MB; pyarrow/DuckDB/pandas imports are ~140 MB


def _write_big_csv(path: Path) -> int:
    rng = np.random.default_rng(7)
    words = np.array(["basic", "plus", "pro", "enterprise"])
    with csv.CSVWriter(path, pa.schema([("id", pa.int64()), ("x", pa.float64()),
                                        ("plan", pa.string()), ("n", pa.int64()),
                                        ("y", pa.float64())])) as writer:
        for i in range(CHUNKS):
            n = ROWS_PER_CHUNK
            writer.write_table(pa.table({
                "id": np.arange(i * n, (i + 1) * n), "x": rng.random(n),
                "plan": rng.choice(words, n), "n": rng.integers(0, 10**9, n),
                "y": rng.normal(size=n)}))
    return path.stat().st_size


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    except (OSError, ValueError):
        return 0


def _run_measured(args: list[str], cwd: Path) -> tuple[int, str, str, int]:
    """Run a child to completion; return (exit status, stdout, stderr, its peak RSS bytes).

    The peak is the child's VmHWM, polled while it runs. Not wait4's ru_maxrss: Linux
    carries the parent's high-water mark into a forked child across exec, so a child of a
    large pytest process would report at least pytest's own peak.
    """
    out, err = cwd / "child.out", cwd / "child.err"
    peak_kb = 0
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(args, cwd=cwd, stdout=o, stderr=e)
        while True:
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped
    return proc.returncode, out.read_text(), err.read_text(), peak_kb * 1024


@pytest.mark.slow
def test_logging_a_large_csv_keeps_memory_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    size = _write_big_csv(path)
    code = f"import ratchet; print(ratchet.data.log({str(path)!r}, name='big').row_count)"
    status, out, err, peak = _run_measured([sys.executable, "-c", code], tmp_path)
    assert status == 0, err
    print(f"peak RSS {peak / 2**20:.0f} MB for a {size / 2**20:.0f} MB CSV")
    assert out.strip() == str(CHUNKS * ROWS_PER_CHUNK)
    assert size > PEAK_RSS_LIMIT  # the file is bigger than the memory we allow
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MB for a {size / 2**20:.0f} MB CSV"
