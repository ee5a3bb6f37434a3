"""The HTTP server: a thin FastAPI adapter over :class:`InferenceService`.

Bodies are read as bytes and parsed by ``request_formats`` (not by pydantic), because the
three wire formats differ and validation must say row *and* field; the pydantic models
below only document the bodies in the OpenAPI schema. The event loop only awaits: small
bodies are parsed and validated on it (microseconds), large ones in a thread, and every
model call runs on a worker thread of the micro-batcher (``batching.py``), which gathers
concurrent requests for one model version into one call. ``access.py`` guards every route
(Host allowlist, content types, bearer tokens, requests in flight).

FastAPI resolves handler annotations at run time, so its types are imported at the top.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ratchet.errors import InvalidInput
from ratchet.ids import new_id
from ratchet.serving.access import AccessPolicy
from ratchet.serving.batching import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_WAIT_MS
from ratchet.serving.request_formats import (
    OIP_HEADER_LENGTH,
    BadRequest,
    ParsedRequest,
    ParseLimits,
    decode_json,
    parse_mlflow,
    parse_native,
    parse_oip_body,
)
from ratchet.serving.request_validation import RequestInvalid, ValidationPolicy
from ratchet.serving.traffic_plan import Router

if TYPE_CHECKING:
    from ratchet.config import Settings
    from ratchet.serving.access import TokenSet
    from ratchet.serving.batching import MicroBatcher
    from ratchet.serving.deployment_watcher import DeploymentWatcher, ModelSource, RoutingTable
    from ratchet.serving.inference import Answer, InferenceService
    from ratchet.serving.prediction_log import PredictionLog
    from ratchet.serving.served_model import ServedModel
    from ratchet.serving.serving_metrics import ServingMetrics

log = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_THREAD_FROM_ROWS = 64
_THREAD_FROM_BYTES = 64 * 1024
MONITOR_POLL_S = 5.0
_JSON = "application/json"


@dataclass(frozen=True)
class ServingConfig:
    policy: ValidationPolicy = field(default_factory=ValidationPolicy)
    max_body_bytes: int = 16 * 1024 * 1024
    poll_interval_s: float = 1.0
    log_predictions: bool = True
    log_flush_interval_s: float = 1.0
    log_max_buffered_rows: int = 200_000
    # A worker accepts connections at once (/health/live answers while it loads); a
    # request that comes before the first model is loaded waits for it (up to this long),
    # so that with several workers none answers 503 while a sibling is ready.
    startup_wait_s: float = 120.0
    # Micro-batching: concurrent requests for one model version share one model call
    # (off: each request its own call, still on a worker thread).
    batching: bool = True
    batch_max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    batch_max_rows: int = DEFAULT_MAX_BATCH_ROWS
    access: AccessPolicy = field(default_factory=AccessPolicy)


class _Server:
    """Everything a request handler needs, created on startup, closed on shutdown."""

    def __init__(self, deployment: str, source: ModelSource, config: ServingConfig,
                 settings: Settings | None) -> None:
        from ratchet.serving.deployment_watcher import DeploymentWatcher
        from ratchet.serving.inference import InferenceService
        from ratchet.serving.serving_metrics import ServingMetrics

        self.deployment = deployment
        self.config = config
        self.settings = settings
        self.metrics: ServingMetrics = ServingMetrics(deployment)
        self.log: PredictionLog | None = None
        if config.log_predictions and settings is not None:
            from ratchet.serving.prediction_log import PredictionLog

            self.log = PredictionLog(
                settings.artifacts_uri, flush_interval_s=config.log_flush_interval_s,
                max_buffered_rows=config.log_max_buffered_rows,
                on_drop=self.metrics.log_dropped.labels(deployment).inc,
                on_flush=self.metrics.log_rows.labels(deployment).inc)
        self.service: InferenceService = InferenceService(deployment, self.metrics, self.log)
        from ratchet.serving.access import TokenSet
        from ratchet.serving.batching import MicroBatcher

        self.tokens: TokenSet | None = TokenSet.from_environment(config.access.token_file)
        self.batcher: MicroBatcher = MicroBatcher(
            max_wait_ms=config.batch_max_wait_ms,
            max_batch_rows=config.batch_max_rows if config.batching else 1)
        self._stopped = threading.Event()
        self.watcher: DeploymentWatcher = DeploymentWatcher(
            deployment, source, poll_interval_s=config.poll_interval_s, policy=config.policy,
            on_load=self.metrics.loaded, on_swap=self.metrics.swapped)

    def start(self) -> None:
        self.watcher.start()
        if self.settings is not None:
            threading.Thread(target=self._export_monitor_results, daemon=True,
                             name="ratchet-monitor-gauges").start()

    def _export_monitor_results(self) -> None:
        """Every few seconds, the newest stored monitor result becomes gauges."""
        from ratchet.store.database import open_database
        from ratchet.store.monitor_store import MonitorStore

        assert self.settings is not None
        store = MonitorStore(open_database(self.settings.db_url))
        while True:
            try:
                latest = store.latest(self.deployment)
                if latest is not None:
                    self.metrics.monitor_result(latest.result_id, latest.result)
            except Exception as exc:  # the gauges are a convenience: never stop serving
                log.warning("deployment %s: cannot read monitor results: %s",
                            self.deployment, exc)
            if self._stopped.wait(MONITOR_POLL_S):
                return

    def stop(self) -> None:
        self._stopped.set()
        self.watcher.stop()
        self.batcher.close()
        self.service.close()
        if self.log is not None:
            self.log.close()


def create_app(model: str | None = None, *, deployment: str | None = None,
               bundle: str | None = None, settings: Settings | None = None,
               config: ServingConfig | None = None, trust: bool = False) -> FastAPI:
    """A FastAPI app serving a deployment.

    ``create_app("churn@champion")`` serves (and, the first time, creates) deployment
    ``churn`` with that single model; ``create_app(deployment="churn")`` serves an existing
    deployment under its stored plan; ``create_app(bundle="dist/churn")`` serves a bundle
    written by ``ratchet build`` without a registry. ``trust=True`` loads models whose
    format runs code (cloudpickle): only for models from a trusted source; a bundle built
    with ``ratchet build --trust`` records it.
    """
    from ratchet.config import load_settings

    config = config or ServingConfig()
    settings = settings or load_settings()
    source: ModelSource
    if bundle is not None:
        from ratchet.serving.bundle import load_bundle
        from ratchet.serving.deployment_watcher import StaticSource
        from ratchet.serving.served_model import ModelVersionRef

        info, loaded = load_bundle(bundle, trust=trust)
        deployment = deployment or info.deployment
        source = StaticSource(ModelVersionRef(info.model_name, info.model_version), loaded)
    else:
        from ratchet.registry.uris import parse_model_uri
        from ratchet.serving.deployment_watcher import RegistrySource
        from ratchet.serving.deployments import DeploymentClient

        client = DeploymentClient(settings=settings)
        if model is not None:
            ref = parse_model_uri(model)
            if ref.name is None:
                raise InvalidInput(f"serve a registered model (name@alias or name/version), "
                                   f"not {model!r}")
            deployment = deployment or ref.name
            client.ensure_serving(deployment, model)
        elif deployment is None:
            raise InvalidInput("create_app needs a model reference, a deployment or a bundle")
        else:
            client.status(deployment)  # NotFound now, not at the first request
        source = RegistrySource(deployment, client, trust=trust)
    assert deployment is not None
    return _build_app(_Server(deployment, source, config, settings))


def _build_app(server: _Server) -> FastAPI:
    import contextlib
    from collections.abc import AsyncIterator

    from starlette.concurrency import run_in_threadpool

    from ratchet.packaging.manifest import ratchet_version
    from ratchet.serving import api_schema
    from ratchet.serving.inference import ModelFailed

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.start()
        # No wait for the model here: uvicorn binds the port only after this returns, and
        # /health/live must answer while the model loads. Requests wait in ``handle``.
        # Everything imported and loaded so far lives as long as the process: keep it out
        # of the collector's full passes (~100 ms each with scikit-learn and pandas loaded),
        # which otherwise show up as p99 spikes.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await run_in_threadpool(server.stop)

    app = FastAPI(title=f"ratchet: {server.deployment}", version=ratchet_version(),
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    from ratchet.serving.docs_page import install_docs_page

    install_docs_page(app)  # /docs with Swagger UI's files served here, not from a CDN
    app.state.server = server
    metrics = server.metrics
    from ratchet.serving.access import AccessGuard

    def failure(status: int, message: str, request_id: str,
                problems: list[dict[str, Any]] | None = None) -> _Reply:
        body: dict[str, Any] = {"error": message, "request_id": request_id}
        if problems is not None:
            body["detail"] = problems
        return status, json.dumps(body).encode(), {"x-request-id": request_id}

    def error(status: int, message: str, request_id: str,
              problems: list[dict[str, Any]] | None = None) -> Response:
        return _response(failure(status, message, request_id, problems))

    def check_length(length: str | None) -> int:
        limit = server.config.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise BadRequest(f"the body is {length} bytes; the limit is {limit}", status=413)
        return limit

    async def read_body(request: Request) -> bytes:
        """The body, refused (413) as soon as it passes the limit: a client that sends no
        Content-Length, or a false one, cannot make the server buffer more than that."""
        limit = check_length(request.headers.get("content-length"))
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(f"the body is over the limit of {limit} bytes", status=413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def first_table() -> RoutingTable | None:
        """While the first model loads, a request waits for it (up to startup_wait_s);
        a load that failed for good is answered at once."""
        import asyncio

        watcher = server.watcher
        deadline = time.monotonic() + server.config.startup_wait_s
        while (watcher.table is None and not watcher.permanent_error
               and time.monotonic() < deadline):
            await asyncio.sleep(0.02)
        return watcher.table

    async def handle(header: Callable[[str], str | None], read: Callable[[], Awaitable[bytes]],
                     parse: Any, render: Any, pin: Any = None) -> _Reply:
        started = time.perf_counter()
        arrival_ms = time.time_ns() // 1_000_000
        supplied = header("x-request-id")
        request_id = supplied if supplied and _REQUEST_ID.match(supplied) else new_id()
        table = server.watcher.table or await first_table()
        if table is None:
            watcher = server.watcher
            if watcher.permanent_error:
                return failure(503, f"the model cannot be loaded: {watcher.permanent_error}",
                               request_id)
            return failure(503, "the model is not loaded yet; retry shortly"
                           + (f" ({watcher.last_error})" if watcher.last_error else ""),
                           request_id)
        if pin is not None and (table := pin(table)) is None:  # OIP: a version gone since
            return failure(404, "that model version is no longer served here", request_id)
        metrics.inflight_now.inc()
        try:
            try:
                body = await read()
                content_type = header("content-type") or _JSON
                # Parsing is bounded by the primary's limits while it runs (columns, rows).
                validator = table.routes[0].model.validator
                names, limits = validator.names, validator.parse_limits
                parsed = (await run_in_threadpool(parse, body, content_type, names,
                                                  limits=limits)
                          if len(body) > _THREAD_FROM_BYTES
                          else parse(body, content_type, names, limits=limits))
                answer = await server.service.answer_async(
                    table, parsed, request_id, arrival_ms, started, server.batcher.predict,
                    offload=parsed.n_rows >= _THREAD_FROM_ROWS)
            except BadRequest as exc:
                if not isinstance(exc, RequestInvalid):  # those the service counted
                    metrics.rejected(exc.problems)
                    metrics.observe(table.routes[0].model, "invalid", 0.0)
                return failure(exc.status, str(exc), request_id, exc.problems)
            except ModelFailed as exc:
                return failure(500, str(exc), request_id)
            if parsed.n_rows >= _THREAD_FROM_ROWS:
                out, extra = await run_in_threadpool(lambda: _encode(render(answer, parsed)))
            else:
                out, extra = _encode(render(answer, parsed))
            metrics.observe(answer.model, "ok", time.perf_counter() - started)
            ref = answer.model.ref
            return 200, out, {**extra, "x-request-id": request_id, "x-model-name": ref.name,
                              "x-model-version": str(ref.version)}
        finally:
            metrics.inflight_now.dec()

    async def route(request: Request, parse: Any, render: Any, pin: Any = None) -> Response:
        return _response(await handle(request.headers.get, lambda: read_body(request),
                                      parse, render, pin))

    # ------------------------------------------------------------------ our API
    def parse_ours(body: bytes, _ct: str, names: list[str], *,
                   limits: ParseLimits) -> ParsedRequest:
        return parse_native(decode_json(body), names, limits=limits)

    @app.post("/predict", tags=["inference"], summary="Predict (ratchet JSON)",
              openapi_extra=api_schema.body("PredictRequest"),
              response_model=api_schema.PredictResponse,
              responses=api_schema.ERRORS)
    async def predict(request: Request) -> Response:
        return await route(request, parse_ours, _native_answer)

    @app.post("/invocations", tags=["inference"], summary="Predict (MLflow scoring protocol)",
              openapi_extra=api_schema.body("InvocationsRequest"),
              response_model=api_schema.InvocationsResponse, responses=api_schema.ERRORS)
    async def invocations(request: Request) -> Response:
        return await route(request, parse_mlflow, _mlflow_answer)

    @app.post("/feedback", tags=["feedback"], summary="Record ground truth for predictions",
              openapi_extra=api_schema.body("FeedbackRequest"),
              response_model=api_schema.FeedbackResponse,
              responses={**api_schema.ERRORS, **api_schema.FEEDBACK_NOT_FOUND})
    async def feedback(request: Request) -> Response:
        request_id = new_id()
        if server.settings is None:
            return error(503, "this server has no metadata store for feedback", request_id)
        try:
            status, content = await _store_feedback(server, decode_json(
                await read_body(request)))
        except BadRequest as exc:
            return error(exc.status, str(exc), request_id, exc.problems)
        if status != 200:
            return error(status, content["error"], request_id, content.get("detail"))
        return Response(json.dumps(content), media_type=_JSON)

    # ------------------------------------------------------------------ health
    def ready_body() -> tuple[int, dict[str, Any]]:
        table = server.watcher.table
        if table is None:
            # "retrying": false when the load failed in a way retrying cannot fix.
            return 503, {"ready": False, "error": server.watcher.last_error,
                         "retrying": not server.watcher.permanent_error}
        return 200, {"ready": True, "revision": table.revision, "models": [
            {"variant": r.variant, "model": r.model.ref.name, "version": r.model.ref.version}
            for r in table.all_routes]}

    @app.get("/health/live", tags=["health"], summary="Liveness")
    @app.get("/v2/health/live", tags=["health"], summary="Liveness (Open Inference Protocol)")
    async def live() -> dict[str, bool]:
        return {"live": True}

    not_ready: dict[int | str, dict[str, Any]] = {503: {"description": "No model loaded yet"}}

    @app.get("/health/ready", tags=["health"], summary="Readiness: a model is loaded",
             responses=not_ready)
    @app.get("/v2/health/ready", tags=["health"], summary="Readiness (Open Inference Protocol)",
             responses=not_ready)
    @app.get("/ping", tags=["health"], summary="Readiness (MLflow)", responses=not_ready)
    async def ready() -> Response:
        status, body = ready_body()
        return JSONResponse(body, status)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics",
             response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        data, content_type = metrics.exposition()
        return Response(data, media_type=content_type)

    # ------------------------------------------------------------------ Open Inference Protocol
    def oip_table(name: str) -> RoutingTable | None:
        table = server.watcher.table
        if table is None or name not in (server.deployment, table.routes[0].model.ref.name):
            return None
        return table

    def oip_served(name: str, version: str | None) -> ServedModel | None:
        """The model that answers for ``name`` (at ``version``: any version in the plan)."""
        table = oip_table(name)
        if table is None:
            return None
        if version is None:
            return table.routes[0].model
        for r in table.all_routes:
            if str(r.model.ref.version) == version and name in (server.deployment,
                                                                 r.model.ref.name):
                return r.model
        return None

    def oip_pin(name: str, version: str | None) -> Any:
        """For a versioned infer: the routing table narrowed to that version's route."""
        if version is None:
            return None

        def pin(table: RoutingTable) -> RoutingTable | None:
            if len(table.routes) == 1 and str(table.routes[0].model.ref.version) == version:
                return table
            for r in table.all_routes:
                if str(r.model.ref.version) == version and name in (server.deployment,
                                                                     r.model.ref.name):
                    return dataclasses.replace(table, routes=(r,), router=Router([1.0]),
                                               shadow=None)
            return None
        return pin

    def unknown_oip(name: str, version: str | None) -> Response:
        if server.watcher.table is None:  # loading (or unloadable): not "no such model"
            status, body = ready_body()
            return JSONResponse({"name": name, **body}, status)
        table = oip_table(name)
        if table is None or version is None:
            return _unknown_model(name, server)
        served = sorted({str(r.model.ref.version) for r in table.all_routes
                         if name in (server.deployment, r.model.ref.name)}, key=int)
        return JSONResponse({"error": f"model {name!r} has no version {version!r} served "
                                      f"here (versions served: {', '.join(served)})"}, 404)

    @app.get("/v2", tags=["open inference protocol"], summary="Server metadata")
    async def oip_server() -> dict[str, Any]:
        return {"name": "ratchet", "version": ratchet_version(),
                "extensions": ["binary_tensor_data"]}

    @app.get("/v2/models/{name}", tags=["open inference protocol"], summary="Model metadata",
             responses=api_schema.NOT_FOUND)
    @app.get("/v2/models/{name}/versions/{version}", tags=["open inference protocol"],
             summary="Model metadata (one version)", responses=api_schema.NOT_FOUND)
    async def oip_model(name: str, version: str | None = None) -> Response:
        model = oip_served(name, version)
        if model is None:
            return unknown_oip(name, version)
        return JSONResponse(api_schema.oip_metadata(name, model))

    @app.get("/v2/models/{name}/ready", tags=["open inference protocol"],
             summary="Model readiness", responses=api_schema.NOT_FOUND)
    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["open inference protocol"],
             summary="Model readiness (one version)", responses=api_schema.NOT_FOUND)
    async def oip_ready(name: str, version: str | None = None) -> Response:
        if oip_served(name, version) is None:
            return unknown_oip(name, version)
        return JSONResponse({"name": name, "ready": True})

    @app.post("/v2/models/{name}/infer", tags=["open inference protocol"], summary="Infer",
              openapi_extra=api_schema.body("InferRequest"),
              response_model=api_schema.InferResponse,
              responses={**api_schema.ERRORS, **api_schema.NOT_FOUND})
    @app.post("/v2/models/{name}/versions/{version}/infer", tags=["open inference protocol"],
              summary="Infer (one version)", openapi_extra=api_schema.body("InferRequest"),
              response_model=api_schema.InferResponse,
              responses={**api_schema.ERRORS, **api_schema.NOT_FOUND})
    async def oip_infer(name: str, request: Request, version: str | None = None) -> Response:
        if oip_served(name, version) is None:
            return unknown_oip(name, version)
        return await route(request, *oip_route(name, version, request.headers.get))

    def oip_route(name: str, version: str | None,
                  header: Callable[[str], str | None]) -> tuple[Any, Any, Any]:
        def parse(body: bytes, _ct: str, names: list[str], *,
                  limits: ParseLimits) -> ParsedRequest:
            parsed = parse_oip_body(body, header(OIP_HEADER_LENGTH), names, limits=limits)
            model = oip_served(name, version) if parsed.outputs else None
            if model is not None and parsed.outputs is not None:
                known = api_schema.oip_output_names(model)
                unknown = [o for o in parsed.outputs if o not in known]
                if unknown:
                    raise BadRequest(f"outputs: no output named {unknown[0]!r}; this model "
                                     f"has {', '.join(known)}")
            return parsed

        return (parse, lambda a, p: api_schema.oip_response(name, a, p),
                oip_pin(name, version))

    def current() -> tuple[Any, tuple[str, ...]]:
        table = server.watcher.table
        if table is None:
            return None, ()
        return table.routes[0].model, (table.plan.key,) if table.plan.key else ()

    api_schema.install_openapi(app, current, server.config.policy)

    # ------------------------------------------------------------------ the hot path
    # The inference POSTs are answered by this middleware, in front of Starlette's router:
    # its routing, request objects and exception layers cost about as much as a one-row
    # prediction. The routes above stay for the OpenAPI schema and mounted uses; both
    # paths run the same ``handle``.
    inference = {"/predict": (parse_ours, _native_answer),
                 "/invocations": (parse_mlflow, _mlflow_answer)}

    class InferenceRoutes:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            found: Any = None
            if scope["type"] == "http" and scope["method"] == "POST":
                path = scope["path"]
                found = inference.get(path)
                if (found is None and path.startswith("/v2/models/")
                        and path.endswith("/infer")):
                    oip = _oip_path(path[len("/v2/models/"):-len("/infer")])
                    if oip is not None and oip_served(*oip) is not None:
                        # ``header`` is bound below, before the body is parsed.
                        found = oip_route(*oip, lambda n: header(n))
            if found is None:
                await self.app(scope, receive, send)
                return
            headers = dict(scope["headers"])

            def header(name: str) -> str | None:
                value = headers.get(name.encode())
                return None if value is None else value.decode("latin-1")

            async def read() -> bytes:
                limit = check_length(header("content-length"))
                chunks, size, more = [], 0, True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise BadRequest("the client went away", status=400)
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise BadRequest(f"the body is over the limit of {limit} bytes",
                                         status=413)
                    chunks.append(chunk)
                    more = message.get("more_body", False)
                return b"".join(chunks)

            status, body, extra = await handle(header, read, *found)
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", extra.pop("content-type", _JSON).encode()),
                (b"content-length", str(len(body)).encode()),
                *((k.encode(), v.encode("latin-1")) for k, v in extra.items())]})
            await send({"type": "http.response.body", "body": body})

    app.add_middleware(InferenceRoutes)
    # Added last, so outermost: every request passes the guard first.
    app.add_middleware(AccessGuard, policy=server.config.access, tokens=server.tokens)
    return app


