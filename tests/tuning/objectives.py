"""Objectives the tuning tests run; module-level so worker processes can import them."""

from __future__ import annotations

import os

import ratchet
from ratchet.tuning import report


def quadratic(x: float, y: float) -> float:
    """Maximum 0 at x=2, y=-1."""
    return -((x - 2.0) ** 2) - (y + 1.0) ** 2


def logging_quadratic(x: float, y: float) -> float:
    # The fluent API inside the objective writes to the trial's own run.
    ratchet.log_param("seen_x", x)
    ratchet.log_metric("distance", abs(x - 2.0) + abs(y + 1.0))
    ratchet.log_param("pid", os.getpid())
    return quadratic(x, y)


def curve(quality: float, steps: int = 10) -> float:
    """A training curve that ends at ``quality``; poor settings are visible from step 1,
    so a median pruner stops them early."""
    ratchet.log_param("pid", os.getpid())
    value = 0.0
    for step in range(steps):
        value = quality * (step + 1) / steps
        report(value, step)
    return value
