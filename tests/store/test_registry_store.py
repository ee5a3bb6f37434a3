"""RegistryStore against SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ratchet.errors import AlreadyExists, InvalidInput, NotFound
from ratchet.store import RegistryStore, TrackingStore
from tests.team_server import acted


@pytest.fixture
def stores(any_stores: Any) -> tuple[TrackingStore, RegistryStore]:
    return any_stores.tracking, any_stores.registry


def _version(registry: RegistryStore, run_id: str | None, name: str = "churn") -> int:
    return registry.create_model_version(
        name, run_id=run_id, artifact_path="model", content_hash="a" * 64, flavor="sklearn",
        manifest={"flavor": "sklearn"}).version


def test_versions_number_from_one(stores: tuple[TrackingStore, RegistryStore]) -> None:
    tracking, registry = stores
    run = tracking.create_run(tracking.get_or_create_experiment("e").experiment_id)
    assert [_version(registry, run.run_id) for _ in range(3)] == [1, 2, 3]
    assert _version(registry, run.run_id, "other") == 1
    mv = registry.get_model_version("churn", 2)
    assert mv.run_id == run.run_id and mv.manifest == {"flavor": "sklearn"}
    assert [v.version for v in registry.versions_for_run(run.run_id)] == [1, 2, 3, 1]
    assert registry.get_registered_model("churn").latest_version == 3
    with pytest.raises(NotFound, match="run"):
        _version(registry, "0" * 32)
    with pytest.raises(NotFound):
        registry.get_model_version("churn", 9)
    with pytest.raises(AlreadyExists):
        registry.create_registered_model("churn")
    with pytest.raises(InvalidInput):
        registry.create_registered_model("a/b")


def test_descriptions_and_tags(stores: tuple[TrackingStore, RegistryStore]) -> None:
    _, registry = stores
    registry.create_registered_model("m", description="first", tags={"team": "x"})
    _version(registry, None, "m")
    registry.update_registered_model("m", "second")
    registry.set_registered_model_tag("m", "team", "y")
    registry.set_model_version_tag("m", 1, "validated", "yes")
    registry.update_model_version("m", 1, "v1 desc")
    model = registry.get_registered_model("m")
    assert model.description == "second" and model.tags == {"team": "y"}
    mv = registry.get_model_version("m", 1)
    assert mv.tags == {"validated": "yes"} and mv.description == "v1 desc"
    with pytest.raises(NotFound):
        registry.set_model_version_tag("m", 5, "a", "b")
    with pytest.raises(NotFound):
        registry.update_registered_model("zzz", "x")


def test_alias_moves_are_events(stores: tuple[TrackingStore, RegistryStore]) -> None:
    _, registry = stores
    for _ in range(3):
        _version(registry, None)
    registry.set_alias("churn", "champion", 1, actor="ann", reason="first")
    t1 = registry.alias_history("churn", "champion")[-1].at
    time.sleep(0.01)
    registry.set_alias("churn", "champion", 2, actor="bob", reason="better auc")
    t2 = registry.alias_history("churn", "champion")[-1].at
    time.sleep(0.01)
    registry.delete_alias("churn", "champion", actor="cy", reason="rollback all")
    t3 = registry.alias_history("churn", "champion")[-1].at
    history = registry.alias_history("churn", "champion")
    assert [(e.from_version, e.to_version, e.reason) for e in history] == [
        (None, 1, "first"), (1, 2, "better auc"), (2, None, "rollback all")]
    assert all(acted(e.actor, who) for e, who in zip(history, ("ann", "bob", "cy"),
                                                     strict=True))
    assert registry.alias_version_at("churn", "champion", t1 - 1) is None
    assert registry.alias_version_at("churn", "champion", t1) == 1
    assert registry.alias_version_at("churn", "champion", t2) == 2
    assert registry.alias_version_at("churn", "champion", t3) is None
    with pytest.raises(NotFound, match="alias"):
        registry.resolve_alias("churn", "champion")
    registry.set_alias("churn", "challenger", 3, actor=None, reason=None)
    assert registry.resolve_alias("churn", "challenger") == 3
    assert registry.get_model_version("churn", 3).aliases == ("challenger",)
    assert registry.get_registered_model("churn").aliases == {"challenger": 3}
    with pytest.raises(NotFound, match="version 7"):
        registry.set_alias("churn", "champion", 7, actor=None, reason=None)
    for bad in ("3", "latest", "a/b", ""):
        with pytest.raises(InvalidInput):
            registry.set_alias("churn", bad, 1, actor=None, reason=None)
    with pytest.raises(NotFound):
        registry.delete_alias("churn", "nope", actor=None, reason=None)
    with pytest.raises(NotFound, match="registered model"):
        registry.resolve_alias("ghost", "champion")