_Reply = tuple[int, bytes, dict[str, str]]


def _response(reply: _Reply) -> Response:
    status, body, headers = reply
    return Response(body, status, media_type=_JSON, headers=headers)


def _encode(rendered: Any) -> tuple[bytes, dict[str, str]]:
    """A rendered answer's body and headers: JSON, or OIP's binary data layout."""
    if isinstance(rendered, dict):
        return json.dumps(rendered).encode(), {}
    return rendered.body, {"content-type": "application/octet-stream",
                           "inference-header-content-length": str(rendered.header_length)}


def _oip_path(rest: str) -> tuple[str, str | None] | None:
    """(name, version) from what is between ``/v2/models/`` and ``/infer``."""
    if rest and "/" not in rest:
        return rest, None
    parts = rest.split("/")
    if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
        return parts[0], parts[2]
    return None


def _mlflow_answer(answer: Answer, _parsed: ParsedRequest) -> dict[str, Any]:
    return {"predictions": _predictions(answer)}


def _native_answer(answer: Answer, _parsed: ParsedRequest) -> dict[str, Any]:
    out: dict[str, Any] = {"request_id": answer.request_id,
                           "model_name": answer.model.ref.name,
                           "model_version": answer.model.ref.version,
                           "predictions": _predictions(answer)}
    model = answer.model
    if model.classes is not None and f"proba_{model.classes[0]}" in answer.outputs:
        columns = [answer.outputs[f"proba_{c}"] for c in model.classes]
        out["classes"] = model.classes
        out["probabilities"] = [list(row) for row in zip(*columns, strict=True)]
    if answer.row_models is not None:
        out["model_versions"] = [m.ref.version for m in answer.row_models]
    if answer.flags is not None:
        out["flags"] = [marks or [] for marks in answer.flags]
    return out


