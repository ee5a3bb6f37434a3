"""Soft delete, restore, refusals and purge, against SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ratchet.clock import now_ms
from ratchet.errors import AlreadyExists, Conflict, NotFound
from ratchet.store import DatasetStore, RegistryStore, TrackingStore
from ratchet.store.deletion import DeletionStore
from ratchet.store.deployment_store import DeploymentStore
from ratchet.store.records import ArtifactEntry, DatasetInput
from tests.team_server import database_of


@dataclass
class Stores:
    tracking: TrackingStore
    registry: RegistryStore
    datasets: DatasetStore
    deployments: DeploymentStore
    deletion: DeletionStore


@pytest.fixture
def s(any_stores: Any) -> Stores:
    return Stores(any_stores.tracking, any_stores.registry, any_stores.datasets,
                  any_stores.deployments, any_stores.deletion)


def _run(s: Stores, experiment: str = "e", parent: str | None = None) -> str:
    exp = s.tracking.get_or_create_experiment(experiment)
    return s.tracking.create_run(exp.experiment_id, parent_run_id=parent).run_id


def _version(s: Stores, run_id: str | None, name: str = "churn") -> int:
    return s.registry.create_model_version(
        name, run_id=run_id, artifact_path="model", content_hash="a" * 64, flavor="sklearn",
        manifest={"flavor": "sklearn"}).version


def _dataset(s: Stores, name: str, digest: str) -> int:
    record, _ = s.datasets.add_version(name, digest=digest, size_bytes=1, row_count=1,
                                       schema=[], profile={}, source=None, created_by_run=None)
    return record.version


def _purge_all(s: Stores) -> object:
    return s.deletion.purge(now_ms() + 1)


# ---------------------------------------------------------------- runs and experiments

def test_a_deleted_run_is_hidden_says_how_to_restore_and_comes_back_whole(s: Stores) -> None:
    run = _run(s)
    s.tracking.log_params(run, {"C": "1"})
    child = _run(s, parent=run)
    assert s.deletion.delete_run(run) == [run, child]  # nested runs go with it
    with pytest.raises(NotFound, match=r"was deleted at .*ratchet runs restore"):
        s.tracking.get_run(run)
    assert s.tracking.search_runs()[0] == []
    assert {r.run_id for r in s.tracking.search_runs(include_deleted=True)[0]} == {run, child}
    assert s.tracking.run_counts() == {}
    assert s.tracking.get_run(run, include_deleted=True).deleted_at is not None

    assert s.deletion.restore_run(run) == [run, child]
    assert s.tracking.get_run(run).params == {"C": "1"}
    assert s.tracking.get_run(child).deleted_at is None


def test_restore_brings_back_only_the_nested_runs_deleted_with_it(s: Stores) -> None:
    run = _run(s)
    child = _run(s, parent=run)
    s.deletion.delete_run(child)
    s.deletion.delete_run(run)
    s.deletion.restore_run(run)
    assert s.tracking.get_run(child, include_deleted=True).deleted_at is not None


def test_deleting_an_experiment_deletes_its_runs_and_blocks_its_name(s: Stores) -> None:
    run = _run(s, "churn")
    assert s.deletion.delete_experiment("churn") == [run]
    assert [e.name for e in s.tracking.list_experiments()] == []
    assert [e.name for e in s.tracking.list_experiments(include_deleted=True)] == ["churn"]
    with pytest.raises(NotFound, match="ratchet experiments restore churn"):
        s.tracking.get_experiment("churn")
    with pytest.raises(Conflict, match="deleted"):
        s.tracking.get_or_create_experiment("churn")  # start_run(experiment="churn")
    with pytest.raises(AlreadyExists, match="free again once it is purged"):
        s.tracking.create_experiment("churn")
    with pytest.raises(Conflict, match="restore the experiment"):
        s.deletion.restore_run(run)

    assert s.deletion.restore_experiment("churn") == [run]
    assert s.tracking.get_run(run).deleted_at is None
    assert s.tracking.get_experiment("churn").lifecycle == "active"


def test_a_purged_experiment_frees_its_name(s: Stores) -> None:
    run = _run(s, "churn")
    s.tracking.log_metric(run, "auc", 0.9)
    s.tracking.record_artifacts(run, [ArtifactEntry("a.txt", "b" * 64, 1)])
    s.deletion.delete_experiment("churn")
    report = s.deletion.purge(now_ms() + 1)
    assert report.runs == [run] and report.experiments == ["churn"]
    assert "b" * 64 not in report.referenced
    with pytest.raises(NotFound):
        s.tracking.get_run(run, include_deleted=True)
    fresh = s.tracking.create_experiment("churn")
    assert fresh.deleted_at is None


def test_purge_honours_the_cutoff_and_dry_run_changes_nothing(s: Stores) -> None:
    run = _run(s)
    s.deletion.delete_run(run)
    assert s.deletion.purge(now_ms() - 60_000).runs == []  # deleted less than 1 min ago
    assert s.deletion.purge(now_ms() + 1, dry_run=True).runs == [run]
    assert s.tracking.get_run(run, include_deleted=True).run_id == run
    assert s.deletion.purge(now_ms() + 1).runs == [run]


def test_a_run_that_backs_a_model_version_is_refused_then_kept_by_gc(s: Stores) -> None:
    run = _run(s)
    _version(s, run)
    with pytest.raises(Conflict, match=r"churn/1.*force"):
        s.deletion.delete_run(run)
    s.deletion.delete_run(run, force=True)
    report = _purge_all(s)
    assert report.runs == []  # type: ignore[attr-defined]
    assert "model version" in report.kept[0]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- models

def test_a_version_behind_an_alias_or_a_plan_is_refused_unless_forced(s: Stores) -> None:
    run = _run(s)
    for _ in range(3):
        _version(s, run)
    s.registry.set_alias("churn", "champion", 1, actor=None, reason=None)
    s.deployments.create("web", {"kind": "split", "variants": [
        {"name": "a", "model": "churn@champion", "weight": 50},
        {"name": "b", "model": "churn/2", "weight": 50}]})
    with pytest.raises(Conflict, match="alias 'champion' points at version 1"):
        s.deletion.delete_model_version("churn", 1)
    with pytest.raises(Conflict, match="a deployment serves churn/2"):
        s.deletion.delete_model_version("churn", 2)
    with pytest.raises(Conflict, match=r"champion.*churn/2"):
        s.deletion.delete_registered_model("churn")
    s.deletion.delete_model_version("churn", 3)

    s.deletion.delete_model_version("churn", 1, force=True)  # removes its alias
    assert s.registry.get_registered_model("churn").aliases == {}
    assert s.registry.alias_history("churn", "champion")[-1].to_version is None
    assert [v.version for v in s.registry.list_model_versions("churn")] == [2]
    assert s.registry.get_registered_model("churn").latest_version == 2


def test_a_plan_that_serves_latest_protects_the_latest_version(s: Stores) -> None:
    run = _run(s)
    _version(s, run)
    _version(s, run)
    s.deployments.create("web", {"kind": "single", "model": "models:/churn/latest"})
    with pytest.raises(Conflict, match="latest"):
        s.deletion.delete_model_version("churn", 2)
    s.deletion.delete_model_version("churn", 1)


def test_a_plan_pins_a_version_written_with_at_as_with_a_slash(s: Stores) -> None:
    """ratchet.refs: churn@2 is version 2 and churn@latest the latest, as churn/2 is."""
    run = _run(s)
    for _ in range(3):
        _version(s, run)
    s.deployments.create("web", {"kind": "split", "variants": [
        {"name": "a", "model": "churn@2", "weight": 50},
        {"name": "b", "model": "churn@latest", "weight": 50}]})
    with pytest.raises(Conflict, match="a deployment serves churn/2"):
        s.deletion.delete_model_version("churn", 2)
    with pytest.raises(Conflict, match="latest"):
        s.deletion.delete_model_version("churn", 3)
    s.deletion.delete_model_version("churn", 1)


def test_a_deleted_version_says_so_and_cannot_take_an_alias(s: Stores) -> None:
    _version(s, None)
    s.deletion.delete_model_version("churn", 1)
    with pytest.raises(NotFound, match="ratchet models restore churn --version 1"):
        s.registry.get_model_version("churn", 1)
    with pytest.raises(NotFound):
        s.registry.set_alias("churn", "champion", 1, actor=None, reason=None)
    s.deletion.restore_model_version("churn", 1)
    s.registry.set_alias("churn", "champion", 1, actor=None, reason=None)


def test_version_numbers_are_never_reused_while_the_model_exists(s: Stores) -> None:
    for _ in range(3):
        _version(s, None)
    s.deletion.delete_model_version("churn", 3)
    assert _purge_all(s).model_versions == [("churn", 3)]  # type: ignore[attr-defined]
    assert _version(s, None) == 4  # 3 meant other content once


def test_a_purged_model_frees_its_name_and_numbers_restart(s: Stores) -> None:
    _version(s, None)
    _version(s, None)
    s.registry.set_alias("churn", "champion", 2, actor=None, reason=None)
    s.deletion.delete_registered_model("churn", force=True)
    assert s.registry.list_registered_models() == []
    with pytest.raises(NotFound, match="ratchet models restore churn"):
        s.registry.get_model_version("churn", 1)
    with pytest.raises(Conflict, match="deleted"):
        _version(s, None)  # log_model(name="churn") while it is deleted
    with pytest.raises(Conflict, match="restore it"):
        s.deletion.restore_model_version("churn", 1)
    assert _purge_all(s).registered_models == ["churn"]  # type: ignore[attr-defined]
    assert _version(s, None) == 1
    assert s.registry.alias_history("churn") == []


def test_restoring_a_model_brings_back_its_versions(s: Stores) -> None:
    _version(s, None)
    s.deletion.delete_registered_model("churn")
    assert [m.name for m in s.registry.list_registered_models(include_deleted=True)] == [
        "churn"]
    s.deletion.restore_registered_model("churn")
    assert s.registry.get_model_version("churn", 1).deleted_at is None


# ---------------------------------------------------------------- datasets

def test_a_dataset_version_in_lineage_is_refused_unless_forced(s: Stores) -> None:
    _dataset(s, "churn", "c" * 64)
    _dataset(s, "churn", "d" * 64)
    run = _run(s)
    s.tracking.log_input(run, DatasetInput("churn", "c" * 64, 1, "train", None))
    with pytest.raises(Conflict, match=f"runs read it \\({run}\\)"):
        s.deletion.delete_dataset_version("churn", 1)
    s.deletion.delete_run(run)  # a deleted run no longer holds it
    s.deletion.delete_dataset_version("churn", 1)
    with pytest.raises(NotFound, match="ratchet data restore churn@1"):
        s.datasets.get_version("churn", 1)
    assert [v.version for v in s.datasets.list_versions("churn")] == [2]
    s.deletion.restore_dataset_version("churn", 1)
    assert s.datasets.get_version("churn", 1).deleted_at is None


def test_dataset_numbers_survive_purge_and_identical_content_restores(s: Stores) -> None:
    _dataset(s, "churn", "c" * 64)
    _dataset(s, "churn", "d" * 64)
    s.deletion.delete_dataset_version("churn", 2)
    assert s.datasets.latest_version("churn").version == 1
    assert _dataset(s, "churn", "d" * 64) == 2  # logging it again undoes the delete
    s.deletion.delete_dataset_version("churn", 2)
    assert _purge_all(s).dataset_versions == [("churn", 2)]  # type: ignore[attr-defined]
    assert _dataset(s, "churn", "e" * 64) == 3
    assert s.datasets.list_datasets() == [("churn", 2, 3)]


def test_a_dataset_left_with_no_version_is_removed(s: Stores) -> None:
    _dataset(s, "churn", "c" * 64)
    s.deletion.delete_dataset_version("churn", 1)
    assert s.datasets.list_datasets() == []
    _purge_all(s)
    assert _dataset(s, "churn", "f" * 64) == 1


def test_referenced_digests_cover_deleted_records(s: Stores) -> None:
    run = _run(s)
    s.tracking.record_artifacts(run, [ArtifactEntry("a", "1" * 64, 1)])
    _dataset(s, "churn", "2" * 64)
    s.deletion.delete_run(run)
    s.deletion.delete_dataset_version("churn", 1)
    assert {"1" * 64, "2" * 64} <= s.deletion.referenced_digests()


def test_no_version_is_registered_from_a_deleted_run(s: Stores) -> None:
    run = _run(s)
    s.deletion.delete_run(run)
    with pytest.raises(NotFound, match="ratchet runs restore"):
        _version(s, run)
    s.deletion.restore_run(run)
    assert _version(s, run) == 1


def test_a_purge_locks_what_it_removes_so_a_restore_after_it_finds_nothing(s: Stores) -> None:
    run = _run(s)
    s.deletion.delete_run(run)
    assert s.deletion.purge(now_ms() + 1).runs == [run]
    with pytest.raises(NotFound, match="purged run cannot be restored"):
        s.deletion.restore_run(run)


def test_an_alias_set_during_a_delete_never_lands_on_the_deleted_version(s: Stores) -> None:
    """A real second transaction: set_alias runs while a delete of the version is
    uncommitted. It must wait for the delete and then refuse, never point the alias at a
    deleted version (PostgreSQL's READ COMMITTED would let it without the row lock)."""
    import threading
    import time

    from sqlalchemy import select, update

    from ratchet.store import schema as t

    _version(s, None)
    outcome: list[BaseException | None] = []
    entered = threading.Event()

    def set_alias() -> None:
        entered.set()
        try:
            s.registry.set_alias("churn", "champion", 1, actor=None, reason=None)
            outcome.append(None)
        except BaseException as exc:  # reported below
            outcome.append(exc)

    mv = t.model_versions
    thread = threading.Thread(target=set_alias)
    with database_of(s.deletion).write() as conn:  # the delete, as delete_model_version does it
        conn.execute(select(mv.c.deleted_at).where(mv.c.name == "churn", mv.c.version == 1)
                     .with_for_update())
        conn.execute(update(mv).where(mv.c.name == "churn", mv.c.version == 1)
                     .values(deleted_at=now_ms()))
        thread.start()
        assert entered.wait(30)
        time.sleep(0.3)  # let it reach the row (no assertion on time)
    thread.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], NotFound), outcome
    assert s.registry.get_registered_model("churn", include_deleted=True).aliases == {}


def test_a_parent_whose_nested_run_is_kept_is_kept_too(s: Stores) -> None:
    parent = _run(s)
    child = _run(s, parent=parent)
    _version(s, child)
    s.deletion.delete_run(parent, force=True)
    report = s.deletion.purge(now_ms() + 1)
    assert report.runs == []
    assert any(parent in why and "nested" in why for why in report.kept)
    assert any(child in why and "model version" in why for why in report.kept)
    s.deletion.delete_model_version("churn", 1)
    assert sorted(s.deletion.purge(now_ms() + 1).runs) == sorted([parent, child])
