"""ratchet's registered models and model versions as MLflow's ``RegisteredModel`` and
``ModelVersion`` messages (proto3 JSON), and where MLflow's own fields are kept.

ratchet has no stages: every version's ``current_stage`` is ``"None"`` and its ``status``
``READY`` (a version exists only once its files do). A version's number travels as a string,
as MLflow's proto declares it. What MLflow knows of a version and ratchet's record has no
field for (the ``source`` URI the client sent, MLflow 3's ``model_id``, and the run id the
client gave for a logged model) is kept in version tags under ``ratchet.mlflow.``; those
are hidden from MLflow's tag list and cannot be set or deleted through MLflow. Pure
functions.
"""

from __future__ import annotations

from typing import Any

from ratchet.registry.mlflow_tags import HIDDEN_TAG_PREFIX, MODEL_ID_TAG, RUN_ID_TAG, SOURCE_TAG
from ratchet.server.mlflow.protocol import key_values, message
from ratchet.store.records import ModelVersion, RegisteredModel

STAGE_NONE = "None"
MLFLOW_STAGES = ("None", "Staging", "Production", "Archived")
STATUS_READY = "READY"


def is_hidden_tag(key: str) -> bool:
    return key.startswith(HIDDEN_TAG_PREFIX)


def visible_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in sorted(tags.items()) if not is_hidden_tag(k)}


def version_source(version: ModelVersion) -> str:
    """The ``source`` MLflow's client registered, or for a version made by ratchet the
    ``runs:/`` URI of its files."""
    recorded = version.tags.get(SOURCE_TAG)
    if recorded:
        return recorded
    return f"runs:/{version.run_id}/{version.artifact_path}" if version.run_id else ""


def version_run_id(version: ModelVersion) -> str | None:
    """The run MLflow's client associated with the version (for a logged model, the one
    it was logged from, which may be none)."""
    if MODEL_ID_TAG in version.tags:
        return version.tags.get(RUN_ID_TAG) or None
    return version.run_id


def model_version_message(version: ModelVersion) -> dict[str, Any]:
    return message(
        name=version.name,
        version=str(version.version),
        creation_timestamp=version.created_at,
        last_updated_timestamp=version.created_at,
        user_id=version.created_by,
        current_stage=STAGE_NONE,
        description=version.description,
        source=version_source(version),
        run_id=version_run_id(version),
        status=STATUS_READY,
        tags=key_values(visible_tags(version.tags)),
        aliases=sorted(version.aliases),
        model_id=version.tags.get(MODEL_ID_TAG),
    )


def registered_model_message(model: RegisteredModel,
                             latest: ModelVersion | None) -> dict[str, Any]:
    """``latest`` is the model's newest version: with stages gone, the one
    ``latest_versions`` lists (MLflow lists the newest per stage)."""
    return message(
        name=model.name,
        creation_timestamp=model.created_at,
        last_updated_timestamp=model.updated_at,
        description=model.description,
        latest_versions=[model_version_message(latest)] if latest is not None else [],
        tags=key_values(visible_tags(model.tags)),
        aliases=[{"alias": alias, "version": str(version)}
                 for alias, version in sorted(model.aliases.items())],
    )


__all__ = ["HIDDEN_TAG_PREFIX", "MLFLOW_STAGES", "MODEL_ID_TAG", "RUN_ID_TAG", "SOURCE_TAG",
           "STAGE_NONE", "STATUS_READY", "is_hidden_tag", "model_version_message",
           "registered_model_message", "version_run_id", "version_source", "visible_tags"]
