"""What every client script shares: steps whose results (or errors) are gathered into one
JSON document, printed last. A failing step does not stop the script, so one process (one
import of mlflow) reports on everything, and the test names the step that failed with
the client's own exception.

Runs in the MLflow client's venv: standard library and mlflow only.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

results: dict[str, Any] = {}


def step(name: str) -> Callable[[Callable[[], Any]], None]:
    """Run the decorated function now; record what it returns under ``name``, or the
    exception it raised (type, MLflow error code, message, traceback tail)."""

    def run(function: Callable[[], Any]) -> None:
        started = time.perf_counter()
        try:
            results[name] = {"ok": True, "value": function()}
        except Exception as exc:  # every failure is reported, not raised
            results[name] = {"ok": False, "error": describe(exc),
                             "traceback": traceback.format_exc()[-3000:]}
        results[name]["seconds"] = round(time.perf_counter() - started, 3)

    return run


def describe(exc: BaseException) -> dict[str, Any]:
    """An exception as data: MLflow's ``error_code`` (and HTTP status) when it has one."""
    return {"type": type(exc).__name__, "error_code": getattr(exc, "error_code", None),
            "status": getattr(exc, "get_http_status_code", lambda: None)(),
            "message": str(exc)[:2000]}


def raised(function: Callable[[], Any]) -> dict[str, Any] | None:
    """The exception ``function`` raised, described; None if it returned."""
    try:
        function()
    except Exception as exc:
        return describe(exc)
    return None


def number(value: float) -> Any:
    """A float as JSON can carry it (NaN and infinities as strings)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def emit() -> None:
    sys.stdout.write("\n" + json.dumps(results, default=str) + "\n")
    sys.stdout.flush()
