"""Pipelines the schedule and scheduler tests name by reference
(``tests.pipelines.sample_pipelines:<name>``)."""

from __future__ import annotations

from typing import Any

from ratchet.pipelines import pipeline, step


@step(cache=False)
def inc(x: int) -> int:
    return x + 1


@step(cache=False)
def explode(x: int) -> int:
    raise RuntimeError(f"boom {x}")


@pipeline
def nightly(n: int = 1) -> Any:
    return inc(n)


@pipeline
def failing(n: int = 1) -> Any:
    return explode(n)


@pipeline
def typed(name: str, ratio: float = 0.5, flag: bool = False,
          tags: list[str] | None = None) -> Any:
    return inc(len(name))


not_a_pipeline = 42
