"""Module-level registry functions over the default client (``ratchet.models.*``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

from ratchet.registry.client import Lineage, LoggedModel, RegistryClient
from ratchet.store import AliasEvent, ModelVersion, RegisteredModel
from ratchet.tracking import fluent as tracking_fluent
from ratchet.workspace import Workspace
from ratchet.workspace import resolve as resolve_workspace

if TYPE_CHECKING:
    from ratchet.packaging import LoadedModel, Signature

def client(workspace: Workspace | None = None) -> RegistryClient:
    """The registry client of ``workspace`` (default: the ambient one,
    ``ratchet.workspace.current()``)."""
    return resolve_workspace(workspace).client(RegistryClient)


@overload
def log_model(model: object, name: str, *, artifact_path: str | None = None,
              input_example: Any = None, signature: Signature | None = None,
              metrics: Mapping[str, float] | None = None, flavor: str | None = None,
              description: str | None = None,
              tags: Mapping[str, str] | None = None,
              features: Sequence[str] | None = None,
              full_feature_names: bool = False) -> ModelVersion: ...


@overload
def log_model(model: object, name: None = None, *, artifact_path: str | None = None,
              input_example: Any = None, signature: Signature | None = None,
              metrics: Mapping[str, float] | None = None, flavor: str | None = None,
              description: str | None = None,
              tags: Mapping[str, str] | None = None,
              features: Sequence[str] | None = None,
              full_feature_names: bool = False) -> LoggedModel: ...


def log_model(model: object, name: str | None = None, *, artifact_path: str | None = None,
              input_example: Any = None, signature: Signature | None = None,
              metrics: Mapping[str, float] | None = None, flavor: str | None = None,
              description: str | None = None,
              tags: Mapping[str, str] | None = None,
              features: Sequence[str] | None = None,
              full_feature_names: bool = False) -> ModelVersion | LoggedModel:
    """Package ``model`` into the active run: a ``LoggedModel`` (``runs:/<id>/<path>``);
    with ``name``, also register it as a new version of that model (a ``ModelVersion``).
    ``features``: the feature references it was trained on (``training_set``'s): it is
    then served from entity keys, the server fetching the features."""
    run_id = tracking_fluent.client().active_run_id()
    if run_id is None:
        from ratchet.errors import InvalidInput

        raise InvalidInput("log_model needs an active run: `with ratchet.start_run(): ...`")
    return client().log_model(run_id, model, name=name, artifact_path=artifact_path,
                              input_example=input_example, signature=signature,
                              metrics=metrics, flavor=flavor, description=description, tags=tags,
                              features=features, full_feature_names=full_feature_names)


def load(uri: str, *, trust: bool = False, workspace: Workspace | None = None) -> LoadedModel:
    """Load ``models:/name@alias``, ``models:/name/3`` or ``runs:/<id>/model``."""
    return client(workspace).load(uri, trust=trust)


def register(source: str, name: str, *, description: str | None = None,
             workspace: Workspace | None = None) -> ModelVersion:
    return client(workspace).register(source, name, description=description)


def set_alias(name: str, alias: str, version: int, *, reason: str | None = None,
              actor: str | None = None, workspace: Workspace | None = None) -> AliasEvent:
    return client(workspace).set_alias(name, alias, version, reason=reason, actor=actor)


def delete_alias(name: str, alias: str, *, reason: str | None = None,
                 workspace: Workspace | None = None) -> AliasEvent:
    return client(workspace).delete_alias(name, alias, reason=reason)


def list_alias_events(name: str, alias: str | None = None, *,
                      workspace: Workspace | None = None) -> list[AliasEvent]:
    """Every move of ``name``'s aliases (or of ``alias``), oldest first, with who and why."""
    return client(workspace).alias_history(name, alias)


alias_history = list_alias_events  # the name before the list_*/get_* rule


def get_version_at(name: str, alias: str, when: datetime | int, *,
                   workspace: Workspace | None = None) -> int | None:
    """The version ``alias`` pointed at, at ``when`` (None if it was not set then)."""
    return client(workspace).version_at(name, alias, when)


version_at = get_version_at  # the name before the list_*/get_* rule


def get_model(name: str, *, workspace: Workspace | None = None) -> RegisteredModel:
    return client(workspace).get_model(name)


def list_models(*, workspace: Workspace | None = None) -> list[RegisteredModel]:
    return client(workspace).list_models()


def get_version(name: str, version: int | None = None, *,
                workspace: Workspace | None = None) -> ModelVersion:
    """Version ``version`` of model ``name``; or, with one argument, the version a
    reference names: ``"churn@3"``, ``"churn@champion"``, ``"churn@latest"``,
    ``"models:/churn/3"`` (the grammar of ``ratchet.refs``)."""
    if version is not None:
        return client(workspace).get_version(name, version)
    from ratchet.errors import InvalidInput

    resolved = client(workspace).resolve(name)
    if resolved.version is None:  # runs:/ URIs name a logged model, not a version
        raise InvalidInput(f"{name!r} names a model logged in a run, not a registered "
                           "version; give <name>@<version or alias>")
    return resolved.version


def list_versions(name: str, *, workspace: Workspace | None = None) -> list[ModelVersion]:
    return client(workspace).list_versions(name)


def get_lineage(uri: str, *, workspace: Workspace | None = None) -> Lineage:
    """Everything that made a model version: version -> run -> datasets -> commit."""
    return client(workspace).lineage(uri)


lineage = get_lineage  # the name before the list_*/get_* rule
