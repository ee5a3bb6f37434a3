"""The executor interface. A new backend (Kubernetes, Airflow, a job queue) implements
``submit`` and ``shutdown``; pipeline and tuning code never changes.

The contract for a task:
- it is a callable with no arguments that cloudpickle can ship to another process;
- it reads its inputs from, and writes its outputs to, the artifact store and metadata
  store itself (it is given their locations), so large data never passes through the
  driver; what it returns is small (digests, numbers);
- an exception it raises is raised by ``future.result()``; a task that outlives its
  ``timeout`` fails with ``StepTimeout``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from ratchet.errors import InvalidInput

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """What one task needs. Ray schedules by it; the local executor runs tasks on a pool."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int | None = None  # bytes

    def __post_init__(self) -> None:
        for field in ("cpus", "gpus"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"{field}= must be a number >= 0, got {value!r}")
        if self.memory is not None and (not isinstance(self.memory, int)
                                        or isinstance(self.memory, bool) or self.memory <= 0):
            raise InvalidInput(f"memory= must be a positive number of bytes, got {self.memory!r}")


DEFAULT_RESOURCES = Resources()


class Executor(ABC):
    """Runs tasks somewhere and hands back futures."""

    name: str = "executor"

    @property
    @abstractmethod
    def parallelism(self) -> int:
        """How many tasks can usefully run at once (sizes ask-and-tell batches)."""

    @abstractmethod
    def submit(self, task: Callable[[], T], *, resources: Resources = DEFAULT_RESOURCES,
               timeout: float | None = None, name: str = "task") -> Future[T]:
        """Start ``task``; its future holds the return value or the exception."""

    def shutdown(self) -> None:  # noqa: B027 - optional for executors holding nothing
        """Release what the executor started (pools, clusters it launched)."""

    def describe(self) -> str:
        """A short description recorded with each pipeline run."""
        return self.name

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

