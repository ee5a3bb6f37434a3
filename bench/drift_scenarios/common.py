"""Shared by the drift contenders: arguments, timing, peak memory and the one-line JSON.

Standard library only: each contender's script runs in its own virtualenv (ratchet and the
floor in the project's ``.venv``, Evidently in ``bench/.venv-evidently``) and imports this
file from its own folder (a script's folder is first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

# The tests the contenders pick at this size and where the two kinds of test drift.
P_VALUE_TESTS = frozenset({"ks", "chisquare", "z", "fisher_exact", "g_test", "t_test",
                           "mannw", "anderson", "cramer_von_mises", "epps_singleton",
                           "empirical_mmd", "perc_text_content_drift"})


def parse_args(tool: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=f"{tool}: a drift report between DATA/reference.parquet and "
                    "DATA/current.parquet in this process; prints one JSON line to stdout.")
    parser.add_argument("--data", type=Path, required=True,
                        help="the folder written by generate.py (Parquet files + manifest)")
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.data = args.data.resolve()
    return args


def manifest(data: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((data / "manifest.json").read_text())
    return loaded


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


class Clock:
    """Named laps of ``time.perf_counter``."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.last = self.started
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now
        return self.laps[name]


def number(value: Any) -> float | None:
    """A JSON-safe float (None for missing, NaN; infinities as +-1e308)."""
    if value is None:
        return None
    f = float(value)
    if math.isnan(f):
        return None
    if math.isinf(f):
        return math.copysign(1e308, f)
    return f


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
