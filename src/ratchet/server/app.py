"""The team server's application: the store API, artifacts, health, the OpenAPI schema.

``create_app(workspace, options)`` builds one stateless ASGI app over a workspace's
metadata and artifact stores; any number of processes (on any number of hosts) can serve
the same database and object store. Every route declares its permission and one
app-wide dependency enforces it (``ratchet.server.permissions``); a browser-facing guard
(Host allowlist, content types, Origin, body limits, headers) wraps the whole app.
"""

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# Imported at module level, not lazily: FastAPI reads the handlers' annotations from
# this module's globals (this module is only imported to run the server).
from fastapi import Depends, FastAPI, Request

from ratchet.errors import ConfigError, RatchetError
from ratchet.server.permissions import authorize_request, declare, principal

if TYPE_CHECKING:
    from ratchet.workspace import Workspace

log = logging.getLogger(__name__)
OPENAPI_PATH = "/api/v1/openapi.json"
LOOPBACK_BINDS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    auth: bool | None = None                 # None: on unless bound to loopback
    allowed_hosts: tuple[str, ...] = ()      # extra Host names (the bound one is allowed)
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 8 * 1024 * 1024
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def auth_required(self) -> bool:
        if self.auth is None:
            return self.host not in LOOPBACK_BINDS
        return self.auth

    def check(self) -> None:
        if not self.auth_required and self.host not in LOOPBACK_BINDS:
            raise ConfigError(f"refusing to serve without authentication on {self.host}: "
                              "--no-auth is for a loopback address only (127.0.0.1)")


def _error_response(exc: RatchetError, path: str = "") -> Any:
    from fastapi.responses import JSONResponse

    from ratchet.server.mlflow.protocol import error_body, is_mlflow_path

    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if is_mlflow_path(path):  # MLflow's clients read {"error_code", "message"}
        status, body = error_body(exc)
        return JSONResponse(body, status_code=status, headers=headers)
    return JSONResponse({"error": {"type": type(exc).__name__, "message": str(exc)}},
                        status_code=exc.http_status, headers=headers)


Extension = Callable[[FastAPI], None]


