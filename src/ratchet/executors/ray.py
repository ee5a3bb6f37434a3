"""The Ray executor: each task is a Ray task, scheduled by its ``Resources``.

Where it runs is :mod:`ratchet.executors.ray_cluster`'s business: ``RayExecutor(address)``,
else ``RAY_ADDRESS``, else a private single-machine cluster bound to 127.0.0.1, started on
first use and stopped by ``shutdown()``; the process's one Ray connection is shared by
the executors in it.

Tasks: the callable is pickled with cloudpickle in the driver and run in a Ray task with
``num_cpus`` / ``num_gpus`` / ``memory`` from ``Resources``. An exception raised by the
task comes back as its original type, with the worker's traceback attached as a note.
Requests no node of the cluster can satisfy are refused up front with ``InvalidInput``
(Ray would queue them forever); this assumes the nodes present are all there will be, so
an autoscaling cluster must keep a node of the largest size up. Ray does not retry tasks
on its own: retries belong to the pipeline.

Timeouts count from the moment the task starts running on a worker, not from
submission, so tasks queued behind busy CPUs are not cut short. A task past its timeout
is killed (``ray.cancel(force=True)`` ends its worker process) and fails with
``StepTimeout``.

Code on the workers: a function defined in an importable module is pickled by
reference, so the worker must import the same module. When every node of the cluster is
on this machine, the workers get the driver's ``sys.path`` (as ``PYTHONPATH``) so test
modules and un-installed project code import as they do in the driver. On a remote
cluster the code must be installed on the nodes (ratchet itself included), e.g. in the
image, or shipped with a Ray ``runtime_env`` (``py_modules`` / ``working_dir``) that the
cluster or ``ray.init`` applies.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from ratchet.errors import ConfigError, InvalidInput, RatchetError, StepTimeout
from ratchet.executors import ray_cluster
from ratchet.executors.base import DEFAULT_RESOURCES, Executor, Resources
from ratchet.executors.ray_cluster import import_ray

T = TypeVar("T")

_POLL_S = 0.1  # how soon the watcher notices new tasks, cancellations and deadlines
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = "ratchet:started"


class RayExecutor(Executor):
    """Runs tasks on a Ray cluster (``address``, else ``RAY_ADDRESS``, else a local one)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None) -> None:
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise InvalidInput(f"address= must be a Ray address like '127.0.0.1:6379', "
                               f"got {address!r}")
        if num_cpus is not None and (not isinstance(num_cpus, int)
                                     or isinstance(num_cpus, bool) or num_cpus < 1):
            raise InvalidInput(f"num_cpus= must be a positive integer, got {num_cpus!r}")
        if importlib.util.find_spec("ray") is None:
            raise ConfigError(f"the Ray executor needs Ray, which is not installed: "
                              f"{ray_cluster.INSTALL_HINT}")
        self.address = address.strip() if address else None
        self.num_cpus = num_cpus
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._pending: list[_Pending] = []
        self._closing = False
        self._watcher: threading.Thread | None = None
        self._connected_to: str | None = None
        self._on_this_machine = False  # every node is here: workers get our sys.path
        self._nodes: list[dict[str, float]] = []

    # -- connection ------------------------------------------------------------------

    def _target(self) -> str | None:
        return self.address or os.environ.get("RAY_ADDRESS") or None

    def _connect(self) -> None:
        with self._lock:
            if self._connected_to is not None:
                return
            target = self._target()
            self._connected_to = ray_cluster.acquire(target, self.num_cpus)
            ray = import_ray()
            try:
                self._nodes = ray_cluster.node_resources(ray)
                self._on_this_machine = ray_cluster.cluster_is_on_this_machine(ray, target)
                self._closing = False
                self._watcher = threading.Thread(target=self._watch, daemon=True,
                                                 name="ratchet-ray-watcher")
                self._watcher.start()
            except BaseException:
                self._connected_to = None
                ray_cluster.release()
                raise

    @property
    def parallelism(self) -> int:
        self._connect()
        ray = import_ray()
        return max(int(ray.cluster_resources().get("CPU", 0)), 1)

    def describe(self) -> str:
        return f"ray({self._connected_to or self._target() or 'local'})"

    # -- submitting ------------------------------------------------------------------

    def submit(self, task: Callable[[], T], *, resources: Resources = DEFAULT_RESOURCES,
               timeout: float | None = None, name: str = "task") -> Future[T]:
        if not callable(task):
            raise InvalidInput(f"task {name!r} must be a callable with no arguments, "
                               f"got {type(task).__name__}")
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, int | float) or timeout <= 0):
            raise InvalidInput(f"timeout= must be a positive number of seconds, got {timeout!r}")
        import cloudpickle

        try:
            payload = cloudpickle.dumps(task)
        except Exception as exc:
            raise InvalidInput(f"task {name!r} cannot be sent to Ray workers because it does "
                               f"not pickle: {exc}. Capture paths and ids, not open files, "
                               "connections or locks.") from exc
        self._connect()
        ray = import_ray()
        self._check_feasible(ray, resources, name)
        options: dict[str, Any] = {"name": name, "num_cpus": resources.cpus,
                                   "num_gpus": resources.gpus}
        if resources.memory is not None:
            options["memory"] = resources.memory
        if self._on_this_machine:  # read per task: sys.path may have grown since connecting
            options["runtime_env"] = {"env_vars": {"PYTHONPATH": ray_cluster.driver_pythonpath()}}
        future: Future[T] = Future()
        with self._lock:
            if self._connected_to is None or self._closing:
                raise RatchetError(f"cannot submit {name!r}: the Ray executor is shutting down")
            if self._watcher is None or not self._watcher.is_alive():
                raise RatchetError(f"cannot submit {name!r}: the Ray executor lost its "
                                   f"cluster ({self._connected_to}); shut it down and retry")
            generator = _runner(ray).options(**options).remote(payload)
            self._pending.append(_Pending(name, future, generator, timeout))
            self._wakeup.notify_all()

        def cancel_now(done: Future[T]) -> None:
            # Runs inside future.cancel(): the queued Ray task is cancelled before cancel()
            # returns, not at the watcher's next poll (it could start in between).
            if done.cancelled():
                with suppress(Exception):
                    ray.cancel(generator, force=True)

        future.add_done_callback(cancel_now)
        return future

    def _check_feasible(self, ray: Any, resources: Resources, name: str) -> None:
        asked = {"CPU": float(resources.cpus), "GPU": float(resources.gpus),
                 "memory": float(resources.memory or 0)}

        def fits() -> bool:
            return any(all(node.get(key, 0.0) >= value for key, value in asked.items())
                       for node in self._nodes)

        if fits():
            return
        self._nodes = ray_cluster.node_resources(ray)  # nodes may have joined since we looked
        if fits():
            return
        largest = {key: max((node.get(key, 0.0) for node in self._nodes), default=0.0)
                   for key in asked}
        short = [key for key, value in asked.items() if largest[key] < value] or list(asked)
        raise InvalidInput(
            f"task {name!r} asks for {_describe(asked, short)}, but no node of the Ray "
            f"cluster at {self._connected_to} has that much (the largest has "
            f"{_describe(largest, short)}), so Ray would queue it forever. Lower the step's "
            "resources or add a bigger node to the cluster.")

    # -- watching --------------------------------------------------------------------

    def _watch(self) -> None:
        """One thread per executor follows every task: start, result, deadline, cancel.

        A task reports first that it started, then its result (a Ray streaming
        generator), so the deadline can count from the start."""
        ray = import_ray()
        try:
            while True:
                with self._wakeup:
                    while not self._pending and not self._closing:
                        self._wakeup.wait()
                    if not self._pending:
                        return
                    pending = list(self._pending)
                waiting = [p for p in pending if not self._expire(ray, p)]
                if not waiting:
                    continue
                now = time.monotonic()
                wait_s = min([_POLL_S] + [p.deadline - now for p in waiting
                                          if p.deadline is not None])
                generators = [p.generator for p in waiting]
                ready, _ = ray.wait(generators, num_returns=1, timeout=max(wait_s, 0.0))
                if ready:  # collect everything else that is ready too
                    ready, _ = ray.wait(generators, num_returns=len(generators), timeout=0)
                ready_ids = {id(g) for g in ready}
                for p in waiting:
                    if id(p.generator) in ready_ids:
                        self._advance(ray, p)
        except Exception as exc:  # e.g. the cluster went away: fail, never hang
            with self._lock:
                pending, self._pending = self._pending, []
            for p in pending:
                _settle(p.future, exc=RatchetError(
                    f"lost track of Ray task {p.name!r}: {type(exc).__name__}: {exc}"))

    def _expire(self, ray: Any, p: _Pending) -> bool:
        """Cancel ``p`` if the caller cancelled it or its deadline passed; True if so."""
        if p.future.cancelled():
            ray.cancel(p.generator, force=True)
        elif p.deadline is not None and time.monotonic() >= p.deadline:
            ray.cancel(p.generator, force=True)
            _settle(p.future, exc=StepTimeout(
                f"{p.name} did not finish within its timeout of {p.timeout:g} s; its Ray "
                "task was cancelled and its worker process killed"))
        else:
            return False
        self._forget(p)
        return True

    def _advance(self, ray: Any, p: _Pending) -> None:
        try:
            ref = next(p.generator)
        except StopIteration:  # the task ended without reporting a result
            _settle(p.future, exc=RatchetError(f"Ray task {p.name!r} ended without a result"))
            self._forget(p)
            return
        try:
            value = ray.get(ref)
        except Exception as exc:  # the task's own error (or Ray's), handed to the caller
            _settle(p.future, exc=_unwrap(ray, exc, p.name))
            self._forget(p)
            return
        if not p.started:  # the first item only says the task is running now
            p.started = True
            if not p.future.set_running_or_notify_cancel():  # cancelled while queued
                ray.cancel(p.generator, force=True)
                self._forget(p)
            elif p.timeout is not None:
                p.deadline = time.monotonic() + p.timeout
            return
        _settle(p.future, result=value)
        self._forget(p)

    def _forget(self, p: _Pending) -> None:
        with self._lock:
            if p in self._pending:
                self._pending.remove(p)

    # -- shutting down ---------------------------------------------------------------

    def shutdown(self) -> None:
        """Cancel tasks that have not started, wait for running ones, then disconnect
        (and stop the local cluster if this executor's process started it)."""
        with self._wakeup:
            if self._connected_to is None:
                return
            self._closing = True
            for p in self._pending:
                if not p.started:
                    p.future.cancel()
            self._wakeup.notify_all()
            watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join()  # (a done-callback runs on the watcher: it cannot wait for itself)
        with self._lock:
            self._connected_to = None
            self._on_this_machine = False
        ray_cluster.release()


