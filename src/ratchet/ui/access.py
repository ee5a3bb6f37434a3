"""What the caller of a page may see and do: the server's principal, asked per resource.

Pages show only what the caller may read (a listing leaves out what they may not), and
offer an action (move an alias, approve a request) only to those who may take it; the
action's own route checks again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from ratchet.server.permissions import principal

if TYPE_CHECKING:
    from starlette.requests import Request

    from ratchet.server.auth import Principal

T = TypeVar("T")


def caller(request: Request) -> Principal:
    return principal(request)


def require(request: Request, level: str, kind: str | None = None,
            resource: str | None = None) -> None:
    """Forbidden unless the caller has ``level`` on ``kind`` ``resource`` (or by role).
    Kinds: ``experiment``, ``model``, ``deployment``."""
    principal(request).require(level, kind, resource)


def can(request: Request, level: str, kind: str | None = None,
        resource: str | None = None) -> bool:
    return principal(request).can(level, kind, resource)


def visible(request: Request, kind: str, items: Iterable[T],
            name: Callable[[T], str]) -> list[T]:
    """The items the caller may read, in their order."""
    who = principal(request)
    return [item for item in items if who.can("read", kind, name(item))]
