"""The one JSON-safe converter (ratchet.json_safe) and its convention for NaN/inf."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time
from enum import IntEnum
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ratchet.json_safe import dumps, json_safe


class Level(IntEnum):
    HIGH = 2


@pytest.mark.parametrize("value, expected", [
    (None, None), (True, True), ("x", "x"), (3, 3), (1.5, 1.5), (Level.HIGH, 2),
    (math.nan, None), (math.inf, "Infinity"), (-math.inf, "-Infinity"),
    (np.float64("nan"), None), (np.float32(np.inf), "Infinity"), (np.int64(7), 7),
    (np.bool_(False), False), (pd.NA, None), (pd.NaT, None),
    (np.datetime64("NaT"), None), (np.datetime64("2024-05-01T12:00"), "2024-05-01T12:00"),
    (datetime(2024, 5, 1, 12, tzinfo=UTC), "2024-05-01T12:00:00+00:00"),
    (pd.Timestamp("2024-05-01T12:00Z"), "2024-05-01T12:00:00+00:00"),
    (date(2024, 5, 1), "2024-05-01"), (time(12, 30), "12:30:00"),
    (b"caf\xc3\xa9", "café"), (b"\xff", "\ufffd"),
    ((1, math.nan), [1, None]), ({"a": {1: math.inf}}, {"a": {"1": "Infinity"}}),
    (np.array([1.0, np.nan, -np.inf]), [1.0, None, "-Infinity"]),
    (np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]), ({3, 1}, [1, 3]),
    (object.__new__(type("Thing", (), {"__str__": lambda self: "thing"})), "thing"),
])
def test_convention(value: Any, expected: Any) -> None:
    assert json_safe(value) == expected


def test_dumps_is_strict_json() -> None:
    text = dumps({"loss": math.nan, "gain": math.inf, "when": pd.Timestamp(0, tz="UTC"),
                  "counts": np.arange(3)}, sort_keys=True)
    assert "NaN" not in text and "Infinity" in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"literal {c}")) == {
        "counts": [0, 1, 2], "gain": "Infinity", "loss": None,
        "when": "1970-01-01T00:00:00+00:00"}
    assert float(json.loads(dumps(-math.inf))) == -math.inf  # the strings read back


def test_callers_share_it() -> None:
    """The CLI's --json output, validation examples and model input examples agree."""
    from ratchet.cli.output import jsonable
    from ratchet.packaging.manifest import example_records

    row = {"x": math.nan, "y": math.inf}
    assert jsonable(row) == json_safe(row) == {"x": None, "y": "Infinity"}
    assert example_records(pd.DataFrame({"x": [math.nan], "y": [math.inf]})) == [
        {"x": None, "y": "Infinity"}]
