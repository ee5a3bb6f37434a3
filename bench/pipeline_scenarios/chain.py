"""Shared by the per-tool pipeline scenarios: arguments, timing and the one-line JSON output.

Standard library only: each tool's script runs in that tool's own virtualenv and imports
this file from its own folder (a script's folder is first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEPS = 20  # the spec's linear pipeline: step i returns step i-1's output + 1


def parse_args(tool: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=f"One {tool} run of a linear pipeline of trivial steps in a fresh "
                    "process; prints one JSON line to stdout.")
    parser.add_argument("--workdir", type=Path, required=True,
                        help="the tool's home (SQLite, results); cwd of the run")
    parser.add_argument("--phase", choices=("cold", "cached"), required=True,
                        help="cold: fresh workdir; cached: second run in the same workdir")
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args(argv)
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timeline(ends: list[float]) -> dict[str, Any]:
    """The cadence of the steps' end times (seconds, any epoch): the mean time between
    consecutive step ends, i.e. the steady cost of one more step, free of the run's fixed
    start and finish costs."""
    if len(ends) < 2:
        return {"cadence_s": None}
    return {"cadence_s": (max(ends) - min(ends)) / (len(ends) - 1)}
