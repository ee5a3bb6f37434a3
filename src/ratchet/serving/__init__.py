"""``ratchet.serving``: online and batch inference for registered models.

    app = ratchet.serving.create_app("churn@champion")          # FastAPI app
    ratchet.serving.serve("churn@champion", port=8000, workers=2)  # what `ratchet serve` runs
    ratchet.serving.set_plan("churn", TrafficPlan.canary("churn@champion", "churn/7", 10))
    ratchet.serving.rollback("churn")
    [d.name for d in ratchet.serving.list_deployments()]
    df = ratchet.serving.get_predictions("churn", since=datetime(2026, 11, 1))

Heavy modules (FastAPI, pandas, DuckDB) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.lazy import lazy_getattr

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

    from ratchet.serving.app import ServingConfig, create_app
    from ratchet.serving.deployments import DeploymentClient, DeploymentStatus
    from ratchet.serving.request_validation import ValidationPolicy
    from ratchet.serving.traffic_plan import TrafficPlan
    from ratchet.serving.workers import ServePlan, serve
    from ratchet.workspace import Workspace

_LAZY = {
    "create_app": "ratchet.serving.app",
    "ServingConfig": "ratchet.serving.app",
    "DeploymentClient": "ratchet.serving.deployments",
    "DeploymentStatus": "ratchet.serving.deployments",
    "predictions": "ratchet.serving.prediction_query",  # the earlier get_predictions
    "ValidationPolicy": "ratchet.serving.request_validation",
    "TrafficPlan": "ratchet.serving.traffic_plan",
    "serve": "ratchet.serving.workers",
    "ServePlan": "ratchet.serving.workers",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


def create_deployment(name: str, plan: TrafficPlan | str, *, description: str | None = None,
                      reason: str | None = None, actor: str | None = None,
                      workspace: Workspace | None = None) -> DeploymentStatus:
    """Create a deployment serving ``plan`` (a :class:`TrafficPlan` or one model reference,
    e.g. ``"churn@champion"``); every reference must resolve now. ``actor`` defaults to the
    OS user; ``AlreadyExists`` if the name is taken."""
    return _client(workspace).create(name, plan, description=description, reason=reason,
                                     actor=actor)


def set_plan(name: str, plan: TrafficPlan | str, *, reason: str | None = None,
             actor: str | None = None, expected_revision: int | None = None,
             workspace: Workspace | None = None) -> DeploymentStatus:
    """Give a deployment a new plan; running servers switch within seconds. With
    ``expected_revision``, ``Conflict`` unless the deployment is still at that revision
    (a compare-and-swap for tools that read, then change)."""
    return _client(workspace).set_plan(name, plan, reason=reason, actor=actor,
                                       expected_revision=expected_revision)


def rollback(name: str, *, reason: str | None = None, actor: str | None = None,
             workspace: Workspace | None = None) -> DeploymentStatus:
    """Undo the newest change to what a deployment serves (plan change or alias move)."""
    return _client(workspace).rollback(name, reason=reason, actor=actor)


def get_deployment(name: str, *, workspace: Workspace | None = None) -> DeploymentStatus:
    """What a deployment serves now: its plan and the versions its references resolve to."""
    return _client(workspace).status(name)


deployment = get_deployment  # the name before the list_*/get_* rule


def list_deployments(*, workspace: Workspace | None = None) -> list[DeploymentStatus]:
    """Every deployment by name, as ``get_deployment`` shows it (a variant whose reference
    no longer resolves is missing from ``versions``)."""
    return _client(workspace).list_statuses()


def get_predictions(deployment: str, since: datetime | int | None = None,
                    until: datetime | int | None = None, *, with_feedback: bool = False,
                    workspace: Workspace | None = None) -> pd.DataFrame:
    """The prediction log of ``deployment`` as one table: the rows with ``since <=
    timestamp < until`` (datetimes, naive meaning UTC, or epoch milliseconds), ordered by
    (timestamp, request_id, row); ``with_feedback`` adds ``feedback`` and
    ``feedback_at``. ``predictions`` is the earlier name."""
    from ratchet.serving.prediction_query import predictions as query

    return query(deployment, since, until, with_feedback=with_feedback, workspace=workspace)


def _client(workspace: Workspace | None) -> DeploymentClient:
    from ratchet.serving.deployments import DeploymentClient
    from ratchet.workspace import resolve

    return resolve(workspace).client(DeploymentClient)


__all__ = [
    "DeploymentClient",
    "DeploymentStatus",
    "ServePlan",
    "ServingConfig",
    "TrafficPlan",
    "ValidationPolicy",
    "create_app",
    "create_deployment",
    "get_deployment",
    "get_predictions",
    "list_deployments",
    "rollback",
    "serve",
    "set_plan",
]
