"""The workspace's stores over HTTP: ``workspace.stores`` in remote mode.

``HttpStores`` has the attributes ``SqlStores`` has (``tracking``, ``registry``, …) and
each has the same methods, implemented by one call to the server's store API
(``POST /api/v1/<store>/<method>``, see ``ratchet.server.store_routes``) with the
arguments and result carried by ``ratchet.wire``. Everything above the store layer —
clients, fluent API, CLI, serving, the controller — runs unchanged.

Writes carry a fresh ``Idempotency-Key`` and are retried with it, so a retry after a
lost connection never creates a second run, metric or version. ``log_metric`` is queued
and sent in batches by a background thread (at most ``FLUSH_INTERVAL_S`` later), so a
training loop does not wait a round trip per point; any other call, the end of the run
and the end of the process flush the queue first, so reads always see earlier writes.
"""

from __future__ import annotations

import atexit
import threading
import uuid
import weakref
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ratchet.remote.session import API_PREFIX, RemoteSession
from ratchet.remote.store_api import EXPOSED, SERVER_ONLY, store_classes

if TYPE_CHECKING:
    from ratchet.wire import MethodWire

FLUSH_INTERVAL_S = 0.5
MAX_QUEUED_POINTS = 10_000
BATCH_POINTS = 10_000


class RemoteStore:
    """One store's methods, each a call to the server."""

    def __init__(self, stores: HttpStores, name: str) -> None:
        self._stores = stores
        self._name = name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        if method in SERVER_ONLY.get(self._name, ()):
            raise AttributeError(f"{self._name}.{method} runs on the server only")
        if method not in EXPOSED.get(self._name, {}):
            raise AttributeError(f"the {self._name} store has no method {method!r}")
        wire = self._stores.wire(self._name, method)
        writes = EXPOSED[self._name][method].level != "read"

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._stores.call(wire, writes, args, kwargs)

        call.__name__ = method
        call.__doc__ = wire.function.__doc__
        setattr(self, method, call)  # found directly next time
        return call

    def __repr__(self) -> str:
        return f"RemoteStore({self._name!r}, {self._stores.session!r})"


class RemoteTrackingStore(RemoteStore):
    """Tracking with ``log_metric`` queued and sent in batches."""

    def __init__(self, stores: HttpStores, name: str) -> None:
        super().__init__(stores, name)
        self._known_runs: set[str] = set()

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0,
                   timestamp: int | None = None) -> None:
        from ratchet.clock import now_ms
        from ratchet.store.tracking_store import metric_value, validate_key

        validate_key("metric", key)  # errors at the call, as locally, not at the flush
        value = metric_value(key, value)
        if isinstance(step, bool) or not isinstance(step, int):
            step = int(step)
        if run_id not in self._known_runs:  # a wrong run id fails here, as locally
            self.require_run(run_id)
            self._known_runs.add(run_id)
        self._stores.metrics.put(run_id, (key, value, step, timestamp or now_ms()))

    def log_params(self, run_id: str, values: Any) -> None:
        # The store keeps str(value); sending the text keeps tuples, NumPy scalars and
        # other objects exactly as a local store would write them.
        self._stores.call(self._stores.wire("tracking", "log_params"), True,
                          (run_id, {k: str(v) for k, v in values.items()}), {})

    def set_tags(self, run_id: str, values: Any) -> None:
        self._stores.call(self._stores.wire("tracking", "set_tags"), True,
                          (run_id, {k: v if v is None else str(v)
                                    for k, v in values.items()}), {})


class MetricQueue:
    """Metric points waiting to be sent, flushed by a daemon thread, at ``flush()`` and
    at exit. A failed background flush is raised by the next call."""

    def __init__(self, stores: HttpStores) -> None:
        self._stores = weakref.ref(stores)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._points: list[tuple[str, tuple[str, float, int, int]]] = []
        self._failure: BaseException | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def put(self, run_id: str, point: tuple[str, float, int, int]) -> None:
        self.raise_failure()
        with self._lock:
            self._points.append((run_id, point))
            full = len(self._points) >= MAX_QUEUED_POINTS
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="ratchet-metric-flush")
                self._thread.start()
        if full:
            self.flush()

    def _loop(self) -> None:
        while not self._wake.wait(FLUSH_INTERVAL_S):
            if self._stores() is None:
                return
            try:
                self.flush(raise_failure=False)
            except BaseException as exc:  # kept for the caller's next call
                self._failure = exc

    def raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def flush(self, *, raise_failure: bool = True) -> None:
        if raise_failure:
            self.raise_failure()
        with self._send_lock:
            with self._lock:
                points, self._points = self._points, []
            if not points:
                return
            stores = self._stores()
            if stores is None:
                return
            by_run: dict[str, list[tuple[str, float, int, int]]] = {}
            for run_id, point in points:
                by_run.setdefault(run_id, []).append(point)
            wire = stores.wire("tracking", "log_batch")
            for run_id, run_points in by_run.items():
                for start in range(0, len(run_points), BATCH_POINTS):
                    stores.call(wire, True, (run_id, run_points[start:start + BATCH_POINTS]),
                                {}, flush=False)

    def close(self) -> None:
        self._wake.set()
        try:
            self.flush()
        finally:
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=5)


class HttpStores:
    """Every store of a remote workspace, over one connection pool."""

    def __init__(self, session: RemoteSession) -> None:
        self.session = session
        self.metrics = MetricQueue(self)
        self._wires: dict[tuple[str, str], MethodWire] = {}
        atexit.register(_flush_at_exit, weakref.ref(self))

    def wire(self, store: str, method: str) -> MethodWire:
        found = self._wires.get((store, method))
        if found is None:
            from ratchet.wire import MethodWire

            cls = store_classes()[store]
            found = self._wires[(store, method)] = MethodWire(store, method,
                                                              getattr(cls, method))
        return found

    def call(self, wire: MethodWire, writes: bool, args: tuple[Any, ...],
             kwargs: dict[str, Any], *, flush: bool = True) -> Any:
        if flush:
            self.metrics.flush()
        body = wire.encode_call(args, kwargs)
        headers = {"Idempotency-Key": uuid.uuid4().hex} if writes else None
        response = self.session.call("POST", f"{API_PREFIX}/{wire.store}/{wire.name}",
                                     json_body=body, idempotent=True, headers=headers)
        return wire.decode_result(response.content)

    def flush(self) -> None:
        """Send queued metric points now (the end of a run does this)."""
        self.metrics.flush()

    def close(self) -> None:
        try:
            self.metrics.close()
        finally:
            self.session.close()

    @cached_property
    def tracking(self) -> RemoteTrackingStore:
        return RemoteTrackingStore(self, "tracking")

    def __getattr__(self, name: str) -> RemoteStore:
        if name.startswith("_") or name not in EXPOSED:
            raise AttributeError(name)
        store = RemoteStore(self, name)
        setattr(self, name, store)
        return store

    def __repr__(self) -> str:
        return f"HttpStores({self.session!r})"


def _flush_at_exit(ref: weakref.ReferenceType[HttpStores]) -> None:
    stores = ref()
    if stores is not None:
        try:
            stores.metrics.close()
        except Exception as exc:  # the process is ending: say what was lost
            import sys

            print(f"ratchet: metric points not sent to the server: {exc}", file=sys.stderr)
