"""The dashboard's loop pages (being built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from ratchet.workspace import Workspace


def routes(workspace: Workspace) -> APIRouter:
    return APIRouter(include_in_schema=False)
