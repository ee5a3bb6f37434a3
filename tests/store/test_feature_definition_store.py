"""The feature store's metadata: versioned definitions, materializations and training-set
lineage, on SQLite, PostgreSQL and through a live team server."""

from __future__ import annotations

from typing import Any

import pytest

from ratchet.errors import InvalidInput, NotFound


def test_a_changed_spec_is_a_new_version_and_the_same_spec_is_not(any_stores: Any) -> None:
    store = any_stores.features
    first = store.register_definition("feature_view", "driver_stats", "a" * 32, {"f": ["x"]})
    assert (first.kind, first.name, first.version, first.spec) == (
        "feature_view", "driver_stats", 1, {"f": ["x"]})
    again = store.register_definition("feature_view", "driver_stats", "a" * 32, {"f": ["x"]})
    assert again.version == 1
    second = store.register_definition("feature_view", "driver_stats", "b" * 32,
                                       {"f": ["x", "y"]})
    assert second.version == 2
    # Going back to the first spec is a third version: history is append-only.
    assert store.register_definition("feature_view", "driver_stats", "a" * 32,
                                     {"f": ["x"]}).version == 3
    assert store.get_definition("feature_view", "driver_stats").version == 3
    assert store.get_definition("feature_view", "driver_stats", 2).spec == {"f": ["x", "y"]}
    assert [r.version for r in store.definition_history("feature_view", "driver_stats")] == [
        1, 2, 3]


def test_kinds_are_separate_and_listing_shows_the_latest(any_stores: Any) -> None:
    store = any_stores.features
    store.register_definition("entity", "driver", "c" * 32, {"join_keys": ["driver_id"]})
    store.register_definition("feature_view", "driver", "d" * 32, {"v": 1})
    store.register_definition("feature_view", "driver", "e" * 32, {"v": 2})
    listed = [(r.kind, r.name, r.version) for r in store.list_definitions()]
    assert listed == [("entity", "driver", 1), ("feature_view", "driver", 2)]
    assert [r.name for r in store.list_definitions("entity")] == ["driver"]


def test_wrong_input_is_refused_with_what_was_wrong(any_stores: Any) -> None:
    store = any_stores.features
    with pytest.raises(InvalidInput, match="kind"):
        store.register_definition("table", "x", "a" * 32, {})
    with pytest.raises(InvalidInput, match="file name"):
        store.register_definition("entity", "../etc", "a" * 32, {})
    with pytest.raises(InvalidInput, match="digest"):
        store.register_definition("entity", "x", "not hex!", {})
    with pytest.raises(NotFound, match="ratchet features apply"):
        store.get_definition("feature_view", "missing")
    with pytest.raises(NotFound):
        store.get_definition("entity", "missing", 3)
    with pytest.raises(NotFound):
        store.definition_history("entity", "missing")


def test_materializations_say_where_the_next_one_starts(any_stores: Any) -> None:
    store = any_stores.features
    assert store.last_materialization("stats", "sqlite:///x") is None
    store.record_materialization("stats", 1, "sqlite:///x", None, 1_000, 10)
    store.record_materialization("stats", 1, "sqlite:///x", 1_000, 5_000, 4)
    store.record_materialization("stats", 1, "redis://127.0.0.1:6379/0", None, 9_000, 14)
    last = store.last_materialization("stats", "sqlite:///x")
    assert last is not None and (last.start_at, last.end_at, last.rows) == (1_000, 5_000, 4)
    with pytest.raises(InvalidInput, match="not before"):
        store.record_materialization("stats", 1, "sqlite:///x", 5_000, 5_000, 0)


def test_training_set_lineage_both_ways(any_stores: Any) -> None:
    store = any_stores.features
    links = [("feature_view", "stats", 2), ("on_demand", "ratios", 1), ("dataset", "raw", 4)]
    store.link_training_set("train", 1, links)
    store.link_training_set("train", 1, links)  # again: nothing new
    got = [(x.kind, x.name, x.version) for x in store.training_set_definitions("train", 1)]
    assert got == sorted(links)
    store.link_training_set("train", 2, [("feature_view", "stats", 3)])
    using = store.training_sets_using("feature_view", "stats")
    assert [(x.dataset_name, x.dataset_version, x.version) for x in using] == [
        ("train", 1, 2), ("train", 2, 3)]
    with pytest.raises(InvalidInput, match="kind"):
        store.link_training_set("train", 3, [("model", "m", 1)])


def test_the_definition_count_stamps_every_new_version(any_stores: Any) -> None:
    store = any_stores.features
    assert store.definitions_count() == 0
    store.register_definition("entity", "driver", "a" * 32, {})
    store.register_definition("entity", "driver", "a" * 32, {})  # the same: no new version
    assert store.definitions_count() == 1
    store.register_definition("entity", "driver", "b" * 32, {"x": 1})
    assert store.definitions_count() == 2


def test_materializations_are_listed_newest_first(any_stores: Any) -> None:
    store = any_stores.features
    store.record_materialization("stats", 1, "sqlite:///x", None, 1_000, 10)
    store.record_materialization("stats", 2, "redis://127.0.0.1:6379/0", None, 2_000, 3)
    store.record_materialization("other", 1, "sqlite:///x", None, 2_000, 3)
    assert [m.view_version for m in store.list_materializations("stats")] == [2, 1]
    assert [m.rows for m in store.list_materializations("stats", "sqlite:///x")] == [10]
