"""Sortable identifiers: UUIDv7 (48-bit millisecond time, then randomness) as 32 hex chars."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """A 32-character hex UUIDv7: unique, and sorts by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = (rand >> 68) & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return f"{value:032x}"
