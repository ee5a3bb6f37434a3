"""MLflow's REST API on the team server: the official ``mlflow`` client (2.x and 3.x)
works against ``ratchet server`` with ``MLFLOW_TRACKING_URI=http://host:port``.

Everything it writes lands in ratchet's own stores as first-class objects (runs,
experiments, model versions, aliases, artifacts), so the dashboard, the CLI and
``ratchet serve`` see it. Modules, one concept each:

- ``protocol``: proto3-JSON, MLflow's error codes and statuses, typed request fields;
- ``requests``: reading a request, permission checks, the ``Default`` experiment (id 0);
- ``tracking_routes``: experiments, runs, params, tags, metrics, search, inputs/outputs;
- ``registry_routes``: registered models, versions, aliases, tags, download URIs;
- ``logged_model_routes``: MLflow 3's logged models (``/logged-models``);
- ``artifact_routes``: the ``mlflow-artifacts:/`` proxy (upload, download, list, delete).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ratchet.workspace import Workspace


def mlflow_routers(workspace: Workspace) -> list[Any]:
    """The routers of MLflow's API over ``workspace`` (each route declares its level)."""
    from ratchet.server.mlflow import (
        artifact_routes,
        logged_model_routes,
        registry_routes,
        tracking_routes,
    )

    return [module.router(workspace) for module in
            (tracking_routes, registry_routes, logged_model_routes, artifact_routes)]


__all__ = ["mlflow_routers"]
