"""The one duration grammar (ratchet.durations) and the options that use it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ratchet.durations import duration_ms, format_duration, parse_duration
from ratchet.errors import InvalidInput


@pytest.mark.parametrize("given, expected", [
    ("90s", timedelta(seconds=90)), ("15min", timedelta(minutes=15)),
    ("15m", timedelta(minutes=15)), ("1h30min", timedelta(hours=1, minutes=30)),
    ("1h 30min", timedelta(hours=1, minutes=30)), ("1.5h", timedelta(hours=1.5)),
    ("1d 12h", timedelta(days=1, hours=12)), ("7d", timedelta(days=7)),
    ("1D", timedelta(days=1)), ("1H", timedelta(hours=1)), ("2w", timedelta(weeks=2)),
    ("250ms", timedelta(milliseconds=250)), ("3 hours", timedelta(hours=3)),
    ("0", timedelta(0)), ("3600", timedelta(hours=1)), (" 6h ", timedelta(hours=6)),
    (0, timedelta(0)), (90, timedelta(seconds=90)), (1.5, timedelta(seconds=1.5)),
    (timedelta(minutes=3), timedelta(minutes=3)),
])
def test_accepted(given: Any, expected: timedelta) -> None:
    assert parse_duration(given) == expected


@pytest.mark.parametrize("given, message", [
    ("soon", "'soon' is not a duration"), ("", "is not a duration"), ("h", "not a duration"),
    ("1h30", "not a duration"), ("1x", "unknown unit 'x'"), ("1M", "ambiguous"),
    ("1ME", "unknown unit"), ("1mo", "calendar unit"), ("2 years", "calendar unit"),
    ("-1h", "must not be negative"), (-5, "must not be negative"),
    (timedelta(seconds=-1), "must not be negative"), (True, "not a duration"),
    (None, "not a duration"), (float("nan"), "not a duration"), ("99999999999d", "too long"),
])
def test_refused_with_the_value_named(given: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_duration(given, "--window")
    assert str(caught.value).startswith("--window")


def test_at_least() -> None:
    with pytest.raises(InvalidInput, match=r"--tick must be at least 1s, got '500ms'"):
        parse_duration("500ms", "--tick", at_least=timedelta(seconds=1))
    assert parse_duration("1s", at_least=timedelta(seconds=1)) == timedelta(seconds=1)
    assert duration_ms("1h30min") == 5_400_000


@pytest.mark.parametrize("value", [timedelta(0), timedelta(milliseconds=250),
                                   timedelta(hours=1, minutes=30), timedelta(days=7),
                                   timedelta(days=1, seconds=1, milliseconds=5)])
def test_format_reads_back(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30min"


def test_every_option_uses_it() -> None:
    """A policy's cooldown, the monitor's window and gc's ages all read "1h30min"."""
    from ratchet.ct.policy import policy_from_dict
    from ratchet.monitoring.performance import parse_window
    from ratchet.tracking.gc import parse_age

    policy = policy_from_dict({"model": "churn", "pipeline": "pipeline.py:train",
                               "triggers": ["manual"], "cooldown": "1h30min",
                               "data": {"lookback": "1d 12h"}})
    assert policy.cooldown == timedelta(hours=1, minutes=30)
    assert policy.data.lookback == timedelta(days=1, hours=12)
    assert parse_window("1h30min") == timedelta(hours=1, minutes=30)
    assert parse_age("1h30min") == timedelta(hours=1, minutes=30)
    with pytest.raises(InvalidInput, match="window must be at least 1s"):
        parse_window("0h")


def test_elapsed_times_read_at_a_glance() -> None:
    from ratchet.durations import elapsed

    assert [elapsed(ms) for ms in (0, 45, 999, 1000, 3_240, 59_940, 125_000, 3_725_000)] == [
        "0ms", "45ms", "999ms", "1.0s", "3.2s", "59.9s", "2m05s", "1h02m"]
