"""Errors on dashboard pages: an HTML page that says what went wrong (or the sign-in page
when credentials are missing), instead of the API's JSON; the dashboard's JSON routes
(``/ui/api/``) and the API keep the JSON shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ratchet.errors import RatchetError, Unauthorized

PAGES = "/ui/"
JSON_ROUTES = "/ui/api/"


def dashboard_error_handler(api_handler: Callable[..., Any]) -> Callable[..., Any]:
    """An exception handler for ``RatchetError``: pages get HTML, the rest
    ``api_handler``'s answer."""

    async def handle(request: Any, exc: RatchetError) -> Any:
        path = request.url.path
        if not path.startswith(PAGES) or path.startswith(JSON_ROUTES):
            return await api_handler(request, exc)
        from starlette.responses import RedirectResponse

        from ratchet.ui.templating import page_headers, render

        if isinstance(exc, Unauthorized) and request.method == "GET":
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/login?next={quote(target, safe='')}",
                                    status_code=303, headers=page_headers())
        return render(request, "error.html", status=exc.http_status,
                      kind=type(exc).__name__, message=str(exc))

    return handle
