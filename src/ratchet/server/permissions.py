"""What each route of the team server needs, declared on the route itself; default deny.

Every route states its permission with ``openapi_extra=declare(level)``; the app's one
dependency (``authorize``) reads the declaration of the route that matched, authenticates
the caller and checks the level before the handler (or its body parsing) runs. A route
that declares nothing is refused (403) for everyone, so a route added without a check
fails the route-enumerating test instead of shipping open.

Levels: ``public`` (no credentials: health, the OpenAPI schema), ``read``, ``write``,
``admin``. The router-level check asks whether the caller reaches the level anywhere
(role or a grant); handlers then check the one resource they touch
(``principal(request).require(level, kind, resource)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ratchet.errors import Forbidden, RatchetError

if TYPE_CHECKING:
    from starlette.requests import Request

    from ratchet.server.auth import Authenticator, Principal

PERMISSION_KEY = "x-ratchet-permission"
LEVELS = ("public", "read", "write", "admin")
# The dashboard's sign-in: the API token in an HttpOnly, SameSite=Strict cookie, honoured
# on the dashboard's own paths only (the API takes the Authorization header alone, so a
# browser's cookie can never act on /api/v1).
SESSION_COOKIE = "ratchet_session"
COOKIE_PATH = "/ui"


def declare(level: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that needs ``level`` (shown in the OpenAPI schema)."""
    if level not in LEVELS:
        raise ValueError(f"permission level must be one of {', '.join(LEVELS)}, not {level!r}")
    return {PERMISSION_KEY: level}


def declared_level(route: object) -> str | None:
    """The level a route declared, or None when it declared none (denied)."""
    extra = getattr(route, "openapi_extra", None) or {}
    level = extra.get(PERMISSION_KEY)
    return level if level in LEVELS else None


def client_address(request: Request) -> str:
    client = request.client
    return client.host if client is not None else "unknown"


def authorize_request(request: Request, authenticator: Authenticator) -> None:
    """Authenticate the caller and check the matched route's declared level; the
    principal is left on ``request.state`` for the handler."""
    route = request.scope.get("route")
    level = declared_level(route)
    if level is None:
        raise Forbidden(f"{request.method} {request.url.path} declares no permission; "
                        "it is closed until it does")
    if level == "public":
        return
    found = authenticator.authenticate(credentials(request), client_address(request))
    request.state.principal = found
    if not found.can_anywhere(level):
        raise Forbidden(f"user {found.name!r} (role {found.role}) may not {level} here")


def credentials(request: Request) -> str | None:
    """The ``Authorization`` header, or on the dashboard's paths the session cookie's
    token as one."""
    header = request.headers.get("authorization")
    if header or not request.url.path.startswith(COOKIE_PATH + "/"):
        return header
    token = request.cookies.get(SESSION_COOKIE)
    return f"Bearer {token}" if token else None


def principal(request: Request) -> Principal:
    """The caller of a route that declared ``read``, ``write`` or ``admin``."""
    found = getattr(request.state, "principal", None)
    if found is None:  # a public route asking for a principal: a programming error
        raise RatchetError("no authenticated caller on this route")
    return found
