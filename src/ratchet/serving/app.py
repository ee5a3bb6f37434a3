"""The HTTP server: a thin FastAPI adapter over :class:`InferenceService`.

``create_app`` chooses what to serve (a model reference, a deployment, a bundle) and
assembles the app from the routers of ``ratchet.serving.routes``, one concept each
(``/predict`` and ``/invocations``, ``/feedback``, health and metrics, the Open Inference
Protocol, ``/docs``), over one :class:`~ratchet.serving.server_state.ServerState`.

Bodies are read as bytes and parsed by ``request_formats`` (not by pydantic), because the
three wire formats differ and validation must say row *and* field; the pydantic models
of ``api_schema`` only document the bodies in the OpenAPI schema. The event loop only
awaits: small bodies are parsed and validated on it (microseconds), large ones in a
thread, and every model call runs on a worker thread of the micro-batcher
(``batching.py``), which gathers concurrent requests for one model version into one call.
The inference POSTs are answered by ``routes/fast_path.py`` in front of Starlette's
router. ``access.py`` guards every route (Host allowlist, content types, bearer tokens,
requests in flight). ``ratchet.serving.workers`` runs the app in one or N processes.

FastAPI resolves handler annotations at run time, so its types are imported at the top.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

from fastapi import FastAPI

from ratchet.errors import InvalidInput
from ratchet.serving.server_state import ServerState, ServingConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ratchet.serving.deployment_watcher import ModelSource
    from ratchet.serving.served_model import ServedModel
    from ratchet.workspace import Workspace


def create_app(model: str | None = None, *, deployment: str | None = None,
               bundle: str | None = None, workspace: Workspace | None = None,
               config: ServingConfig | None = None, trust: bool = False) -> FastAPI:
    """A FastAPI app serving a deployment.

    ``create_app("churn@champion")`` serves (and, the first time, creates) deployment
    ``churn`` with that single model; ``create_app(deployment="churn")`` serves an existing
    deployment under its stored plan; ``create_app(bundle="dist/churn")`` serves a bundle
    written by ``ratchet build`` without a registry. ``trust=True`` loads models whose
    format runs code (cloudpickle): only for models from a trusted source; a bundle built
    with ``ratchet build --trust`` records it.
    """
    from ratchet.workspace import resolve

    config = config or ServingConfig()
    workspace = resolve(workspace)
    if config.features_modules:
        from ratchet.features.definition_modules import import_definition_modules

        import_definition_modules(config.features_modules)  # before any model loads
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

        client = workspace.client(DeploymentClient)
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
    return build_app(ServerState(deployment, source, config, workspace))


def build_app(server: ServerState) -> FastAPI:
    """The FastAPI app of a server: its routers, OpenAPI document, fast path and guard."""
    import contextlib

    from starlette.concurrency import run_in_threadpool

    from ratchet.packaging.manifest import ratchet_version
    from ratchet.serving import api_schema
    from ratchet.serving.access import AccessGuard
    from ratchet.serving.docs_page import install_docs_page
    from ratchet.serving.routes import feedback, health, oip, predict
    from ratchet.serving.routes.answering import Answering
    from ratchet.serving.routes.fast_path import FastPath

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
    install_docs_page(app)  # /docs with Swagger UI's files served here, not from a CDN
    app.state.server = server
    answering = Answering(server)
    oip_models = oip.OipModels(server)
    app.include_router(predict.router(answering))
    app.include_router(feedback.router(server, answering))
    app.include_router(health.router(server))
    app.include_router(oip.router(answering, oip_models))

    def current() -> tuple[ServedModel | None, tuple[str, ...]]:
        table = server.watcher.table
        if table is None:
            return None, ()
        return table.routes[0].model, (table.plan.key,) if table.plan.key else ()

    api_schema.install_openapi(app, current, server.config.policy)
    app.add_middleware(FastPath, answering=answering, oip=oip_models)
    # Added last, so outermost: every request passes the guard first.
    app.add_middleware(AccessGuard, policy=server.config.access, tokens=server.tokens)
    return app


__all__ = ["ServingConfig", "build_app", "create_app"]
