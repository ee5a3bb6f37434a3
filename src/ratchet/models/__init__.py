"""``ratchet.models``: the model registry as module functions over the default client.

    ratchet.models.set_alias("churn", "champion", version=3, reason="better AUC")
    model = ratchet.models.load("models:/churn@champion")
    ratchet.models.get_lineage("models:/churn@champion")
    ratchet.models.get_version("churn@3")     # `@`: digits a version, else an alias

References follow one grammar for models and datasets (``ratchet.refs``). Collections are
``list_*``, single lookups ``get_*``; ``alias_history``, ``version_at`` and ``lineage``
are the earlier names of ``list_alias_events``, ``get_version_at`` and ``get_lineage``.
"""

from __future__ import annotations

from ratchet.registry.fluent import (  # noqa: F401  (the earlier names)
    alias_history,
    client,
    delete_alias,
    get_lineage,
    get_model,
    get_version,
    get_version_at,
    lineage,
    list_alias_events,
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
    "client",
    "delete_alias",
    "delete_model",
    "delete_version",
    "get_lineage",
    "get_model",
    "get_version",
    "get_version_at",
    "list_alias_events",
    "list_models",
    "list_versions",
    "load",
    "log_model",
    "register",
    "restore_model",
    "restore_version",
    "set_alias",
]
