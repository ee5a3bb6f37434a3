"""The online feature store: the latest feature values of each entity, read at serving time.

One entry per (feature view name, entity key). An entry holds the view's feature values,
the row's event time and created time (µs since the epoch, UTC; created may be null) and
the version of the view that wrote it. Two implementations behind one small protocol:
``sqlite:///path`` (:mod:`ratchet.features.sqlite_online_store`, the default) and
``redis://host:port/db`` (:mod:`ratchet.features.redis_online_store`).

The rules every implementation keeps:

- **Newest wins.** A write never replaces a newer entry with an older one: entries compare
  by (event time, created time with null lowest, write order), so of two writes with the
  same event and created time the later one wins. A batch is applied in order and atomically.
- **Keys are typed.** :func:`encode_key` turns the join-key values (in the view's key order)
  into JSON text: ``1`` and ``"1"`` are different entities, and ``(1, 23)`` cannot collide
  with ``(12, 3)``. Integers, strings and bools are keys as they are; a float with an
  integral value is the integer (pandas turns an integer column with a missing value into
  floats), other floats are floats. A missing key (None, NaN) matches nothing. Other types
  (dates, bytes) are refused.
- **Values are JSON.** The values of one entry are a JSON object, feature name → value:
  integers, floats, strings, bools and null as they are; a float NaN is stored as null
  (missing, as everywhere in ratchet); ±infinity stays a float; timestamps come back as
  datetimes (aware UTC for time-zone-aware columns, naive UTC otherwise, µs precision) and
  dates as dates, as a training set gives them (stored as small tagged objects); decimals
  come back as numbers, lists as lists, structs as dicts. Writers produce the text
  (``materialize`` and ``push`` have DuckDB encode each row), the store keeps it opaque.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from ratchet.errors import InvalidInput

# One write: (encoded key, event time µs, created time µs or None, JSON object of values).
EncodedRow = tuple[str, int, "int | None", str]

# A read: (view name, encoded key).
Lookup = tuple[str, str]


# Timestamp and date values in an entry's JSON: tagged objects, so that they come back as
# datetimes and dates (the types a training set gives), not as text or numbers.
TAG_US = "__ratchet_us__"      # a timestamp: µs since the epoch (naive unless TAG_UTC)
TAG_UTC = "__ratchet_utc__"    # ... of a time-zone-aware column: an aware UTC datetime
TAG_DAYS = "__ratchet_days__"  # a date: days since 1970-01-01
_EPOCH = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)


def _typed(obj: dict[str, Any]) -> Any:
    if len(obj) <= 2:
        if TAG_US in obj:
            moment = _EPOCH + timedelta(microseconds=obj[TAG_US])
            return moment.replace(tzinfo=UTC) if obj.get(TAG_UTC) else moment
        if TAG_DAYS in obj:
            return _EPOCH_DATE + timedelta(days=obj[TAG_DAYS])
    return obj


@dataclass(frozen=True, slots=True)
class StoredFeatures:
    """One entity's entry for one view, as the online store holds it."""

    event_us: int
    created_us: int | None
    view_version: int
    payload: str  # the JSON object of feature values

    @property
    def values(self) -> dict[str, Any]:
        """Feature name → value; timestamps as datetimes, dates as dates."""
        if "__ratchet_" not in self.payload:  # no time values: plain JSON, faster
            plain: dict[str, Any] = json.loads(self.payload)
            return plain
        decoded: dict[str, Any] = json.loads(self.payload, object_hook=_typed)
        return decoded


class OnlineStore(Protocol):
    """What materialize, push and the online lookup need from an online store."""

    uri: str  # where it is, with any password masked (also its name in the metadata store)

    def write(self, view: str, view_version: int, rows: Sequence[EncodedRow]) -> int:
        """Apply ``rows`` in order under the newest-wins rule, atomically; the number of
        rows sent (entries an older write did not replace included)."""
        ...

    def read(self, lookups: Sequence[Lookup]) -> list[StoredFeatures | None]:
        """The entry of each (view, key) pair, None where there is none. Any mix of views
        and keys, in as few round trips as the store allows."""
        ...

    def delete_view(self, view: str) -> int:
        """Drop every entry of ``view``; how many there were."""
        ...

    def count(self, view: str) -> int:
        """How many entities ``view`` has entries for."""
        ...

    def close(self) -> None:
        ...


# ---------------------------------------------------------------------------- keys

def _key_part(value: Any) -> Any:
    """One key value in its canonical JSON type; None for a missing value."""
    if value is None:
        return None
    if type(value) in (int, str, bool):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):  # an int subclass (IntEnum)
        return int(value)
    if isinstance(value, str):  # numpy.str_, a str subclass
        return str(value)
    if isinstance(value, float):  # numpy.float64 too
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise InvalidInput(f"an entity key may not be infinite, got {value!r}")
        return int(value) if value.is_integer() else float(value)
    kind = type(value)
    module = kind.__module__.split(".", 1)[0]
    if module == "numpy":
        import numpy as np

        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):  # float32
            return _key_part(float(value))
    if module == "pandas" and kind.__name__ in ("NAType", "NaTType"):
        return None
    raise InvalidInput(f"an entity key must be an integer, a string or a bool, got "
                       f"{kind.__name__} {value!r}")


def encode_key(values: Sequence[Any]) -> str | None:
    """The typed, unambiguous text of one entity's key values (in the view's join-key
    order); None when any of them is missing (such a row matches nothing)."""
    if len(values) == 1:  # the common case, without json.dumps for integers
        value = values[0]
        if type(value) is int:
            return f"[{value}]"
        part = _key_part(value)
        if part is None:
            return None
        if type(part) is int:
            return f"[{part}]"
        return json.dumps([part], ensure_ascii=False, separators=(",", ":"))
    parts = [_key_part(v) for v in values]
    if any(p is None for p in parts):
        return None
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def decode_key(key: str) -> list[Any]:
    """The key values of an encoded key."""
    decoded: list[Any] = json.loads(key)
    return decoded


def encode_key_columns(columns: Sequence[Sequence[Any]]) -> list[str | None]:
    """:func:`encode_key` of each row of the key columns (one list per key column)."""
    if len(columns) == 1:
        column = columns[0]
        if all(type(v) is int for v in column):
            return [f"[{v}]" for v in column]
        return [encode_key((v,)) for v in column]
    return [encode_key(row) for row in zip(*columns, strict=True)]
