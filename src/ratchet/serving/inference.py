"""Answering one request under a routing table: route, validate, predict, log, count.

Shared by the HTTP server and batch scoring, so both check and log the same way. The
caller hands in parsed columns; what comes back is an :class:`Answer` or an exception
(:class:`RequestInvalid` for the client's mistakes, :class:`ModelFailed` when the model
raised on valid input). A canary or split variant that raises is answered by the primary
instead (counted as the variant's error), so a bad challenger costs callers nothing. The
shadow runs off the request path on one background thread, bounded, and its answers are
only logged (``shadow_inline=True``: in the calling thread, never dropped — a backtest,
whose replay must not depend on thread timing). What is logged goes to a
:class:`~ratchet.serving.prediction_sink.PredictionSink`: the server's Parquet log, or a
backtest's in-memory one. :meth:`InferenceService.answer` predicts in the calling thread;
:meth:`InferenceService.answer_async` (the server) awaits each model call through a
predict function, the micro-batcher, so routing, validation and logging stay per request
while model calls are shared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.errors import ModelFailed
from ratchet.serving.request_formats import ParsedRequest
from ratchet.serving.request_validation import RequestInvalid, ValidatedRequest

if TYPE_CHECKING:
    from ratchet.serving.deployment_watcher import Route, RoutingTable
    from ratchet.serving.prediction_sink import PredictionSink
    from ratchet.serving.served_model import ServedModel
    from ratchet.serving.serving_metrics import ServingMetrics

log = logging.getLogger(__name__)
MAX_PENDING_SHADOW = 256

# ``await predict(model, columns, n_rows)``: a model's output columns (the micro-batcher).
AsyncPredict = Callable[["ServedModel", dict[str, Any], int],
                        Awaitable[dict[str, list[Any]]]]


@dataclass
class Answer:
    request_id: str
    model: ServedModel                  # who answered row 0
    outputs: dict[str, list[Any]]
    row_models: list[ServedModel] | None  # per row, when rows went to different versions
    flags: list[list[str] | None] | None  # per row (None: clean row)


class InferenceService:
    def __init__(self, deployment: str, metrics: ServingMetrics | None,
                 prediction_log: PredictionSink | None,
                 clock_ms: Callable[[], int] | None = None, *,
                 shadow_inline: bool = False) -> None:
        from ratchet.clock import now_ms

        self.deployment = deployment
        self.metrics = metrics
        self.log = prediction_log
        self.now_ms = clock_ms or now_ms
        self.shadow_inline = shadow_inline
        self._shadow_pool: ThreadPoolExecutor | None = None
        self._shadow_slots = threading.BoundedSemaphore(MAX_PENDING_SHADOW)
        self.shadow_dropped = 0

    def close(self) -> None:
        if self._shadow_pool is not None:
            self._shadow_pool.shutdown(wait=True)

    # ------------------------------------------------------------------ answering
    def answer(self, table: RoutingTable, request: ParsedRequest, request_id: str,
               arrival_ms: int, started: float) -> Answer:
        """Route, validate, predict (in this thread), log: the synchronous path."""
        groups, validated = self.validate(table, request, arrival_ms)
        parts = {idx: self._predict(table, idx, validated[idx], rows if len(groups) > 1
                                    else None, request, request_id, arrival_ms, started)
                 for idx, rows in groups.items()}
        return self.assemble(table, request, request_id, arrival_ms, groups, validated, parts)

    async def answer_async(self, table: RoutingTable, request: ParsedRequest,
                           request_id: str, arrival_ms: int, started: float,
                           predict: AsyncPredict, *, offload: bool = False) -> Answer:
        """The same as :meth:`answer` with the model calls awaited through ``predict``
        (the server's micro-batcher); routing, validation and logging stay per request.
        ``offload``: validate in a thread (a large request would stall the event loop)."""
        if offload:
            import asyncio

            groups, validated = await asyncio.to_thread(self.validate, table, request,
                                                         arrival_ms)
        else:
            groups, validated = self.validate(table, request, arrival_ms)
        parts = {}
        for idx, rows in groups.items():
            parts[idx] = await self._predict_async(
                table, idx, validated[idx], rows if len(groups) > 1 else None, request,
                request_id, arrival_ms, started, predict)
        return self.assemble(table, request, request_id, arrival_ms, groups, validated, parts)

    def validate(self, table: RoutingTable, request: ParsedRequest,
                 arrival_ms: int | None = None
                 ) -> tuple[dict[int, list[int]], dict[int, ValidatedRequest]]:
        """Which route answers which rows, and the request validated for each route.
        ``arrival_ms``: the time a model served from entity keys reads its features as of
        (the time the prediction log records)."""
        groups = self._route(table, request)
        validated: dict[int, ValidatedRequest] = {}
        try:
            for idx in groups:
                validated[idx] = table.routes[idx].model.validator.validate(
                    request, now_ms=arrival_ms)
        except RequestInvalid as exc:
            if self.metrics is not None:
                self.metrics.rejected(exc.problems)
                self.metrics.observe(table.routes[0].model, "invalid", 0.0)
            raise
        return groups, validated

    def assemble(self, table: RoutingTable, request: ParsedRequest, request_id: str,
                 arrival_ms: int, groups: dict[int, list[int]],
                 validated: dict[int, ValidatedRequest],
                 parts: dict[int, tuple[dict[str, list[Any]], ServedModel]]) -> Answer:
        n = request.n_rows
        row_models: list[ServedModel] | None
        if len(groups) == 1:
            (outputs, model), = parts.values()
            row_models = None
        else:
            outputs, row_models = {}, [table.routes[0].model] * n
            for idx, rows in groups.items():
                part, model = parts[idx]
                for name, values in part.items():
                    column = outputs.setdefault(name, [None] * n)
                    for row, value in zip(rows, values, strict=True):
                        column[row] = value
                for row in rows:
                    row_models[row] = model
            model = row_models[0]
        first = next(iter(validated.values()))
        if self.metrics is not None and first.flag_counts:
            self.metrics.flagged(first.flag_counts)
        if table.shadow is not None:
            self._shadow(table.shadow, request, request_id, arrival_ms, outputs)
        return Answer(request_id, model, outputs, row_models, first.flags)

    def _route(self, table: RoutingTable, request: ParsedRequest) -> dict[int, list[int]]:
        key = table.plan.key
        if key is not None and key in request.columns and len(table.routes) > 1:
            groups: dict[int, list[int]] = {}
            for row, idx in enumerate(table.router.pick_rows(request.columns[key])):
                groups.setdefault(idx, []).append(row)
            return groups
        return {table.router.pick_request(): list(range(request.n_rows))}

    def _predict(self, table: RoutingTable, idx: int, validated: ValidatedRequest,
                 rows: list[int] | None, request: ParsedRequest, request_id: str,
                 arrival_ms: int, started: float) -> tuple[dict[str, list[Any]], ServedModel]:
        route = table.routes[idx]
        columns = _rows_of(validated.columns, rows)
        try:
            outputs = route.model.predict(columns)
        except Exception as exc:
            fallback = self._fallback(table, idx, validated, columns, rows, request,
                                      request_id, arrival_ms, started, exc)
            return self._predict(table, 0, fallback, rows, request, request_id, arrival_ms,
                                 started)
        self._record(route, columns, outputs, validated, rows, request_id, arrival_ms, started)
        return outputs, route.model

    async def _predict_async(self, table: RoutingTable, idx: int, validated: ValidatedRequest,
                             rows: list[int] | None, request: ParsedRequest, request_id: str,
                             arrival_ms: int, started: float, predict: AsyncPredict
                             ) -> tuple[dict[str, list[Any]], ServedModel]:
        route = table.routes[idx]
        columns = _rows_of(validated.columns, rows)
        try:
            outputs = await predict(route.model, columns,
                                    request.n_rows if rows is None else len(rows))
        except Exception as exc:
            fallback = self._fallback(table, idx, validated, columns, rows, request,
                                      request_id, arrival_ms, started, exc)
            return await self._predict_async(table, 0, fallback, rows, request, request_id,
                                             arrival_ms, started, predict)
        self._record(route, columns, outputs, validated, rows, request_id, arrival_ms, started)
        return outputs, route.model

    def _fallback(self, table: RoutingTable, idx: int, validated: ValidatedRequest,
                  columns: dict[str, Any], rows: list[int] | None, request: ParsedRequest,
                  request_id: str, arrival_ms: int, started: float,
                  exc: Exception) -> ValidatedRequest:
        """After route ``idx`` raised: log it; the primary's validation of the request to
        answer the same rows with, or :class:`ModelFailed` when the primary raised."""
        route = table.routes[idx]
        self._failed(route, validated, columns, rows, request_id, arrival_ms, started, exc)
        if idx == 0:
            raise ModelFailed(f"model {route.model.ref} failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        # A canary/variant failure is answered by the primary, for the same rows.
        return table.routes[0].model.validator.validate(request, now_ms=arrival_ms)

    # ------------------------------------------------------------------ bookkeeping
    def _record(self, route: Route, columns: dict[str, Any], outputs: dict[str, list[Any]],
                validated: ValidatedRequest, rows: list[int] | None, request_id: str,
                arrival_ms: int, started: float, status: str = "ok",
                error: str | None = None) -> None:
        if self.metrics is not None and status == "ok":
            self.metrics.observe_outputs(route.model, outputs)
        if self.log is None:
            return
        from ratchet.serving.prediction_log import LoggedRequest

        flags = validated.flags
        if flags is not None and rows is not None:
            flags = [flags[i] for i in rows]
        inputs = dict(columns)
        inputs.update(validated.extras if rows is None else {
            k: [v[i] for i in rows] for k, v in validated.extras.items()})
        self.log.record(LoggedRequest(
            request_id=request_id, timestamp_ms=arrival_ms, deployment=self.deployment,
            model_name=route.model.ref.name, model_version=route.model.ref.version,
            variant=route.variant, latency_ms=(time.perf_counter() - started) * 1000,
            inputs=inputs, outputs=outputs, rows=rows, flags=flags, status=status,
            error=error))

    def _failed(self, route: Route, validated: ValidatedRequest, columns: dict[str, Any],
                rows: list[int] | None, request_id: str, arrival_ms: int, started: float,
                exc: Exception) -> None:
        log.warning("deployment %s: %s (%s) raised %s: %s", self.deployment, route.model.ref,
                    route.variant, type(exc).__name__, exc)
        if self.metrics is not None:
            self.metrics.observe(route.model, "error", 0.0)
        self._record(route, columns, {}, validated, rows, request_id, arrival_ms, started,
                     status="error", error=f"{type(exc).__name__}: {exc}")

    def _shadow(self, route: Route, request: ParsedRequest, request_id: str, arrival_ms: int,
                served: dict[str, list[Any]]) -> None:
        if self.shadow_inline:
            self._shadow_slots.acquire()
            self._run_shadow(route, request, request_id, arrival_ms, served.get("prediction"))
            return
        if not self._shadow_slots.acquire(blocking=False):
            self.shadow_dropped += 1  # never let the shadow slow or block the caller
            return
        if self._shadow_pool is None:
            self._shadow_pool = ThreadPoolExecutor(1, thread_name_prefix="ratchet-shadow")
        self._shadow_pool.submit(self._run_shadow, route, request, request_id, arrival_ms,
                                 served.get("prediction"))

    def _run_shadow(self, route: Route, request: ParsedRequest, request_id: str,
                    arrival_ms: int, served: list[Any] | None) -> None:
        started = time.perf_counter()
        try:
            try:
                validated = route.model.validator.validate(request, now_ms=arrival_ms)
            except RequestInvalid as exc:
                if self.log is not None:
                    from ratchet.serving.prediction_log import LoggedRequest

                    self.log.record(LoggedRequest(
                        request_id, arrival_ms, self.deployment, route.model.ref.name,
                        route.model.ref.version, route.variant, 0.0, {}, {},
                        status="error", error=str(exc)))
                return
            try:
                outputs = route.model.predict(validated.columns)
            except Exception as exc:
                self._failed(route, validated, validated.columns, None, request_id, arrival_ms,
                             started, exc)
                return
            self._record(route, validated.columns, outputs, validated, None, request_id,
                         arrival_ms, started)
            ours = outputs.get("prediction")
            if self.metrics is not None and served is not None and ours is not None:
                differ = sum(a != b for a, b in zip(served, ours, strict=False))
                if differ:
                    self.metrics.shadow_disagreements.labels(
                        self.deployment, route.model.ref.name,
                        str(route.model.ref.version)).inc(differ)
        except Exception:  # the shadow must never take the server down
            log.exception("deployment %s: shadow %s failed", self.deployment, route.model.ref)
        finally:
            self._shadow_slots.release()


def _rows_of(columns: dict[str, Any], rows: list[int] | None) -> dict[str, Any]:
    return columns if rows is None else {k: [v[i] for i in rows] for k, v in columns.items()}
