"""The in-process executor: a thread pool by default, so ``pdb`` and ``print`` work in
steps and there is nothing to start; a process pool (``processes=True``) for CPU-bound
pure-Python steps that the GIL would serialise.

Timeouts: Python cannot stop a thread, and stopping one pool process would break the
others, so a task past its ``timeout`` is reported as ``StepTimeout`` at once while the
work itself is left to finish in the background and its result is dropped. The Ray
executor kills timed-out tasks.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import (
    CancelledError,
    Future,
    InvalidStateError,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from concurrent.futures import Executor as _PoolExecutor
from typing import Any, TypeVar

from ratchet.errors import InvalidInput, StepTimeout
from ratchet.executors.base import DEFAULT_RESOURCES, Executor, Resources

T = TypeVar("T")


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, workers: int | None = None, *, processes: bool = False) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise InvalidInput(f"workers= must be a positive integer, got {workers!r}")
        self.workers = workers or max(os.cpu_count() or 1, 1)
        self.processes = processes
        self._pool: _PoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def parallelism(self) -> int:
        return self.workers

    def describe(self) -> str:
        return f"local({'processes' if self.processes else 'threads'}={self.workers})"

    def _get_pool(self) -> _PoolExecutor:
        with self._lock:
            if self._pool is None:
                if self.processes:
                    import multiprocessing

                    # forkserver: forking a process that holds threads and open database
                    # connections is unsafe.
                    self._pool = ProcessPoolExecutor(
                        self.workers, mp_context=multiprocessing.get_context("forkserver"))
                else:
                    self._pool = ThreadPoolExecutor(self.workers,
                                                    thread_name_prefix="ratchet-step")
            return self._pool

    def submit(self, task: Callable[[], T], *, resources: Resources = DEFAULT_RESOURCES,
               timeout: float | None = None, name: str = "task") -> Future[T]:
        pool = self._get_pool()
        if self.processes:
            import cloudpickle

            call: Callable[..., Any] = _run_pickled
            args: tuple[Any, ...] = (cloudpickle.dumps(task),)
        else:
            call, args = task, ()
        if timeout is None:
            return pool.submit(call, *args)
        outer, arm = _deadline(timeout, name)
        if self.processes:
            arm()  # a worker process cannot tell us when it starts: count from submission
            inner = pool.submit(call, *args)
        else:
            # Count from when a pool thread picks the task up, not from submission, so
            # steps queued behind busy workers are not cut short (as the Ray executor does).
            def timed() -> Any:
                arm()
                return task()

            inner = pool.submit(timed)
        inner.add_done_callback(lambda done: _settle_from(outer, done, name))
        return outer

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _run_pickled(payload: bytes) -> Any:
    import cloudpickle

    return cloudpickle.loads(payload)()


def _deadline(timeout: float, name: str) -> tuple[Future[Any], Callable[[], None]]:
    """A future that fails with ``StepTimeout`` once ``timeout`` s have passed after
    ``arm()`` is called, unless the task's result settles it first."""
    outer: Future[Any] = Future()
    outer.set_running_or_notify_cancel()

    def expire() -> None:
        with contextlib.suppress(InvalidStateError):  # the result won the race
            outer.set_exception(
                StepTimeout(f"{name} did not finish within its timeout of {timeout:g} s"))

    def arm() -> None:
        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        outer.add_done_callback(lambda _: timer.cancel())

    return outer, arm


def _settle_from(outer: Future[Any], done: Future[Any], name: str) -> None:
    """Copy the task's outcome to ``outer`` unless the deadline already settled it."""
    with contextlib.suppress(InvalidStateError):
        if done.cancelled():  # the pool shut down before the task started
            outer.set_exception(CancelledError(f"{name} was cancelled"))
        elif done.exception() is not None:
            outer.set_exception(done.exception())
        else:
            outer.set_result(done.result())
