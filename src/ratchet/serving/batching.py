"""Micro-batching: concurrent requests for one model version share one ``predict`` call.

A model call has a fixed cost (input conversion, scikit-learn's checks) that dwarfs the
per-row cost for small requests, so answering 8 one-row requests with one 8-row call is
several times cheaper than 8 calls. The batcher never waits on a clock for company: when
no call for the model is running, a request goes at the end of the current event-loop
pass (so requests whose bytes arrived together, up to ``max_batch_rows`` rows, share the
call; a lone client waits for nothing); requests that arrive while a call runs wait for
it to finish and then go together. A waiting request never waits more than
``max_wait_ms`` for the running call: after that its batch goes on another worker thread.

Model calls run on worker threads, never on the event loop. Each caller gets its own rows
back. If a batched call raises, every request of the batch is retried alone, so one
request that makes the model raise never fails another; a request alone gets the
exception. Validation, routing and logging stay per request (in ``InferenceService``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ratchet.serving.served_model import ServedModel

log = logging.getLogger(__name__)

DEFAULT_MAX_WAIT_MS = 1.0
DEFAULT_MAX_BATCH_ROWS = 256
WORKER_THREADS = 2


@dataclass
class _Pending:
    columns: Mapping[str, list[Any]]
    n_rows: int
    future: asyncio.Future[dict[str, list[Any]]]


@dataclass
class _Queue:
    """One model version's waiting requests and how many of its calls are running."""

    waiting: list[_Pending] = field(default_factory=list)
    rows: int = 0
    running: int = 0
    timer: asyncio.TimerHandle | asyncio.Handle | None = None


class MicroBatcher:
    """``await batcher.predict(model, columns, n_rows)``: the model's output columns for
    these rows, computed on a worker thread, possibly together with other requests'.

    Used from one event loop (the server's); the model calls run on ``WORKER_THREADS``
    threads of its own.
    """

    def __init__(self, *, max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
                 max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
                 threads: int = WORKER_THREADS) -> None:
        if max_wait_ms < 0 or max_batch_rows < 1:
            raise ValueError("max_wait_ms must be >= 0 and max_batch_rows >= 1")
        self.max_wait_s = max_wait_ms / 1000
        self.max_batch_rows = max_batch_rows
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="ratchet-predict")
        # Keyed by the ServedModel object: a swapped-in version gets its own queue, and an
        # old one's entry goes when its last call ends.
        self._queues: dict[int, tuple[ServedModel, _Queue]] = {}
        self.calls = 0       # model calls made (for tests and metrics)
        self.batched = 0     # requests answered by a call shared with another request

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def predict(self, model: ServedModel, columns: Mapping[str, list[Any]],
                      n_rows: int) -> dict[str, list[Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, list[Any]]] = loop.create_future()
        key = id(model)
        entry = self._queues.get(key)
        if entry is None or entry[0] is not model:
            entry = self._queues[key] = (model, _Queue())
        queue = entry[1]
        queue.waiting.append(_Pending(columns, n_rows, future))
        queue.rows += n_rows
        if queue.rows >= self.max_batch_rows:
            self._dispatch(loop, model, queue)
        elif queue.timer is None:
            # Idle: after the requests already runnable in this loop pass (they were read
            # in the same poll) have joined. Busy: when the running call ends, or at most
            # max_wait_ms from now.
            queue.timer = (loop.call_soon(self._dispatch, loop, model, queue)
                           if queue.running == 0 else
                           loop.call_later(self.max_wait_s, self._dispatch, loop, model,
                                           queue))
        return await future

    # ------------------------------------------------------------------ on the loop
    def _dispatch(self, loop: asyncio.AbstractEventLoop, model: ServedModel,
                  queue: _Queue) -> None:
        if queue.timer is not None:
            queue.timer.cancel()
            queue.timer = None
        while queue.waiting:
            batch: list[_Pending] = []
            rows = 0
            while queue.waiting and (not batch or rows + queue.waiting[0].n_rows
                                     <= self.max_batch_rows):
                pending = queue.waiting.pop(0)
                batch.append(pending)
                rows += pending.n_rows
            queue.rows -= rows
            queue.running += 1
            self.calls += 1
            if len(batch) > 1:
                self.batched += len(batch)
            done = loop.run_in_executor(self._pool, _run, model, batch)
            done.add_done_callback(
                lambda f, b=batch: self._finished(loop, model, queue, b, f))  # type: ignore[misc]

    def _finished(self, loop: asyncio.AbstractEventLoop, model: ServedModel, queue: _Queue,
                  batch: list[_Pending], done: asyncio.Future[list[Any]]) -> None:
        queue.running -= 1
        try:
            results = done.result()
        except BaseException as exc:  # the pool itself failed (shut down): fail the batch
            results = [exc] * len(batch)
        for pending, result in zip(batch, results, strict=True):
            if pending.future.cancelled():
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        if queue.waiting:
            self._dispatch(loop, model, queue)
        elif queue.running == 0:
            key = id(model)
            entry = self._queues.get(key)
            if entry is not None and entry[1] is queue:
                del self._queues[key]


# ---------------------------------------------------------------------- on a worker thread
def _run(model: ServedModel, batch: list[_Pending]) -> list[Any]:
    """One result per request: its output columns, or the exception its rows raised."""
    if len(batch) == 1:
        return [_alone(model, batch[0])]
    names = list(batch[0].columns)
    merged: dict[str, list[Any]] = {n: [] for n in names}
    try:
        for pending in batch:
            for name in names:
                merged[name].extend(pending.columns[name])
        outputs = model.predict(merged)
        total = sum(p.n_rows for p in batch)
        if any(len(v) != total for v in outputs.values()):
            raise ValueError("the model answered a different number of rows")
    except Exception as exc:
        # One request's rows may be what made the model raise: each one alone, so the
        # others still get their answer.
        log.debug("batched call of %s failed (%s); retrying each request alone",
                  model.ref, exc)
        return [_alone(model, pending) for pending in batch]
    results, start = [], 0
    for pending in batch:
        end = start + pending.n_rows
        results.append({k: v[start:end] for k, v in outputs.items()})
        start = end
    return results


def _alone(model: ServedModel, pending: _Pending) -> Any:
    try:
        return model.predict(pending.columns)
    except Exception as exc:
        return exc