def create_app(workspace: "Workspace", options: ServerOptions | None = None, *,
               extensions: Sequence[Extension] = ()) -> Any:
    """The server's ASGI app over ``workspace`` (a local workspace: SQL + blob store).

    ``extensions`` add routes to the app before it is wrapped in the guard (the dashboard,
    ``ratchet.ui``); they find the workspace, options and authenticator on ``app.state``
    and their routes go through the same permission dependency as the API's."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from ratchet import __version__
    from ratchet.errors import InvalidInput
    from ratchet.server.auth import Authenticator
    from ratchet.server.mlflow import mlflow_routers
    from ratchet.server.mlflow.protocol import is_mlflow_path
    from ratchet.server.store_routes import store_router

    options = options or ServerOptions()
    options.check()
    if workspace.settings.tracking_uri:
        raise ConfigError("the server serves a local workspace; unset RATCHET_TRACKING_URI "
                          "(it points clients at a server, not a server at another)")
    authenticator = Authenticator(workspace.stores.auth, required=options.auth_required)

    def authorize(request: Request) -> None:
        authorize_request(request, authenticator)

    app = FastAPI(title="ratchet server", version=__version__, openapi_url=None,
                  docs_url=None, redoc_url=None, dependencies=[Depends(authorize)])
    app.state.workspace = workspace
    app.state.options = options
    app.state.authenticator = authenticator

    @app.exception_handler(RatchetError)
    async def ratchet_error(request: Request, exc: RatchetError) -> Any:
        return _error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Any:
        problems = []
        for error in exc.errors()[:10]:
            if error.get("type") == "json_invalid":
                problems.append(f"the body is not valid JSON ({error.get('msg')} at "
                                f"character {error.get('loc', ('', '?'))[-1]})")
                continue
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {error.get('msg')}")
        if is_mlflow_path(request.url.path):
            return _error_response(InvalidInput("; ".join(problems)), request.url.path)
        return JSONResponse({"error": {"type": "InvalidInput",
                                       "message": "; ".join(problems)}}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:
        if is_mlflow_path(request.url.path):
            code = {404: "ENDPOINT_NOT_FOUND", 405: "ENDPOINT_NOT_FOUND"}.get(
                exc.status_code, "BAD_REQUEST")
            return JSONResponse({"error_code": code, "message": str(exc.detail)},
                                status_code=exc.status_code, headers=exc.headers)
        kind = {404: "NotFound", 405: "InvalidInput"}.get(exc.status_code, "RatchetError")
        return JSONResponse({"error": {"type": kind, "message": str(exc.detail)}},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Any:
        log.exception("unexpected error", exc_info=exc)
        if is_mlflow_path(request.url.path):
            return JSONResponse({"error_code": "INTERNAL_ERROR",
                                 "message": "internal error (logged on the server)"},
                                status_code=500)
        return JSONResponse({"error": {"type": "RatchetError",
                                       "message": "internal error (logged on the server)"}},
                            status_code=500)

    @app.get("/health", openapi_extra=declare("public"), tags=["server"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/health/ready", openapi_extra=declare("public"), tags=["server"])
    def ready() -> dict[str, str]:
        """Readiness: the metadata store answers."""
        workspace.stores.auth.list_users()  # a small table: a probe costs no scan of runs
        return {"status": "ready"}

    @app.get(OPENAPI_PATH, openapi_extra=declare("public"), include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/api/v1/whoami", openapi_extra=declare("read"), tags=["server"])
    def whoami(request: Request) -> dict[str, Any]:
        """The authenticated caller, its role and grants."""
        who = principal(request)
        return {"name": who.name, "role": who.role,
                "grants": [{"kind": k, "resource": r, "level": v}
                           for (k, r), v in sorted(who.grants.items())]}

    # MLflow's REST API (docs/mlflow.md) first: its clients log one metric per request,
    # and routes are matched in order (the store API adds ~150 routes before them).
    for mlflow_router in mlflow_routers(workspace):
        app.include_router(mlflow_router)
    app.include_router(store_router(workspace))
    from ratchet.server.artifact_routes import artifact_router

    app.include_router(artifact_router(workspace))
    for extend in extensions:
        extend(app)
    return _guarded(app, options)


def _guarded(app: FastAPI, options: ServerOptions) -> Any:
    from ratchet.server.security import ServerGuard
    from ratchet.serving.access import default_allowed_hosts

    guard = ServerGuard(app, allowed_hosts=default_allowed_hosts(options.host,
                                                                 options.allowed_hosts),
                        allowed_origins=options.allowed_origins,
                        max_body_bytes=options.max_body_bytes)
    guard.app_routes = app  # type: ignore[attr-defined]  # tests enumerate the routes
    return guard


def routes_of(app: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every route of a FastAPI app or router with its full path, included routers
    flattened (FastAPI keeps an included router as one entry with its prefix)."""
    found: list[tuple[str, Any]] = []
    for route in getattr(app, "routes", ()):
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            found.extend(routes_of(included, prefix + getattr(context, "prefix", "")))
        elif hasattr(route, "methods"):
            found.append((prefix + route.path, route))
    return found


OPTIONS_ENV = "RATCHET_SERVER_OPTIONS"


def app_from_environment() -> Any:
    """The app factory ``uvicorn --factory`` calls in each worker process: the workspace
    from the environment, the options from ``RATCHET_SERVER_OPTIONS`` (JSON)."""
    from ratchet.workspace import Workspace

    return create_app(Workspace(), options_from_environment())


def options_to_environment(options: ServerOptions) -> None:
    """Hand ``options`` to the worker processes uvicorn starts (all fields, as JSON)."""
    import dataclasses
    import json

    os.environ[OPTIONS_ENV] = json.dumps(dataclasses.asdict(options))


def options_from_environment() -> ServerOptions:
    import json

    raw = json.loads(os.environ.get(OPTIONS_ENV, "{}"))
    for name in ("allowed_hosts", "allowed_origins"):
        if name in raw:
            raw[name] = tuple(raw[name])
    return ServerOptions(**raw)
