"""Pipelines end to end on the real stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import ratchet
from ratchet.errors import InvalidInput, StepFailed, StepTimeout
from ratchet.pipelines import get_pipeline_run, list_pipeline_runs, resume
from ratchet.tracking import fluent
from tests.pipelines import example_steps as ex

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    ex.CALLS.clear()


def test_a_pipeline_runs_records_and_returns_its_outputs(workspace_on: Path) -> None:
    result = ex.training.run(n=40)
    assert result.status == "finished"
    assert result.output["rows"] == 40
    assert result.output["report"]["rows"] == 20
    assert [s.node for s in result.steps] == ["load", "split", "fit", "evaluate"]
    assert all(s.status == "finished" and s.attempts == 1 for s in result.steps)
    split = result.step("split")
    assert split.upstream == ("load",)
    assert {o.name for o in split.outputs} == {"train", "test"}
    assert {i.name: i.source_node for i in result.step("evaluate").inputs} == {
        "model": "fit", "test": "split"}
    assert result.step("fit").outputs[0].materializer == "model"
    assert result.step("load").params == {"n": 40}
    # Tracking: a run for the pipeline, a child run per executed step; metrics land there.
    tracking = fluent.client()
    parent = tracking.get_run(result.record.tracking_run_id)
    assert parent.status == "finished" and parent.params == {"n": "40", "C": "1.0"}
    children = {r.name: r for r in tracking.child_runs(parent.run_id)}
    assert set(children) == {"load", "split", "fit", "evaluate"}
    assert children["fit"].metrics == {"train_rows": 20.0}
    assert children["load"].params == {"n": "40"}
    assert all(r.status == "finished" for r in children.values())
    model = result.load("fit")
    assert model.predict(pd.DataFrame({"x": [1.0]})).shape == (1,)


def test_a_second_run_is_served_from_the_cache(workspace_on: Path) -> None:
    first = ex.training.run(n=30)
    second = ex.training.run(n=30)
    assert [s.status for s in second.steps] == ["cached"] * 4
    assert ex.CALLS == {"load": 1, "split": 1, "fit": 1, "evaluate": 1}
    for a, b in zip(first.steps, second.steps, strict=True):
        assert b.cached_from == a.step_run_id
        assert [o.digest for o in a.outputs] == [o.digest for o in b.outputs]
        assert b.tracking_run_id is None
    assert second.output == first.output
    # A parameter that only fit sees re-runs fit and what depends on it.
    third = ex.training.run(n=30, C=0.1)
    assert {s.node: s.status for s in third.steps} == {
        "load": "cached", "split": "cached", "fit": "finished", "evaluate": "finished"}
    # cache=False runs everything again.
    fourth = ex.training.run(n=30, cache=False)
    assert {s.status for s in fourth.steps} == {"finished"}


def test_cache_opt_outs(workspace: Path) -> None:
    calls: list[str] = []

    @ratchet.step(cache=False)
    def never(x: int) -> int:
        calls.append("never")
        return x

    @ratchet.step(deterministic=False)
    def noisy(x: int) -> int:
        calls.append("noisy")
        return x

    @ratchet.step
    def plain(x: int) -> int:
        calls.append("plain")
        return x

    @ratchet.pipeline
    def p(x: int = 1):
        return plain(noisy(x)), never(x)

    p.run()
    p.run()
    assert calls.count("never") == 2 and calls.count("noisy") == 2
    assert calls.count("plain") == 1  # its input's content did not change


def test_a_cache_hit_whose_blobs_are_gone_is_recomputed(workspace: Path) -> None:
    @ratchet.step
    def big(n: int) -> np.ndarray:
        return np.arange(n, dtype="float64")  # over the inline limit: stored as a blob

    @ratchet.pipeline
    def p(n: int = 20_000):
        return big(n)

    first = p.run()
    digest = first.step("big").outputs[0].files[0][1]
    blob = fluent.client().blobs.local_path(digest)
    assert blob is not None
    blob.unlink()
    second = p.run()
    assert second.step("big").status == "finished"
    assert second.output.shape == (20_000,)


def test_outputs_by_type_and_a_custom_materializer(workspace: Path) -> None:
    class Point:
        def __init__(self, x: float, y: float) -> None:
            self.x, self.y = x, y

    class PointMaterializer(ratchet.pipelines.FileMaterializer):
        name = "test.point"
        filename = "point.txt"

        def handles(self, value: object) -> bool:
            return isinstance(value, Point)

        def dumps(self, value: Point) -> bytes:
            return f"{value.x},{value.y}".encode()

        def loads(self, data: bytes) -> Point:
            x, y = data.decode().split(",")
            return Point(float(x), float(y))

    ratchet.register_materializer(PointMaterializer())

    @ratchet.step
    def make_all(n: int):
        return {"frame": pd.DataFrame({"a": range(n)}), "n": n}

    @ratchet.step(outputs=("frame", "array", "table", "point", "payload"))
    def many(n: int):
        return (pd.DataFrame({"a": range(n)}), np.ones((n, 2)), pa.table({"b": list(range(n))}),
                Point(1.5, n), {"n": n, "tags": ["a", "b"], "score": np.float64(0.5)})

    @ratchet.step
    def check(frame: pd.DataFrame, array: np.ndarray, table: pa.Table, point: Point,
              payload: dict) -> str:
        assert isinstance(frame, pd.DataFrame) and len(frame) == 3
        assert array.shape == (3, 2)
        assert isinstance(table, pa.Table) and table.num_rows == 3
        assert isinstance(point, Point) and point.y == 3.0
        return f"{payload['n']}-{payload['tags'][1]}-{payload['score']}"

    @ratchet.pipeline
    def p(n: int = 3):
        frame, array, table, point, payload = many(n)
        return check(frame, array, table, point, payload)

    result = p.run()
    assert result.output == "3-b-0.5"
    materializers = {o.name: o.materializer for o in result.step("many").outputs}
    assert materializers == {"frame": "pandas.parquet", "array": "numpy.npy",
                             "table": "arrow.parquet", "point": "test.point",
                             "payload": "json"}

    @ratchet.pipeline
    def bad():
        return make_all(2)

    with pytest.raises(StepFailed) as err:
        bad.run()
    cause = err.value.__cause__
    assert isinstance(cause, InvalidInput)
    assert "make_all" in str(cause) and "DataFrame" in str(cause)
    assert "register_materializer" in str(cause)


def test_dataset_and_model_outputs_are_versions_with_lineage(workspace_on: Path) -> None:
    @ratchet.step(dataset="features")
    def features(n: int) -> pd.DataFrame:
        return pd.DataFrame({"x": np.arange(n, dtype="float64"), "y": np.arange(n) % 2})

    @ratchet.step(model="clf")
    def train(df: pd.DataFrame):
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(max_depth=2).fit(df[["x"]], df["y"])

    @ratchet.step
    def score(model, df: pd.DataFrame) -> float:
        return float(model.score(df[["x"]], df["y"]))

    @ratchet.pipeline
    def p(n: int = 50):
        df = features(n)
        return score(train(df), df)

    result = p.run()
    assert 0 <= result.output <= 1
    feature_out = result.step("features").outputs[0]
    model_out = result.step("train").outputs[0]
    assert feature_out.dataset == ("features", 1)
    assert model_out.model == ("clf", 1)
    version = ratchet.data.get("features@1")
    assert version.digest == feature_out.digest and version.row_count == 50
    loaded = ratchet.models.load("models:/clf/1")
    assert loaded.predict(pd.DataFrame({"x": [3.0]})).shape == (1,)
    # The signature comes from the step's training frame, cut to the model's features, so
    # the version can be served.
    assert loaded.signature is not None
    assert [c.name for c in loaded.signature.inputs] == ["x"]
    lineage = ratchet.models.lineage("models:/clf/1")
    assert lineage.run.run_id == result.step("train").tracking_run_id
    store = fluent.client().workspace.stores.pipelines
    assert [s.node for s in store.producers(dataset=("features", 1))] == ["features"]
    assert [s.node for s in store.producers(model=("clf", 1))] == ["train"]
    assert {s.node for s in store.producers(digest=feature_out.digest)} == {"features"}


def test_retries_with_backoff_then_success(workspace: Path) -> None:
    attempts: list[float] = []

    @ratchet.step(retries=2, backoff=0.05, backoff_factor=2)
    def flaky(x: int) -> int:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return x

    @ratchet.pipeline
    def p(x: int = 7):
        return flaky(x)

    result = p.run()
    assert result.output == 7
    record = result.step("flaky")
    assert record.status == "finished" and record.attempts == 3
    # The waits grow: at least backoff, then backoff * factor.
    assert attempts[1] - attempts[0] >= 0.05 and attempts[2] - attempts[1] >= 0.1


def test_final_failure_names_the_step_and_keeps_the_users_traceback(workspace_on: Path
                                                                     ) -> None:
    @ratchet.step(retries=3, retry_on=ConnectionError, backoff=0)
    def broken(x: int) -> int:
        print("about to fail")
        raise ValueError(f"bad value {x}")

    @ratchet.step
    def after(x: int) -> int:
        return x

    @ratchet.pipeline
    def p(x: int = 3):
        return after(broken(x))

    with pytest.raises(StepFailed) as err:
        p.run()
    failure = err.value
    assert failure.step == "broken" and "bad value 3" in str(failure)
    assert isinstance(failure.__cause__, ValueError)  # not retried: not a ConnectionError
    run = get_pipeline_run(failure.run_id)
    assert run.status == "failed" and "broken" in (run.record.error or "")
    statuses = {s.node: (s.status, s.attempts) for s in run.steps}
    assert statuses == {"broken": ("failed", 1), "after": ("skipped", 0)}
    broken_record = run.step("broken")
    assert "ValueError: bad value 3" in (broken_record.error or "")
    tracking = fluent.client()
    step_run = tracking.get_run(broken_record.tracking_run_id or "")
    assert step_run.status == "failed" and "bad value 3" in (step_run.error or "")
    assert tracking.read_artifact(step_run.run_id, "logs/output.txt") == b"about to fail\n"
    assert tracking.get_run(run.record.tracking_run_id or "").status == "failed"


def test_a_step_past_its_timeout_fails_with_step_timeout(workspace: Path) -> None:
    @ratchet.step(timeout=0.2)
    def stuck() -> int:
        time.sleep(3)
        return 1

    @ratchet.pipeline
    def p():
        return stuck()

    with pytest.raises(StepFailed) as err:
        p.run()
    assert isinstance(err.value.__cause__, StepTimeout)
    assert "timeout" in str(err.value).lower()


def test_resume_reruns_only_what_did_not_finish(workspace_on: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv("RATCHET_TEST_FLAG", str(flag))
    with pytest.raises(StepFailed) as err:
        ex.resumable.run(x=2)
    failed_id = err.value.run_id
    assert failed_id is not None
    assert ex.CALLS == {"first": 1, "fragile": 1}
    flag.unlink()
    resumed = resume(failed_id[:10])  # a unique prefix is enough
    assert resumed.status == "finished" and resumed.output == 35
    assert resumed.record.resumed_from == failed_id
    # `first` has cache=False, but it finished in the failed run: reused, not rerun.
    assert {s.node: s.status for s in resumed.steps} == {
        "first": "cached", "fragile": "finished", "last": "finished"}
    assert ex.CALLS == {"first": 1, "fragile": 2, "last": 1}
    with pytest.raises(InvalidInput, match="nothing to resume"):
        resume(resumed.run_id)


def test_a_killed_driver_leaves_an_abandoned_run(workspace_on: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    flag = tmp_path / "started"
    env = {**os.environ, "RATCHET_TEST_FLAG": str(flag), "PYTHONPATH": str(REPO)}
    code = "from tests.pipelines.example_steps import sleeper; sleeper.run(seconds=60)"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=workspace_on)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, "the pipeline process died before its step started"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (running,) = list_pipeline_runs("sleeper")
    assert running.status == "running"  # its heartbeat is still fresh
    monkeypatch.setenv("RATCHET_HEARTBEAT_TIMEOUT_S", "0")
    (abandoned,) = list_pipeline_runs("sleeper")
    assert abandoned.status == "abandoned" and "heartbeat" in (abandoned.record.error or "")
    run = get_pipeline_run(abandoned.run_id)
    assert run.step("slow").status == "abandoned"
    tracking = fluent.client()
    assert tracking.get_run(run.step("slow").tracking_run_id or "").status == "killed"
    assert tracking.get_run(abandoned.record.tracking_run_id or "").status == "killed"


def test_independent_branches_run_concurrently(workspace: Path) -> None:
    barrier = threading.Barrier(2, timeout=10)

    @ratchet.step
    def side(name: str) -> str:
        barrier.wait()  # both branches must be in flight at once, or this times out
        return name

    @ratchet.step
    def join(a: str, b: str) -> str:
        return a + b

    @ratchet.pipeline
    def p():
        return join(side("a"), side("b"))

    result = p.run(executor="local:2")
    assert result.output == "ab"
    assert [s.node for s in result.steps] == ["side", "side_2", "join"]


def test_the_process_executor_runs_steps_in_other_processes(workspace: Path) -> None:
    result = ex.training.run(n=20, executor="processes:2")
    assert result.status == "finished" and result.output["rows"] == 20
    assert ex.CALLS == {}  # the functions ran elsewhere


def test_building_errors_are_clear(workspace: Path) -> None:
    @ratchet.step
    def value() -> int:
        return 1

    @ratchet.pipeline
    def branches():
        if value():
            return 1
        return 0

    with pytest.raises(InvalidInput, match="cannot branch on the output of step 'value'"):
        branches.run()

    @ratchet.pipeline
    def wrong_args():
        return value(3)

    with pytest.raises(InvalidInput, match="step 'value' called with arguments"):
        wrong_args.run()

    @ratchet.pipeline
    def empty():
        return 1

    with pytest.raises(InvalidInput, match="called no steps"):
        empty.run()
    def uses_reserved(cache: bool = True) -> None:
        return None

    with pytest.raises(InvalidInput, match="reserved"):
        ratchet.pipeline(uses_reserved)
    with pytest.raises(InvalidInput, match=r"\.run\(\*\*params\)"):
        ex.training()
    with pytest.raises(InvalidInput, match="unexpected keyword argument 'nope'"):
        ex.training.run(nope=1)
    with pytest.raises(InvalidInput, match="unknown pipeline run status 'done'"):
        list_pipeline_runs(status="done")
    with pytest.raises(InvalidInput, match="retries= must be"):
        ratchet.step(retries=-1)(lambda: 1)


def test_a_step_outside_a_pipeline_is_its_function() -> None:
    df = ex.load(4)
    assert len(df) == 4
    train, test = ex.split(df)
    assert len(train) == 2 and len(test) == 2


def test_a_run_with_non_json_parameters_cannot_be_resumed(workspace: Path) -> None:
    @ratchet.step
    def rows(df: pd.DataFrame) -> int:
        raise ValueError(f"{len(df)} rows is not enough")

    @ratchet.pipeline
    def p(df: pd.DataFrame | None = None):
        return rows(df)

    with pytest.raises(StepFailed) as err:
        p.run(df=pd.DataFrame({"a": [1, 2]}))
    assert get_pipeline_run(err.value.run_id or "").record.ref is None
    with pytest.raises(InvalidInput, match="parameters are not JSON"):
        resume(err.value.run_id or "")
