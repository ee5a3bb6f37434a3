"""The in-process executor: a thread pool by default, so ``pdb`` and ``print`` work in
steps and there is nothing to start; a process pool (``processes=True``) for CPU-bound
pure-Python steps that the GIL would serialise.

Timeouts: Python cannot stop a thread, and stopping one pool process would break the
others, so a task past its ``timeout`` is reported as ``StepTimeout`` at once while the
work itself is left to finish in the background and its result is dropped. The Ray
executor kills timed-out tasks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor
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
        inner: Future[Any]
        if self.processes:
            import cloudpickle

            inner = pool.submit(_run_pickled, cloudpickle.dumps(task))
            # A worker process cannot tell us when it starts: count from submission.
            return inner if timeout is None else _with_deadline(inner, timeout, name)
        if timeout is None:
            return pool.submit(task)
        # Count from when a pool thread picks the task up, not from submission, so steps
        # queued behind busy workers are not cut short (as the Ray executor does).
        started = threading.Event()

        def timed() -> T:
            started.set()
            return task()

        inner = pool.submit(timed)
        return _with_deadline(inner, timeout, name, started)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _run_pickled(payload: bytes) -> Any:
    import cloudpickle

    return cloudpickle.loads(payload)()


def _with_deadline(inner: Future[T], timeout: float, name: str,
                   started: threading.Event | None = None) -> Future[T]:
    """A future that fails with ``StepTimeout`` if ``inner`` is not done ``timeout`` s
    after it ``started`` (or after now, without that event)."""
    outer: Future[T] = Future()
    outer.set_running_or_notify_cancel()
    lock = threading.Lock()

    def settle(fn: Callable[[], None]) -> None:
        with lock:
            if not outer.done():
                fn()

    def expire() -> None:
        settle(lambda: outer.set_exception(
            StepTimeout(f"{name} did not finish within its timeout of {timeout:g} s")))

    def watch() -> None:
        if started is not None:
            while not started.wait(0.05):
                if inner.done():
                    return
        if not inner.done():
            done_in_time.wait(timeout)
            if not inner.done():
                expire()

    done_in_time = threading.Event()
    timer = threading.Thread(target=watch, name=f"ratchet-deadline-{name}", daemon=True)

    def copy(done: Future[T]) -> None:
        done_in_time.set()
        if done.cancelled():  # the pool shut down before the task started
            settle(lambda: outer.set_exception(CancelledError(f"{name} was cancelled")))
            return
        exc = done.exception()
        if exc is not None:
            settle(lambda: outer.set_exception(exc))
        else:
            settle(lambda: outer.set_result(done.result()))

    timer.start()
    inner.add_done_callback(copy)
    return outer
