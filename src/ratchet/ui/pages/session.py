"""Signing in to the dashboard with an API token, and out again.

The sign-in page posts the token as JSON (a browser cannot send JSON across sites
without a CORS preflight, which the server never grants, so another site cannot sign a
visitor in or out); a valid token is kept in an HttpOnly, SameSite=Strict cookie scoped to
``/ui``. There are no passwords: a user gets a token from an admin
(``ratchet tokens create``). A server without authentication (``ratchet ui``) has no
sign-in page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ratchet.server.permissions import COOKIE_PATH, SESSION_COOKIE, client_address, declare
from ratchet.ui.templating import page_headers, render

if TYPE_CHECKING:
    from ratchet.workspace import Workspace

MAX_AGE_SECONDS = 12 * 3600


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=512)


def _safe_next(target: str | None) -> str:
    """Only a dashboard path of this server: never another site (open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return "/ui/"


def routes(workspace: Workspace) -> APIRouter:
    from starlette.responses import JSONResponse, RedirectResponse

    router = APIRouter(include_in_schema=False)

    @router.get("/ui/login", openapi_extra=declare("public"))
    def login_page(request: Request, next: str | None = None) -> Any:
        if not request.app.state.options.auth_required:
            return RedirectResponse(_safe_next(next), status_code=303, headers=page_headers())
        return render(request, "login.html", next=_safe_next(next))

    @router.post("/ui/api/session", openapi_extra=declare("public"))
    def sign_in(request: Request, body: SignIn) -> Any:
        authenticator = request.app.state.authenticator
        who = authenticator.authenticate(f"Bearer {body.token}", client_address(request))
        answer = JSONResponse({"name": who.name, "role": who.role})
        answer.set_cookie(SESSION_COOKIE, body.token, max_age=MAX_AGE_SECONDS,
                          path=COOKIE_PATH, httponly=True, samesite="strict",
                          secure=request.url.scheme == "https")
        return answer

    @router.post("/ui/api/session/end", openapi_extra=declare("public"))
    def sign_out(request: Request) -> Any:
        answer = JSONResponse({"signed_out": True})
        answer.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True,
                             samesite="strict", secure=request.url.scheme == "https")
        return answer

    return router