def _predictions(answer: Answer) -> list[Any]:
    outputs = answer.outputs
    if "prediction" in outputs:
        return outputs["prediction"]
    names = sorted(k for k in outputs if k.startswith("prediction_"))
    return [list(row) for row in zip(*(outputs[k] for k in names), strict=True)]


def _unknown_model(name: str, server: _Server) -> Response:
    table = server.watcher.table
    known = [server.deployment] + ([table.routes[0].model.ref.name] if table else [])
    return JSONResponse({"error": f"no model named {name!r} here (serving: "
                                  f"{', '.join(dict.fromkeys(known))})"}, 404)


async def _store_feedback(server: _Server, payload: Any) -> tuple[int, dict[str, Any]]:
    from ratchet.serving.feedback import desk_for

    return await desk_for(server).take(payload)





# ----------------------------------------------------------------------------- workers
SPEC_ENV = "RATCHET_SERVE_SPEC"


def app_from_environment() -> FastAPI:
    """The app factory uvicorn workers call (``ratchet serve --workers N``): what to serve
    comes from ``RATCHET_SERVE_SPEC`` (JSON), written by the parent process."""
    import os

    from ratchet.serving.connection_limits import ConnectionLimits, configure

    spec = json.loads(os.environ[SPEC_ENV])
    policy = ValidationPolicy(**spec.get("policy", {}))
    access = spec.get("access", {})
    if "allowed_hosts" in access:
        access["allowed_hosts"] = tuple(access["allowed_hosts"])
    config = ServingConfig(policy=policy, access=AccessPolicy(**access),
                           **spec.get("config", {}))
    configure(ConnectionLimits(**spec.get("connections", {})))
    return create_app(deployment=spec.get("deployment"), bundle=spec.get("bundle"),
                      config=config, trust=bool(spec.get("trust", False)))
__all__ = ["ServingConfig", "app_from_environment", "create_app"]
