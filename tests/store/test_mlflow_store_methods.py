"""Store methods MLflow's API needs: chosen ids, renames, experiment tags, retry-safe metric
batches, latest points with their steps, forgetting artifacts, deleting registry tags.
On SQLite, PostgreSQL and (for the exposed ones) through a live team server."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.store import ArtifactEntry
from ratchet.store.database import open_database
from ratchet.store.stores import SqlStores


def test_chosen_experiment_and_run_ids(any_stores: Any) -> None:
    tracking = any_stores.tracking
    exp = tracking.create_experiment("Default", experiment_id="0")
    assert exp.experiment_id == "0" and tracking.get_experiment("0").name == "Default"
    run = tracking.create_run("0", run_id="a" * 32)
    assert run.run_id == "a" * 32 and tracking.get_run("a" * 32).experiment_id == "0"
    with pytest.raises(AlreadyExists, match="a run with id"):
        tracking.create_run("0", run_id="a" * 32)
    for bad in ("", "-x", "a/b", "a" * 33, "../x", "x y"):
        with pytest.raises(InvalidInput, match="id"):
            tracking.create_run("0", run_id=bad)
        with pytest.raises(InvalidInput, match="id"):
            tracking.create_experiment(f"e{len(bad)}{bad[:1]}", experiment_id=bad)


def test_an_id_wins_over_a_name(any_stores: Any) -> None:
    tracking = any_stores.tracking
    first = tracking.create_experiment("first", experiment_id="5")
    tracking.create_experiment("5")  # named like the first one's id
    assert tracking.get_experiment("5").experiment_id == first.experiment_id
    any_stores.deletion.delete_experiment("5")
    assert tracking.get_experiment("5", include_deleted=True).name == "first"
    assert tracking.get_experiment("first", include_deleted=True).deleted_at is not None


def test_rename_experiment_and_its_tags(any_stores: Any) -> None:
    tracking = any_stores.tracking
    exp = tracking.create_experiment("old")
    tracking.create_experiment("taken")
    assert tracking.rename_experiment(exp.experiment_id, "new").name == "new"
    assert tracking.get_experiment(exp.experiment_id).name == "new"
    with pytest.raises(AlreadyExists):
        tracking.rename_experiment(exp.experiment_id, "taken")
    with pytest.raises(NotFound):
        tracking.rename_experiment("f" * 32, "other")
    tracking.set_experiment_tags(exp.experiment_id, {"team": "a", "k": "1"})
    tracking.set_experiment_tags(exp.experiment_id, {"team": "b"})
    assert tracking.get_experiment("new").tags == {"team": "b", "k": "1"}
    tracking.delete_experiment_tag(exp.experiment_id, "k")
    assert tracking.get_experiment("new").tags == {"team": "b"}
    with pytest.raises(NotFound, match="no tag"):
        tracking.delete_experiment_tag(exp.experiment_id, "k")
    with pytest.raises(NotFound):
        tracking.set_experiment_tags("f" * 32, {"a": "b"})


def test_set_run_name(any_stores: Any) -> None:
    tracking = any_stores.tracking
    exp = tracking.create_experiment("e")
    run = tracking.create_run(exp.experiment_id, name="first")
    tracking.set_run_name(run.run_id, "second")
    assert tracking.get_run(run.run_id).name == "second"
    with pytest.raises(InvalidInput):
        tracking.set_run_name(run.run_id, " ")
    with pytest.raises(NotFound):
        tracking.set_run_name("f" * 32, "x")


def test_a_retried_batch_is_stored_once(any_stores: Any) -> None:
    tracking = any_stores.tracking
    exp = tracking.create_experiment("e")
    run_id = tracking.create_run(exp.experiment_id).run_id
    batch = [("loss", 1.0, 0, 1000), ("loss", math.nan, 1, 1001), ("acc", 0.5, 0, 1000)]
    assert tracking.log_batch(run_id, batch, skip_logged=True) == 3
    assert tracking.log_batch(run_id, batch, skip_logged=True) == 0  # the retry
    # A new point, and a repeat inside one batch, and the same step at another time.
    again = [("loss", 2.0, 2, 1002), ("loss", 2.0, 2, 1002), ("loss", 1.0, 0, 2000)]
    assert tracking.log_batch(run_id, again, skip_logged=True) == 2
    history = tracking.metric_history(run_id, "loss")
    assert [(m.step, m.timestamp) for m in history] == [(0, 1000), (0, 2000), (1, 1001),
                                                          (2, 1002)]
    assert tracking.log_batch(run_id, batch) == 3  # without the flag: appended as before


def test_forget_artifacts(any_stores: Any) -> None:
    tracking = any_stores.tracking
    exp = tracking.create_experiment("e")
    run_id = tracking.create_run(exp.experiment_id).run_id
    digest = "a" * 64
    tracking.record_artifacts(run_id, [ArtifactEntry(p, digest, 1) for p in
                                       ("dir/a", "dir/b", "dir_x/c", "top")])
    assert tracking.forget_artifacts(run_id, "dir") == 2  # not dir_x: '_' is no wildcard
    assert [e.path for e in tracking.list_artifacts(run_id)] == ["dir_x/c", "top"]
    assert tracking.forget_artifacts(run_id, "") == 2
    with pytest.raises(NotFound):
        tracking.forget_artifacts("f" * 32, "x")


def test_delete_registry_tags(any_stores: Any) -> None:
    registry, tracking = any_stores.registry, any_stores.tracking
    exp = tracking.create_experiment("e")
    run_id = tracking.create_run(exp.experiment_id).run_id
    registry.create_registered_model("m")
    registry.set_registered_model_tag("m", "k", "v")
    registry.delete_registered_model_tag("m", "k")
    registry.delete_registered_model_tag("m", "absent")  # no error, as in MLflow
    assert registry.get_registered_model("m").tags == {}
    registry.create_model_version("m", run_id=run_id, artifact_path="model",
                                  content_hash="b" * 64, flavor="sklearn", manifest={})
    registry.set_model_version_tag("m", 1, "k", "v")
    registry.delete_model_version_tag("m", 1, "k")
    assert registry.get_model_version("m", 1).tags == {}
    with pytest.raises(NotFound):
        registry.delete_model_version_tag("m", 9, "k")
    with pytest.raises(NotFound):
        registry.delete_registered_model_tag("nope", "k")


@pytest.fixture
def sql_stores(backend_url: str) -> SqlStores:
    return SqlStores(open_database(backend_url))


def test_latest_metric_points(sql_stores: SqlStores) -> None:
    tracking = sql_stores.tracking
    exp = tracking.create_experiment("e")
    one = tracking.create_run(exp.experiment_id).run_id
    two = tracking.create_run(exp.experiment_id).run_id
    tracking.log_batch(one, [("b", 1.0, 0, 10), ("b", 3.0, 5, 11), ("a", math.inf, 2, 12)])
    tracking.log_batch(two, [("c", math.nan, 1, 13)])
    found = tracking.latest_metric_points([one, two, "f" * 32])
    assert [(m.key, m.value, m.step, m.timestamp) for m in found[one]] == \
        [("a", math.inf, 2, 12), ("b", 3.0, 5, 11)]
    assert math.isnan(found[two][0].value) and found[two][0].step == 1
    assert found["f" * 32] == [] and tracking.latest_metric_points([]) == {}


def test_a_chosen_version_number(any_stores: Any) -> None:
    registry, tracking = any_stores.registry, any_stores.tracking
    run_id = tracking.create_run(tracking.create_experiment("e").experiment_id).run_id
    files = dict(run_id=run_id, artifact_path="model", content_hash="b" * 64,
                 flavor="sklearn", manifest={})
    assert registry.create_model_version("m", **files, version=3).version == 3
    assert registry.create_model_version("m", **files).version == 4  # numbers only grow
    with pytest.raises(Conflict, match="next free one is 5"):
        registry.create_model_version("m", **files, version=2)
    with pytest.raises(InvalidInput):
        registry.create_model_version("m", **files, version=0)
    assert registry.get_registered_model("m").latest_version == 4


def test_run_owner(sql_stores: SqlStores) -> None:
    tracking = sql_stores.tracking
    run_id = tracking.create_run(tracking.create_experiment("owner").experiment_id).run_id
    assert tracking.run_owner(run_id) == ("owner", None)
    sql_stores.deletion.delete_run(run_id)
    name, deleted_at = tracking.run_owner(run_id)
    assert name == "owner" and isinstance(deleted_at, int)
    with pytest.raises(NotFound):
        tracking.run_owner("f" * 32)


def test_metric_history_pages(any_stores: Any) -> None:
    tracking = any_stores.tracking
    run_id = tracking.create_run(tracking.create_experiment("e").experiment_id).run_id
    tracking.log_batch(run_id, [("m", float(i), i, 100 + i) for i in range(7)])
    pages = [tracking.metric_history(run_id, "m", offset=o, limit=3) for o in (0, 3, 6, 9)]
    assert [[p.step for p in page] for page in pages] == [[0, 1, 2], [3, 4, 5], [6], []]
    assert [p.step for p in tracking.metric_history(run_id, "m")] == list(range(7))
    with pytest.raises(InvalidInput):
        tracking.metric_history(run_id, "m", limit=0)