@dataclass(eq=False)
class _Pending:
    name: str
    future: Future[Any]
    generator: Any  # ray.ObjectRefGenerator: touched only by the watcher thread
    timeout: float | None
    deadline: float | None = None
    started: bool = False


def _settle(future: Future[Any], *, result: Any = None, exc: BaseException | None = None) -> None:
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except InvalidStateError:  # cancelled or already timed out: the outcome is dropped
        pass


def _describe(amounts: dict[str, float], keys: list[str]) -> str:
    return ", ".join(f"memory={amounts[key] / 2**30:.3g} GiB" if key == "memory"
                     else f"{key}={amounts[key]:g}" for key in keys)


def _unwrap(ray: Any, exc: BaseException, name: str) -> BaseException:
    """The user's own exception instead of Ray's wrapper, with the worker's traceback."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException) and not isinstance(cause, ray.exceptions.RayError):
            # str() of Ray's wrapper is the worker-side traceback (with terminal colours).
            cause.add_note(f"Raised in Ray task {name!r}; traceback in the worker:\n"
                           + _ANSI.sub("", str(exc)))
            return cause
    return exc


# -- the task as Ray runs it -------------------------------------------------------------

_RUNNER: Any = None


def _run_task(payload: bytes) -> Iterator[Any]:
    """Runs in the Ray worker: report the start, then the task's return value."""
    yield _STARTED
    import cloudpickle

    try:
        task = cloudpickle.loads(payload)
    except Exception as exc:
        raise ConfigError(
            f"a Ray worker could not load the task: {type(exc).__name__}: {exc}. The "
            "task's code must be importable on the cluster's nodes: install it there or "
            "ship it with a Ray runtime_env (py_modules / working_dir).") from exc
    yield task()


def _runner(ray: Any) -> Any:
    global _RUNNER
    if _RUNNER is None:
        # max_retries=0: a failed or killed task is reported, the pipeline decides retries.
        _RUNNER = ray.remote(num_returns="streaming", max_retries=0)(_run_task)
    return _RUNNER
