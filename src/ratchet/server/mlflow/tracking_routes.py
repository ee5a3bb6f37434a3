"""(being written)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ratchet.workspace import Workspace


def router(workspace: Workspace) -> Any:
    from fastapi import APIRouter

    return APIRouter()
