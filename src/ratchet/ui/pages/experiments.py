"""The dashboard's home: the experiments the caller may read, with their run counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from ratchet.server.permissions import declare
from ratchet.ui.access import visible
from ratchet.ui.templating import render

if TYPE_CHECKING:
    from ratchet.workspace import Workspace


def routes(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/ui/", openapi_extra=declare("read"))
    def experiments(request: Request) -> Any:
        tracking = workspace.stores.tracking
        shown = visible(request, "experiment", tracking.list_experiments(),
                        lambda e: e.name)
        counts = tracking.run_counts()
        return render(request, "experiments.html", section="experiments",
                      experiments=shown, counts=counts)

    return router
