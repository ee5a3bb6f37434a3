"""``ratchet.serving``: online and batch inference for registered models.

    app = ratchet.serving.create_app("churn@champion")          # FastAPI app
    ratchet.serving.set_plan("churn", TrafficPlan.canary("churn@champion", "churn/7", 10))
    ratchet.serving.rollback("churn")
    df = ratchet.serving.predictions("churn", since=datetime(2026, 11, 1))

Heavy modules (FastAPI, pandas, DuckDB) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ratchet.lazy import lazy_getattr

if TYPE_CHECKING:
    from ratchet.serving.app import ServingConfig, create_app
    from ratchet.serving.deployments import DeploymentClient, DeploymentStatus
    from ratchet.serving.prediction_query import predictions
    from ratchet.serving.request_validation import ValidationPolicy
    from ratchet.serving.traffic_plan import TrafficPlan

_LAZY = {
    "create_app": "ratchet.serving.app",
    "ServingConfig": "ratchet.serving.app",
    "DeploymentClient": "ratchet.serving.deployments",
    "DeploymentStatus": "ratchet.serving.deployments",
    "predictions": "ratchet.serving.prediction_query",
    "ValidationPolicy": "ratchet.serving.request_validation",
    "TrafficPlan": "ratchet.serving.traffic_plan",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


def create_deployment(name: str, plan: TrafficPlan | str, **kwargs: Any) -> DeploymentStatus:
    """Create a deployment serving ``plan`` (a :class:`TrafficPlan` or one model reference)."""
    return _client().create(name, plan, **kwargs)


def set_plan(name: str, plan: TrafficPlan | str, **kwargs: Any) -> DeploymentStatus:
    """Give a deployment a new plan; running servers switch within seconds."""
    return _client().set_plan(name, plan, **kwargs)


def rollback(name: str, **kwargs: Any) -> DeploymentStatus:
    """Undo the newest change to what a deployment serves (plan change or alias move)."""
    return _client().rollback(name, **kwargs)


def deployment(name: str) -> DeploymentStatus:
    """What a deployment serves now: its plan and the versions its references resolve to."""
    return _client().status(name)


def _client() -> DeploymentClient:
    from ratchet.serving.deployments import DeploymentClient

    return DeploymentClient()


__all__ = [
    "DeploymentClient",
    "DeploymentStatus",
    "ServingConfig",
    "TrafficPlan",
    "ValidationPolicy",
    "create_app",
    "create_deployment",
    "deployment",
    "predictions",
    "rollback",
    "set_plan",
]
