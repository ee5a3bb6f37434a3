"""Durations as users write them: the one grammar for every option and field that takes a
length of time (a policy's ``cooldown`` and ``data.lookback``, ``ratchet monitor
--window``, the backtest's ``--tick`` / ``--label-delay`` / ``--schedule`` / ``--period``,
``ratchet gc --older-than`` / ``--grace``).

A duration is one or more ``<number><unit>`` parts, optionally separated by spaces, which
add up: ``90s``, ``15min``, ``1h30min``, ``1.5h``, ``1d 12h``, ``7d``, ``2w``. Units:

=========  ======================================
``ms``     milliseconds
``s``      seconds (also ``sec``, ``second(s)``)
``m``      minutes (also ``min``, ``minute(s)``)
``h``      hours (also ``hr``, ``hour(s)``)
``d``      days (also ``day(s)``; a day is 24 h)
``w``      weeks (also ``week(s)``)
=========  ======================================

Units are case-insensitive except ``M``, which is refused (minutes or months?). A bare
number is seconds (``0``, ``3600``); so is an ``int`` / ``float`` value. A ``timedelta``
is taken as it is. Months and years are refused: their length varies, give days. A
negative duration is refused. Every refusal is an ``InvalidInput`` naming the option and
the value given.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

from ratchet.errors import InvalidInput

EXAMPLES = "90s, 15min, 1h30min, 6h, 1d or 30d"

_UNITS_S: dict[str, float] = {
    "ms": 0.001,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800,
}
_CALENDAR = frozenset({"mo", "mon", "month", "months", "y", "yr", "year", "years",
                       "q", "quarter", "quarters"})
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})\s*([A-Za-z]+)")
_WHOLE = re.compile(rf"^\s*(?:{_NUMBER}\s*[A-Za-z]+\s*)+$")
_BARE = re.compile(rf"^\s*({_NUMBER})\s*$")


def parse_duration(value: object, what: str = "duration", *,
                   at_least: timedelta | None = None) -> timedelta:
    """``value`` (text, seconds as a number, or a ``timedelta``) as a ``timedelta``.

    ``what`` names the option or field in error messages (``"--window"``,
    ``"policy.yaml: cooldown"``); ``at_least`` is the smallest length accepted (default:
    zero, i.e. anything not negative).
    """
    parsed = _parse(value, what)
    floor = at_least if at_least is not None else timedelta(0)
    if parsed < floor:
        if floor == timedelta(0):
            raise InvalidInput(f"{what} must not be negative, got {value!r}")
        raise InvalidInput(f"{what} must be at least {format_duration(floor)}, got {value!r} "
                           f"(e.g. {EXAMPLES})")
    return parsed


def duration_ms(value: object, what: str = "duration", *,
                at_least: timedelta | None = None) -> int:
    """:func:`parse_duration` in whole milliseconds."""
    return int(parse_duration(value, what, at_least=at_least) / timedelta(milliseconds=1))


def elapsed(ms: float) -> str:
    """How long something took, for people: ``45ms``, ``3.2s``, ``2m05s``, ``1h02m``
    (tables in the CLI and the dashboard)."""
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_duration(value: timedelta) -> str:
    """The shortest text :func:`parse_duration` reads back as ``value`` (``1h30min``,
    ``7d``, ``250ms``); negative values get a leading ``-``."""
    ms = round(value / timedelta(milliseconds=1))
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000),
                       ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def _parse(value: object, what: str) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise _invalid(what, value)
        return _seconds(float(value), what, value)
    if not isinstance(value, str):
        raise _invalid(what, value)
    bare = _BARE.match(value)
    if bare:
        return _seconds(float(bare[1]), what, value)
    if value.strip().startswith("-"):
        raise InvalidInput(f"{what} must not be negative, got {value!r}")
    if not _WHOLE.match(value):
        raise _invalid(what, value)
    total = 0.0
    for number, unit in _PART.findall(value):
        if unit == "M":
            raise InvalidInput(f"{what}: {value!r} is ambiguous ('M': minutes or months?); "
                               "write min for minutes, or the months in days")
        key = unit.lower()
        if key in _CALENDAR:
            raise InvalidInput(f"{what}: {value!r} uses a calendar unit ({unit}) whose "
                               "length varies; give it in days (e.g. 30d, 365d)")
        size = _UNITS_S.get(key)
        if size is None:
            raise InvalidInput(f"{what}: unknown unit {unit!r} in {value!r}; use ms, s, min, "
                               f"h, d or w (e.g. {EXAMPLES})")
        total += float(number) * size
    return _seconds(total, what, value)


def _seconds(seconds: float, what: str, given: object) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise InvalidInput(f"{what}: {given!r} is too long a duration") from None


def _invalid(what: str, value: object) -> InvalidInput:
    return InvalidInput(f"{what}: {value!r} is not a duration; give e.g. {EXAMPLES}")


__all__ = ["EXAMPLES", "duration_ms", "format_duration", "parse_duration"]
