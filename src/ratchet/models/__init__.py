"""``ratchet.models``: the model registry as module functions over the default client.

    ratchet.models.set_alias("churn", "champion", version=3, reason="better AUC")
    model = ratchet.models.load("models:/churn@champion")
    ratchet.models.lineage("models:/churn@champion")
"""

from __future__ import annotations

from ratchet.registry.fluent import (
    alias_history,
    client,
    delete_alias,
    get_model,
    get_version,
    lineage,
    list_models,
    list_versions,
    load,
    log_model,
    register,
    set_alias,
    version_at,
)
from ratchet.tracking.deletion import delete_model, restore_model
from ratchet.tracking.deletion import delete_model_version as delete_version
from ratchet.tracking.deletion import restore_model_version as restore_version

__all__ = [
    "alias_history",
    "client",
    "delete_alias",
    "delete_model",
    "delete_version",
    "get_model",
    "get_version",
    "lineage",
    "list_models",
    "list_versions",
    "load",
    "log_model",
    "register",
    "restore_model",
    "restore_version",
    "set_alias",
    "version_at",
]
