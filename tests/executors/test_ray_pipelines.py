"""Pipelines and tuning on the real Ray cluster started by ``ray_cluster`` (loopback)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ratchet
from ratchet.errors import StepFailed, StepTimeout
from ratchet.executors.ray import RayExecutor
from ratchet.tracking import fluent
from tests.pipelines import example_steps as ex


@ratchet.step(timeout=1.0)
def too_slow(marker: str) -> int:
    time.sleep(20)
    Path(marker).write_text("finished")  # must never happen: the task is killed
    return 1


@ratchet.pipeline
def times_out(marker: str):
    return too_slow(marker)


@pytest.fixture
def ray_executor(ray_cluster: str) -> Iterator[RayExecutor]:
    executor = RayExecutor(address=ray_cluster)
    yield executor
    executor.shutdown()


def test_a_pipeline_runs_on_ray_with_artifacts_through_the_store(
        workspace_on: Path, ray_executor: RayExecutor) -> None:
    result = ex.training.run(n=40, executor=ray_executor)
    assert result.status == "finished"
    assert result.record.executor.startswith("ray")
    assert result.output["report"]["rows"] == 20
    assert ex.CALLS == {}  # every step ran in a Ray worker, not in this process
    tracking = fluent.client()
    fit = result.step("fit")
    assert tracking.get_run(fit.tracking_run_id or "").metrics == {"train_rows": 20.0}
    assert tracking.read_artifact(result.step("load").tracking_run_id or "",
                                  "logs/output.txt") == b"loading 40 rows\n"
    again = ex.training.run(n=40, executor=ray_executor)
    assert {s.status for s in again.steps} == {"cached"}


def test_a_step_past_its_timeout_is_killed_on_ray(workspace: Path, tmp_path: Path,
                                                  ray_executor: RayExecutor) -> None:
    marker = tmp_path / "finished"
    with pytest.raises(StepFailed) as err:
        times_out.run(marker=str(marker), executor=ray_executor)
    assert err.value.step == "too_slow"
    assert isinstance(err.value.__cause__, StepTimeout)
    time.sleep(1.5)
    assert not marker.exists()


def test_tuning_trials_run_as_ray_tasks(workspace: Path, ray_executor: RayExecutor) -> None:
    result = ratchet.tune(_objective, {"x": ("float", -5.0, 5.0)}, n_trials=6, seed=1,
                          executor=ray_executor, storage=None, progress=False)
    assert len(result.trials) == 6
    pids = {run.params["pid"] for run in fluent.client().child_runs(result.run_id)}
    assert pids and str(os.getpid()) not in pids


def _objective(x: float) -> float:
    ratchet.log_param("pid", os.getpid())
    return -(x - 2.0) ** 2
