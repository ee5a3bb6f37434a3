"""Values as strict JSON: the one converter for everything ratchet writes as JSON (CLI
``--json`` output, monitor results and reports, webhook bodies, controller state, model
manifests' input examples, validation examples).

The convention, everywhere:

- **missing → null**: ``None``, a float NaN (NumPy's too), ``pandas.NA`` and ``NaT``.
  ratchet counts a NaN as a missing value in data (the column contract, data quality,
  profiles and drift all do), and a recorded NaN metric is listed with a null value.
- **±infinity → "Infinity" / "-Infinity"**: JSON has no literal for them; the strings are
  what ``float()`` and JavaScript's ``Number()`` read back, and what the protobuf JSON
  mapping (and so MLflow's REST API) uses.
- NumPy scalars become Python numbers, arrays and tuples become lists, mappings become
  objects with string keys, dates and times become ISO 8601 text, bytes become UTF-8 text
  (undecodable bytes replaced), and anything else its ``str()``.

The result always passes ``json.dumps(..., allow_nan=False)``; :func:`dumps` does both.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

POSITIVE_INFINITY = "Infinity"
NEGATIVE_INFINITY = "-Infinity"


def json_safe(value: Any) -> Any:
    """``value`` as plain, strict JSON values (see the module's convention)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)  # an int subclass (IntEnum, NumPy's on some platforms) as an int
    if isinstance(value, float):  # also numpy.float64
        if math.isfinite(value):
            return float(value)
        if math.isnan(value):
            return None
        return POSITIVE_INFINITY if value > 0 else NEGATIVE_INFINITY
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [json_safe(v) for v in items]
    module = type(value).__module__.split(".", 1)[0]
    if module == "pandas" and type(value).__name__ in ("NAType", "NaTType"):
        return None  # before datetime: NaT is a datetime too
    if module == "numpy":
        return _numpy(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):  # also pandas.Timestamp
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` (``value``): never a NaN or Infinity literal.
    Keyword arguments (``indent``, ``sort_keys``, ``separators``) are ``json.dumps``'s."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def _numpy(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()] if value.dtype.kind not in "mM" \
            else [_numpy(v) for v in value]
    if isinstance(value, np.datetime64 | np.timedelta64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return str(value)


__all__ = ["NEGATIVE_INFINITY", "POSITIVE_INFINITY", "dumps", "json_safe"]
