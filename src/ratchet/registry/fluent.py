"""Module-level registry functions over the default client (``ratchet.models.*``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ratchet.registry.client import Lineage, LoggedModel, RegistryClient
from ratchet.store import AliasEvent, ModelVersion, RegisteredModel
from ratchet.tracking import fluent as tracking_fluent

if TYPE_CHECKING:
    from ratchet.packaging import LoadedModel, Signature

_clients: dict[int, RegistryClient] = {}


def client() -> RegistryClient:
    """The registry client sharing the default tracking client's store."""
    tracking = tracking_fluent.client()
    found = _clients.get(id(tracking))
    if found is None or found.tracking is not tracking:
        found = _clients[id(tracking)] = RegistryClient(tracking)
    return found


def log_model(model: object, name: str | None = None, *, artifact_path: str | None = None,
              input_example: Any = None, signature: Signature | None = None,
              metrics: Mapping[str, float] | None = None, flavor: str | None = None,
              description: str | None = None,
              tags: Mapping[str, str] | None = None) -> ModelVersion | LoggedModel:
    """Package ``model`` into the active run; with ``name``, register a new version."""
    run_id = tracking_fluent.client().active_run_id()
    if run_id is None:
        from ratchet.errors import InvalidInput

        raise InvalidInput("log_model needs an active run: `with ratchet.start_run(): ...`")
    return client().log_model(run_id, model, name=name, artifact_path=artifact_path,
                              input_example=input_example, signature=signature,
                              metrics=metrics, flavor=flavor, description=description, tags=tags)


def load(uri: str, *, trust: bool = False) -> LoadedModel:
    """Load ``models:/name@alias``, ``models:/name/3`` or ``runs:/<id>/model``."""
    return client().load(uri, trust=trust)


def register(source: str, name: str, *, description: str | None = None) -> ModelVersion:
    return client().register(source, name, description=description)


def set_alias(name: str, alias: str, version: int, *, reason: str | None = None,
              actor: str | None = None) -> AliasEvent:
    return client().set_alias(name, alias, version, reason=reason, actor=actor)


def delete_alias(name: str, alias: str, *, reason: str | None = None) -> AliasEvent:
    return client().delete_alias(name, alias, reason=reason)


def alias_history(name: str, alias: str | None = None) -> list[AliasEvent]:
    return client().alias_history(name, alias)


def version_at(name: str, alias: str, when: datetime | int) -> int | None:
    return client().version_at(name, alias, when)


def get_model(name: str) -> RegisteredModel:
    return client().get_model(name)


def list_models() -> list[RegisteredModel]:
    return client().list_models()


def get_version(name: str, version: int) -> ModelVersion:
    return client().get_version(name, version)


def list_versions(name: str) -> list[ModelVersion]:
    return client().list_versions(name)


def lineage(uri: str) -> Lineage:
    return client().lineage(uri)
