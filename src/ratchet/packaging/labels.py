"""How a ground-truth value names one of a classifier's classes: one rule for the
performance monitor (labels joined to predictions) and ``/feedback`` (labels checked on
arrival), so a label the server accepts is one the monitor counts.

Lenient on purpose, because labels come back from other systems: equal (``1.0 == 1``,
``True == 1``), equal as text (``"1"`` for 1, ``"True"`` for True), equal as a number
(``"1.0"`` for 1), or boolean text (``ratchet.columns.BOOL_TEXT``: ``"true"``,
``"false"``, ``"1"``, ``"0"``, any case) for boolean classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ratchet.columns import BOOL_TEXT


def plain(value: Any) -> Any:
    """NumPy scalars as Python values (dict lookups, JSON, messages)."""
    item = getattr(value, "item", None)
    return item() if item is not None and type(value).__module__ == "numpy" else value


def as_number(value: Any) -> float | None:
    """A finite float for numbers and numeric text, else None."""
    if isinstance(value, bool | int | float):
        try:
            number = float(value)
        except OverflowError:  # an int past float's range
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def class_matcher(classes: Sequence[Any]) -> Callable[[Any], int | None]:
    """value -> the index of the class it names, or None."""
    exact: dict[Any, int] = {}
    text: dict[str, int] = {}
    numeric: dict[float, int] = {}
    for i, cls in enumerate(classes):
        cls = plain(cls)
        exact.setdefault(cls, i)
        text.setdefault(str(cls), i)
        number = as_number(cls)
        if number is not None:
            numeric.setdefault(number, i)

    def match(value: Any) -> int | None:
        value = plain(value)
        try:
            hit = exact.get(value)
        except TypeError:  # unhashable
            return None
        if hit is None:
            hit = text.get(str(value))
        if hit is None:
            number = as_number(value)
            hit = None if number is None else numeric.get(number)
        if hit is None and isinstance(value, str):
            flag = BOOL_TEXT.get(value.strip().lower())
            hit = None if flag is None else exact.get(flag)
        return hit

    return match


__all__ = ["as_number", "class_matcher", "plain"]
