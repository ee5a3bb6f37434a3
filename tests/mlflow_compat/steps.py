"""Reading a client script's report (scripts/_report.py) in a test."""

from __future__ import annotations

import math
from typing import Any

import pytest


def value(report: dict[str, Any], step: str) -> Any:
    """What ``step`` returned, or fail the test with the client's exception and traceback."""
    if step not in report:
        pytest.fail(f"the client script reported no step {step!r}", pytrace=False)
    outcome = report[step]
    if not outcome["ok"]:
        error = outcome["error"]
        pytest.fail(f"MLflow client step {step!r} raised {error['type']} "
                    f"(error_code={error['error_code']}, status={error['status']}): "
                    f"{error['message']}\n{outcome['traceback']}", pytrace=False)
    return outcome["value"]


def error_code(raised: dict[str, Any] | None) -> str | None:
    return None if raised is None else raised["error_code"]


def as_float(number: float | str) -> float:
    """A number the script sent as JSON (NaN and infinities as strings)."""
    return float(number)


def infinite(number: float | str, sign: int) -> bool:
    """Infinity, or the largest double (MLflow's own SQL store clamps infinities to it)."""
    x = as_float(number)
    return x == sign * math.inf or x == sign * 1.7976931348623157e308
