"""``/docs``: Swagger UI for the server's OpenAPI document, with its files served locally.

FastAPI's default page loads Swagger UI from a CDN, so on a machine without internet (an
air-gapped cluster, a laptop on a plane) it is blank. The package ``fastapi-swagger`` ships
Swagger UI's built bundle and stylesheet; the server serves them under ``/docs/static/``.
"""

from __future__ import annotations

from importlib import resources

# FastAPI resolves handler annotations at run time: its types are imported at the top.
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

DOCS_PATH = "/docs"
STATIC_PATH = "/docs/static"


def install_docs_page(app: FastAPI) -> None:
    """Add ``GET /docs`` and ``/docs/static/*`` to ``app`` (created with ``docs_url=None``)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from starlette.staticfiles import StaticFiles

    files = resources.files("fastapi_swagger") / "resources"
    app.mount(STATIC_PATH, StaticFiles(directory=str(files)), name="docs-static")

    async def docs_page(request: Request) -> HTMLResponse:
        # Behind a proxy that strips a prefix, the page's links keep it.
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PATH}/favicon-32x32.png",
            swagger_ui_parameters=app.swagger_ui_parameters)

    app.add_api_route(DOCS_PATH, docs_page, methods=["GET"], include_in_schema=False)
