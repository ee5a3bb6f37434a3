"""TrackingStore against SQLite and PostgreSQL."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.store import ArtifactEntry, CodeVersion, DatasetInput, TrackingStore


@pytest.fixture
def store(any_stores: Any) -> TrackingStore:
    return any_stores.tracking  # type: ignore[no-any-return]


@pytest.fixture
def run_id(store: TrackingStore) -> str:
    exp = store.get_or_create_experiment("exp")
    return store.create_run(exp.experiment_id, name="r").run_id


def test_experiments(store: TrackingStore) -> None:
    exp = store.create_experiment("churn", description="d", tags={"team": "ml"})
    assert store.get_experiment("churn") == exp
    assert store.get_experiment(exp.experiment_id).tags == {"team": "ml"}
    with pytest.raises(AlreadyExists, match="churn"):
        store.create_experiment("churn")
    assert store.get_or_create_experiment("churn") == exp
    with pytest.raises(NotFound):
        store.get_experiment("nope")
    with pytest.raises(InvalidInput):
        store.create_experiment("  ")
    assert [e.name for e in store.list_experiments()] == ["churn"]


def test_run_lifecycle_and_code_version(store: TrackingStore) -> None:
    exp = store.create_experiment("e")
    code = CodeVersion(git_commit="abc", git_branch="main", git_dirty=True, git_diff_hash="f" * 64,
                       entry_point="train.py", python_version="3.11", host="h", user="u",
                       packages={"numpy": "2.0"})
    run = store.create_run(exp.experiment_id, name="first", code=code, tags={"k": "v"})
    assert run.status == "running" and run.end_time is None
    assert run.code == code and run.tags == {"k": "v"}
    child = store.create_run(exp.experiment_id, parent_run_id=run.run_id)
    assert child.parent_run_id == run.run_id
    assert store.child_runs(run.run_id) == [child.run_id]
    store.set_run_status(run.run_id, "failed", error="boom")
    done = store.get_run(run.run_id)
    assert done.status == "failed" and done.error == "boom" and done.end_time is not None
    with pytest.raises(InvalidInput, match="status"):
        store.set_run_status(run.run_id, "exploded")
    with pytest.raises(NotFound):
        store.set_run_status("0" * 32, "finished")
    with pytest.raises(NotFound):
        store.create_run("0" * 32)
    with pytest.raises(NotFound, match="parent"):
        store.create_run(exp.experiment_id, parent_run_id="0" * 32)


def test_params_are_immutable(store: TrackingStore, run_id: str) -> None:
    store.log_params(run_id, {"C": 1.0, "kernel": "rbf"})
    store.log_params(run_id, {"C": 1.0})  # same value again is fine
    with pytest.raises(Conflict, match="'C'"):
        store.log_params(run_id, {"C": 2.0, "new": 1})
    # the failed batch wrote nothing
    assert store.get_run(run_id).params == {"C": "1.0", "kernel": "rbf"}
    with pytest.raises(InvalidInput):
        store.log_params(run_id, {"bad/../key": 1})
    with pytest.raises(InvalidInput):
        store.log_params(run_id, {"big": "x" * 7000})
    with pytest.raises(NotFound):
        store.log_params("0" * 32, {"a": 1})


def test_metrics_history_and_latest(store: TrackingStore, run_id: str) -> None:
    store.log_metric(run_id, "loss", 0.5, step=2, timestamp=1000)
    store.log_metric(run_id, "loss", 0.9, step=1, timestamp=2000)  # older step: not latest
    store.log_metric(run_id, "loss", 0.4, step=2, timestamp=3000)  # same step, newer
    assert store.get_run(run_id).metrics == {"loss": 0.4}
    history = store.metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.5), (2, 0.4)]
    store.log_batch(run_id, [("acc", 0.1, 0, 1), ("acc", 0.3, 5, 2), ("acc", 0.2, 3, 3)])
    assert store.get_run(run_id).metrics["acc"] == 0.3
    store.log_metric(run_id, "nan", math.nan, step=0)
    store.log_metric(run_id, "inf", math.inf, step=0)
    metrics = store.get_run(run_id).metrics
    assert math.isnan(metrics["nan"]) and metrics["inf"] == math.inf
    assert math.isnan(store.metric_history(run_id, "nan")[0].value)


def test_metric_errors(store: TrackingStore, run_id: str) -> None:
    with pytest.raises(NotFound):
        store.log_metric("0" * 32, "loss", 1.0)
    with pytest.raises(InvalidInput, match="number"):
        store.log_metric(run_id, "loss", "high")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"step|points.0.2: .*integer"):  # local | remote
        store.log_batch(run_id, [("loss", 1.0, "x", 0)])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        store.log_metric(run_id, "", 1.0)
    # a bad point fails the whole batch: nothing written
    with pytest.raises(InvalidInput):
        store.log_batch(run_id, [("ok", 1.0, 0, 0), ("bad", None, 0, 0)])  # type: ignore[list-item]
    assert store.metric_history(run_id, "ok") == []
    # the writer recovers after an error
    store.log_metric(run_id, "ok", 2.0)
    assert store.get_run(run_id).metrics == {"ok": 2.0}


def test_numpy_values_accepted(store: TrackingStore, run_id: str) -> None:
    import numpy as np

    store.log_metric(run_id, "x", np.float32(0.5), step=np.int64(3))  # type: ignore[arg-type]
    assert store.metric_history(run_id, "x")[0].step == 3


def test_tags(store: TrackingStore, run_id: str) -> None:
    store.set_tags(run_id, {"a": "1", "b": 2})
    store.set_tags(run_id, {"a": "changed"})
    assert store.get_run(run_id).tags == {"a": "changed", "b": "2"}
    store.delete_tag(run_id, "b")
    with pytest.raises(NotFound):
        store.delete_tag(run_id, "b")


def test_artifact_index_is_immutable(store: TrackingStore, run_id: str) -> None:
    a = ArtifactEntry("model/model.skops", "a" * 64, 10)
    store.record_artifacts(run_id, [a, ArtifactEntry("plots/roc.png", "b" * 64, 5)])
    store.record_artifacts(run_id, [a])  # same content: idempotent
    with pytest.raises(Conflict, match="immutable"):
        store.record_artifacts(run_id, [ArtifactEntry("model/model.skops", "c" * 64, 1)])
    assert [e.path for e in store.list_artifacts(run_id)] == ["model/model.skops", "plots/roc.png"]
    assert [e.path for e in store.list_artifacts(run_id, "model")] == ["model/model.skops"]
    assert store.list_artifacts(run_id, "mod") == []  # prefixes match whole segments
    with pytest.raises(NotFound):
        store.list_artifacts("0" * 32)


def test_inputs(store: TrackingStore, run_id: str) -> None:
    ds = DatasetInput("churn", "d" * 64, 3, "train", "s3://x")
    store.log_input(run_id, ds)
    store.log_input(run_id, ds)
    assert store.get_run(run_id).inputs == (ds,)


def test_search_and_paging(store: TrackingStore) -> None:
    exp = store.create_experiment("s")
    other = store.create_experiment("other")
    ids = []
    for i in range(7):
        run = store.create_run(exp.experiment_id, start_time=1000 + i)
        store.log_params(run.run_id, {"C": str(i % 2)})
        store.log_metric(run.run_id, "auc", i / 10)
        ids.append(run.run_id)
    store.create_run(other.experiment_id)
    runs, token = store.search_runs([exp.experiment_id], "metrics.auc > 0.15 and params.C = '1'",
                                    ["metrics.auc DESC"])
    assert [r.run_id for r in runs] == [ids[5], ids[3]] and token is None
    assert runs[0].params == {"C": "1"} and runs[0].metrics == {"auc": 0.5}
    page1, token = store.search_runs([exp.experiment_id], order_by=["metrics.auc"], max_results=3)
    page2, token2 = store.search_runs([exp.experiment_id], order_by=["metrics.auc"],
                                      max_results=3, page_token=token)
    page3, token3 = store.search_runs([exp.experiment_id], order_by=["metrics.auc"],
                                      max_results=3, page_token=token2)
    assert [r.run_id for r in page1 + page2 + page3] == ids and token3 is None
    with pytest.raises(InvalidInput, match="different search"):
        store.search_runs([exp.experiment_id], max_results=3, page_token=token)
    with pytest.raises(InvalidInput, match="page_token"):
        store.search_runs(page_token="garbage!")
    with pytest.raises(InvalidInput, match="max_results"):
        store.search_runs(max_results=0)
    with pytest.raises(InvalidInput, match="position"):
        store.search_runs(filter="metrics.auc >> 1")
    all_runs, _ = store.search_runs()
    assert len(all_runs) == 8


def test_longest_param_value_is_stored_and_searchable(store: TrackingStore, run_id: str) -> None:
    # 6,000 chars overflows a PostgreSQL btree row; the schema must not index it that way.
    import random
    import string

    value = "".join(random.Random(0).choices(string.ascii_letters, k=6000))
    store.log_params(run_id, {"big": value})
    assert store.get_run(run_id).params["big"] == value
    runs, _ = store.search_runs(filter=f"params.big = '{value}'")
    assert [r.run_id for r in runs] == [run_id]
