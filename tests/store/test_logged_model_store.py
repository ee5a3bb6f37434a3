"""LoggedModelStore (MLflow 3's logged models) against SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pytest

from ratchet.clock import now_ms
from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.store import open_database
from ratchet.store.logged_model_store import HOLDER_TAG, LoggedModelMetric
from ratchet.store.records import ArtifactEntry
from ratchet.store.stores import SqlStores


@pytest.fixture
def stores(backend_url: str) -> SqlStores:
    return SqlStores(open_database(backend_url))


def test_a_model_without_a_source_run_gets_a_holder_run(stores: SqlStores) -> None:
    exp = stores.tracking.create_experiment("lm").experiment_id
    model = stores.logged_models.create(exp, name="clf", model_type="sklearn",
                                        params={"alpha": 0.5}, tags={"team": "a"})
    assert model.model_id.startswith("m-") and len(model.model_id) == 34
    assert model.status == "pending" and model.source_run_id is None
    assert model.artifact_path == f"models/{model.model_id}"
    assert model.params == {"alpha": "0.5"} and model.tags == {"team": "a"}
    holder = stores.tracking.get_run(model.artifact_run_id)
    assert holder.experiment_id == exp and holder.name == "clf"
    assert holder.tags[HOLDER_TAG] == model.model_id and holder.status == "running"
    ready = stores.logged_models.finalize(model.model_id, "ready")
    assert ready.status == "ready" and ready.updated_at >= model.updated_at
    assert stores.tracking.get_run(model.artifact_run_id).status == "finished"
    stores.logged_models.finalize(model.model_id, "failed", "upload broke")
    assert stores.logged_models.get(model.model_id).status_message == "upload broke"
    assert stores.tracking.get_run(model.artifact_run_id).status == "failed"
    assert stores.logged_models.get(model.model_id) == stores.logged_models.get(model.model_id)


def test_the_source_run_holds_the_files_when_in_the_same_experiment(stores: SqlStores) -> None:
    tracking = stores.tracking
    exp = tracking.create_experiment("lm").experiment_id
    other = tracking.create_experiment("other").experiment_id
    run = tracking.create_run(exp)
    same = stores.logged_models.create(exp, name="m", source_run_id=run.run_id)
    assert same.artifact_run_id == run.run_id and same.source_run_id == run.run_id
    stores.logged_models.finalize(same.model_id, "ready")
    assert tracking.get_run(run.run_id).status == "running"  # the user's run is theirs
    elsewhere = stores.logged_models.create(other, name="m", source_run_id=run.run_id)
    assert elsewhere.source_run_id == run.run_id and elsewhere.artifact_run_id != run.run_id
    assert tracking.get_run(elsewhere.artifact_run_id).experiment_id == other
    assert [m.model_id for m in stores.logged_models.models_of_run(run.run_id)] == [
        same.model_id]
    stores.logged_models.delete(same.model_id)
    assert stores.logged_models.models_of_run(run.run_id) == []
    assert [m.model_id for m in stores.logged_models.models_of_run(
        run.run_id, include_deleted=True)] == [same.model_id]
    with pytest.raises(NotFound, match="source run"):
        stores.logged_models.create(exp, source_run_id="0" * 32)
    with pytest.raises(NotFound, match="experiment"):
        stores.logged_models.create("0" * 32, name="x")


def test_params_tags_metrics(stores: SqlStores) -> None:
    exp = stores.tracking.create_experiment("lm").experiment_id
    lm = stores.logged_models
    model = lm.create(exp, params={"a": "1"})
    assert model.name == f"model-{model.model_id[-8:]}"
    lm.log_params(model.model_id, {"a": "1", "b": 2})  # the same value again: a retry
    with pytest.raises(Conflict, match="immutable"):
        lm.log_params(model.model_id, {"a": "3"})
    lm.set_tags(model.model_id, {"k": "v"})
    lm.set_tags(model.model_id, {"k": "w", "z": "1"})
    lm.delete_tag(model.model_id, "z")
    with pytest.raises(NotFound, match="no tag"):
        lm.delete_tag(model.model_id, "z")
    run = stores.tracking.create_run(exp)
    lm.log_metrics(model.model_id, [LoggedModelMetric("acc", 0.9, 1, 1000, run.run_id, "d", "x"),
                                    LoggedModelMetric("loss", math.nan, 0, 1000)])
    got = lm.get(model.model_id)
    assert got.params == {"a": "1", "b": "2"} and got.tags == {"k": "w"}
    assert got.metrics[0] == LoggedModelMetric("acc", 0.9, 1, 1000, run.run_id, "d", "x")
    assert math.isnan(got.metrics[1].value)
    with pytest.raises(InvalidInput):
        lm.set_tags(model.model_id, {"../x": "v"})
    with pytest.raises(InvalidInput):
        lm.finalize(model.model_id, "READY")
    with pytest.raises(NotFound):
        lm.log_params("m-" + "0" * 32, {"a": "1"})
    with pytest.raises(NotFound):
        lm.log_metrics("m-" + "0" * 32, [LoggedModelMetric("acc", 1.0, 0, 0)])
    with pytest.raises(InvalidInput):
        lm.create(exp, model_id="../etc")
    with pytest.raises(AlreadyExists):
        lm.create(exp, model_id=model.model_id)


def test_listing_deleting_and_outputs(stores: SqlStores) -> None:
    tracking, lm = stores.tracking, stores.logged_models
    a = tracking.create_experiment("a").experiment_id
    b = tracking.create_experiment("b").experiment_id
    first, second = lm.create(a, name="one"), lm.create(a, name="two")
    third = lm.create(b, name="three")
    assert [m.name for m in lm.list_models([a])] == ["two", "one"]
    assert {m.name for m in lm.list_models([a, b])} == {"one", "two", "three"}
    assert lm.list_models([]) == []
    lm.delete(first.model_id)
    with pytest.raises(NotFound):
        lm.get(first.model_id)
    assert lm.get(first.model_id, include_deleted=True).deleted_at is not None
    assert [m.name for m in lm.list_models([a])] == ["two"]
    assert len(lm.list_models([a], include_deleted=True)) == 2
    run = tracking.create_run(a)
    lm.record_outputs(run.run_id, [(second.model_id, 3), (third.model_id, 0)])
    lm.record_outputs(run.run_id, [(second.model_id, 3)])  # a retry: nothing changes
    assert lm.outputs_of_run(run.run_id) == sorted([(second.model_id, 3), (third.model_id, 0)])
    with pytest.raises(NotFound):
        lm.record_outputs(run.run_id, [("m-" + "1" * 32, 0)])
    with pytest.raises(NotFound):
        lm.record_outputs("0" * 32, [(second.model_id, 0)])
    lm.record_inputs(run.run_id, [third.model_id, second.model_id, third.model_id])
    lm.record_inputs(run.run_id, [second.model_id])  # a retry: nothing changes
    assert sorted(lm.inputs_of_run(run.run_id)) == sorted([second.model_id, third.model_id])
    assert lm.inputs_of_run(tracking.create_run(a).run_id) == []
    with pytest.raises(NotFound):
        lm.record_inputs(run.run_id, ["m-" + "1" * 32])


def test_purging_the_holder_run_removes_the_model(stores: SqlStores) -> None:
    tracking, lm = stores.tracking, stores.logged_models
    exp = tracking.create_experiment("p").experiment_id
    model = lm.create(exp, name="gone")
    tracking.record_artifacts(model.artifact_run_id,
                              [ArtifactEntry(f"{model.artifact_path}/MLmodel", "a" * 64, 3)])
    source = tracking.create_run(exp)
    kept = lm.create(exp, source_run_id=source.run_id)
    stores.deletion.delete_run(model.artifact_run_id)
    stores.deletion.purge(now_ms() + 1)
    with pytest.raises(NotFound):
        lm.get(model.model_id, include_deleted=True)
    assert lm.get(kept.model_id).artifact_run_id == source.run_id
