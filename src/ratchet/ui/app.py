"""The dashboard on the team server's app: its pages, static files and error pages.

``install_dashboard`` is an extension of ``ratchet.server.app.create_app``: the pages are
routes of the same app, so the same permission dependency guards them (each declares its
level) and the same guard adds Host, Origin and content-type checks. A browser signs in
with an API token kept in an HttpOnly cookie (``ratchet.ui.pages.session``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.server.app import ServerOptions, create_app, options_from_environment

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ratchet.workspace import Workspace

STATIC = Path(__file__).parent / "static"
# One module per area; each exposes ``routes(workspace) -> APIRouter``.
PAGE_MODULES = ("session", "experiments", "runs", "charts", "compare", "models",
                "datasets", "pipelines", "deployments", "loop")


def install_dashboard(app: FastAPI) -> None:
    """Add the dashboard's routes to a team-server app (see ``create_app``)."""
    import importlib

    from fastapi.responses import RedirectResponse
    from fastapi.staticfiles import StaticFiles

    from ratchet.errors import RatchetError
    from ratchet.server.permissions import declare
    from ratchet.ui.errors import dashboard_error_handler

    workspace = app.state.workspace
    # Static files hold no data (CSS, JS, the vendored chart library): public.
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    for name in PAGE_MODULES:
        module = importlib.import_module(f"ratchet.ui.pages.{name}")
        app.include_router(module.routes(workspace))

    @app.get("/", openapi_extra=declare("public"), include_in_schema=False)
    def root() -> Any:
        return RedirectResponse("/ui/", status_code=307)

    api_handler = app.exception_handlers[RatchetError]
    app.add_exception_handler(RatchetError, dashboard_error_handler(api_handler))


def dashboard_app(workspace: Workspace, options: ServerOptions | None = None) -> Any:
    """The team server's app with the dashboard (what ``ratchet server`` serves)."""
    return create_app(workspace, options, extensions=[install_dashboard])


def app_from_environment() -> Any:
    """``uvicorn --factory`` entry for ``ratchet server --workers N``."""
    from ratchet.workspace import Workspace

    return dashboard_app(Workspace(), options_from_environment())
