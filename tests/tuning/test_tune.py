"""``ratchet.tuning.tune`` end to end: real Optuna, real stores, real executors."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

import ratchet
from ratchet.config import Settings
from ratchet.errors import Conflict, InvalidInput, NotFound, StepFailed
from ratchet.executors import Executor, Resources
from ratchet.executors.local import LocalExecutor
from ratchet.store import Run
from ratchet.tracking.client import TrackingClient
from ratchet.tuning import report, tune
from ratchet.workspace import Workspace
from tests.tuning.objectives import curve, logging_quadratic, quadratic

SPACE = {"x": ("float", -10.0, 10.0), "y": ("float", -10.0, 10.0)}
STATE = "ratchet.tuning.state"


def children(settings: Settings, run_id: str) -> list[Run]:
    return sorted(TrackingClient(Workspace(settings)).child_runs(run_id), key=lambda r: r.start_time)


def test_quadratic_objective_finds_the_optimum(sqlite_settings: Settings) -> None:
    def run() -> Any:
        return tune(quadratic, SPACE, n_trials=60, seed=3, parallel=1, storage=None,
                    workspace=Workspace(sqlite_settings))

    result = run()
    assert result.best_params["x"] == pytest.approx(2.0, abs=0.5)
    assert result.best_params["y"] == pytest.approx(-1.0, abs=0.5)
    assert result.best_value == pytest.approx(0.0, abs=0.5)
    assert run().best_params == result.best_params  # seeded and sequential: reproducible


def test_minimize(sqlite_settings: Settings) -> None:
    result = tune(lambda x, y: -quadratic(x, y), SPACE, n_trials=40, seed=0, parallel=1,
                  direction="minimize", storage=None, workspace=Workspace(sqlite_settings))
    assert result.best_value == pytest.approx(0.0, abs=1.0)
    assert result.best_value == min(result.trials["value"])


def test_trials_are_child_runs_with_params_and_metrics(settings: Settings) -> None:
    # Four threads at once: each objective's fluent calls must reach its own trial's run.
    result = tune(logging_quadratic, SPACE, n_trials=12, parallel=4, seed=0,
                  experiment="tuning", workspace=Workspace(settings))
    client = TrackingClient(Workspace(settings))
    parent = client.get_run(result.run_id)
    assert parent.status == "finished" and parent.name == result.name
    assert parent.experiment_id == client.get_experiment("tuning").experiment_id
    assert parent.tags["ratchet.tuning.study"] == result.name
    assert parent.params == {
        "n_trials": "12", "direction": "maximize", "metric": "objective",
        "sampler": "TPESampler", "pruner": "NopPruner",
        "space.x": "float[-10, 10]", "space.y": "float[-10, 10]"}
    assert parent.metrics["n_trials"] == 12 and parent.metrics["n_trials_complete"] == 12
    assert parent.metrics["objective"] == result.best_value

    runs = children(settings, result.run_id)
    assert sorted(r.name for r in runs) == sorted(f"trial-{n}" for n in range(12))
    frame = result.trials.set_index("run_id")
    for run in runs:
        assert run.status == "finished" and run.tags[STATE] == "complete"
        assert run.experiment_id == parent.experiment_id
        assert run.params["seen_x"] == run.params["x"]  # logged by the objective itself
        assert run.params["pid"] == str(os.getpid())
        assert run.metrics["objective"] == frame.loc[run.run_id, "value"]
        assert run.metrics["distance"] >= 0
        assert run.tags["ratchet.tuning.trial"] == str(frame.loc[run.run_id, "number"])
    assert result.best_run_id in {r.run_id for r in runs}
    assert client.get_run(result.best_run_id).metrics["objective"] == result.best_value


def test_study_run_nests_under_the_active_run(sqlite_settings: Settings) -> None:
    client = TrackingClient(Workspace(sqlite_settings))
    with client.start_run(experiment="outer") as outer:
        result = tune(quadratic, SPACE, n_trials=2, workspace=client.workspace, storage=None)
        assert client.active_run_id() == outer.id
    study_run = client.get_run(result.run_id)
    assert study_run.parent_run_id == outer.id
    assert study_run.experiment_id == outer.experiment_id


def test_fluent_default_store(workspace_on: Path) -> None:
    # No settings: the store of the working directory, as ratchet.start_run uses.
    result = tune(logging_quadratic, SPACE, n_trials=3, seed=0, parallel=2)
    run = ratchet.get_run(result.best_run_id)
    assert run.params["seen_x"] == run.params["x"] and run.status == "finished"


def test_failing_trials_are_failed_runs_and_the_study_goes_on(sqlite_settings: Settings
                                                             ) -> None:
    def flaky(kind: str, x: float) -> float:
        if kind == "boom":
            raise ValueError(f"bad setting x={x}")
        return x

    result = tune(flaky, {"kind": ["ok", "boom"], "x": ("float", 0, 1)}, n_trials=12,
                  seed=1, parallel=3, workspace=Workspace(sqlite_settings), storage=None)
    runs = children(sqlite_settings, result.run_id)
    failed = [r for r in runs if r.status == "failed"]
    finished = [r for r in runs if r.status == "finished"]
    assert failed and finished and len(failed) + len(finished) == 12
    for run in failed:
        assert run.params["kind"] == "boom" and run.tags[STATE] == "fail"
        assert run.error is not None and "ValueError: bad setting x=" in run.error
        assert "in flaky" in run.error  # the user's own frames
    assert (result.trials["state"] == "FAIL").sum() == len(failed)
    assert result.best_params["kind"] == "ok"
    parent = TrackingClient(Workspace(sqlite_settings)).get_run(result.run_id)
    assert parent.status == "finished" and parent.metrics["n_trials_failed"] == len(failed)


def test_all_trials_failing_raises_with_the_first_traceback(sqlite_settings: Settings) -> None:
    def broken(x: float) -> float:
        raise RuntimeError("cannot train")

    with pytest.raises(StepFailed, match="all 3 trials of study 'broken-study' failed") as info:
        tune(broken, {"x": ("float", 0, 1)}, n_trials=3, name="broken-study",
             experiment="broken", workspace=Workspace(sqlite_settings), storage=None)
    assert "RuntimeError: cannot train" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.step.startswith("broken-study/trial-")
    client = TrackingClient(Workspace(sqlite_settings))
    runs, _ = client.search_runs(experiments=["broken"])
    statuses = {r.name: r.status for r in runs}
    assert statuses == {"broken-study": "failed", "trial-0": "failed", "trial-1": "failed",
                        "trial-2": "failed"}


def test_keyboard_interrupt_is_never_swallowed(sqlite_settings: Settings,
                                               tmp_path: Path) -> None:
    def interrupted(x: float) -> float:
        raise KeyboardInterrupt

    journal = tmp_path / "studies.log"
    with pytest.raises(KeyboardInterrupt):
        tune(interrupted, {"x": ("float", 0, 1)}, n_trials=4, parallel=1, name="ctrl-c",
             experiment="ki", storage=journal, workspace=Workspace(sqlite_settings))
    runs, _ = TrackingClient(Workspace(sqlite_settings)).search_runs(experiments=["ki"])
    assert {r.name: r.status for r in runs} == {"ctrl-c": "killed", "trial-0": "killed"}
    # Nothing is left 'running' in the study either.
    study = optuna.load_study(study_name="ctrl-c", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]


def test_median_pruner_prunes_poor_trials(sqlite_settings: Settings) -> None:
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    result = tune(curve, {"quality": ("float", 0.0, 1.0)}, n_trials=20, seed=0, parallel=1,
                  pruner=pruner, workspace=Workspace(sqlite_settings), storage=None)
    client = TrackingClient(Workspace(sqlite_settings))
    runs = children(sqlite_settings, result.run_id)
    pruned = [r for r in runs if r.tags[STATE] == "pruned"]
    complete = [r for r in runs if r.tags[STATE] == "complete"]
    assert pruned and complete and len(pruned) + len(complete) == 20
    for run in pruned:
        assert run.status == "killed" and run.error is None
        history = client.metric_history(run.run_id, "objective")
        assert 1 <= len(history) < 10  # stopped before the last step
        assert [m.step for m in history] == list(range(len(history)))
    for run in complete:
        history = client.metric_history(run.run_id, "objective")
        assert [m.step for m in history] == list(range(10))  # the result is not logged twice
        assert history[-1].value == pytest.approx(float(run.params["quality"]))
    assert (result.trials["state"] == "PRUNED").sum() == len(pruned)
    assert result.best_params["quality"] == max(float(r.params["quality"]) for r in complete)


def test_report_outside_a_trial_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="inside an objective run by"):
        report(0.5, 1)


def test_report_under_another_key_only_logs(sqlite_settings: Settings) -> None:
    def objective(x: float) -> float:
        for step in range(3):
            report(x * step, step, key="loss")
        return x

    pruner = optuna.pruners.ThresholdPruner(lower=10.0)  # would prune any reported value
    result = tune(objective, {"x": ("float", 0, 1)}, n_trials=3, pruner=pruner,
                  workspace=Workspace(sqlite_settings), storage=None)
    assert (result.trials["state"] == "COMPLETE").all()
    history = TrackingClient(Workspace(sqlite_settings)).metric_history(result.best_run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]


def test_dict_objective_with_metric(sqlite_settings: Settings) -> None:
    def scores(x: float) -> dict[str, Any]:
        return {"acc": x, "loss": np.float32(1 - x)}  # numpy numbers are fine

    result = tune(scores, {"x": ("float", 0, 1)}, n_trials=6, metric="acc", seed=0,
                  workspace=Workspace(sqlite_settings), storage=None)
    best = TrackingClient(Workspace(sqlite_settings)).get_run(result.best_run_id)
    assert best.metrics["acc"] == result.best_value == result.trials["value"].max()
    assert best.metrics["loss"] == pytest.approx(1 - result.best_value)

    with pytest.raises(StepFailed, match="pass metric= to tune"):
        tune(scores, {"x": ("float", 0, 1)}, n_trials=2, workspace=Workspace(sqlite_settings),
             storage=None)
    with pytest.raises(StepFailed, match="without metric='f1'"):
        tune(scores, {"x": ("float", 0, 1)}, n_trials=2, metric="f1",
             workspace=Workspace(sqlite_settings), storage=None)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"direction": "up"}, "direction must be 'maximize' or 'minimize'"),
    ({"n_trials": -1}, "n_trials must be an integer >= 0"),
    ({"parallel": 0}, "parallel must be an integer >= 1"),
    ({"seed": 1, "sampler": optuna.samplers.RandomSampler()}, "pass seed= or sampler="),
    ({"timeout": 0}, "timeout must be a number of seconds > 0"),
    ({"storage": "sqlite:///optuna.db"}, "locks under parallel trials"),
    ({"storage": 42}, "storage must be 'auto', None"),
    ({"executor": "gpu-farm"}, "unknown executor"),
])
def test_bad_arguments(sqlite_settings: Settings, kwargs: dict[str, Any], message: str
                       ) -> None:
    with pytest.raises(InvalidInput, match=message):
        tune(quadratic, SPACE, workspace=Workspace(sqlite_settings), **kwargs)


def test_bad_space_and_objective_fail_before_any_trial(sqlite_settings: Settings) -> None:
    with pytest.raises(InvalidInput, match=r"space\['y'\]: low \(1\) is above high \(0\)"):
        tune(quadratic, {"x": ("float", 0, 1), "y": ("int", 1, 0)}, workspace=Workspace(sqlite_settings))
    with pytest.raises(InvalidInput, match="cannot be called with the space's parameters"):
        tune(quadratic, {"x": ("float", 0, 1), "z": ("float", 0, 1)},
             workspace=Workspace(sqlite_settings))
    for bad in ({"sampler": "tpe"}, {"pruner": "median"}, {"resources": {"cpus": 2}}):
        with pytest.raises(InvalidInput, match=f"{next(iter(bad))}= must be a"):
            tune(quadratic, SPACE, workspace=Workspace(sqlite_settings), **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="objective must be a function"):
        tune(42, SPACE, workspace=Workspace(sqlite_settings))  # type: ignore[arg-type]
    assert TrackingClient(Workspace(sqlite_settings)).search_runs()[0] == []


def test_resuming_with_another_direction_or_space_is_refused(sqlite_settings: Settings
                                                             ) -> None:
    tune(quadratic, SPACE, n_trials=1, name="fixed", workspace=Workspace(sqlite_settings))
    with pytest.raises(Conflict, match="direction"):
        tune(quadratic, SPACE, n_trials=1, name="fixed", direction="minimize",
             workspace=Workspace(sqlite_settings))
    with pytest.raises(Conflict, match="another space"):
        tune(quadratic, {**SPACE, "x": ("float", 0, 1)}, n_trials=1, name="fixed",
             workspace=Workspace(sqlite_settings))
    with pytest.raises(Conflict, match="metric='objective'"):
        tune(quadratic, SPACE, n_trials=1, name="fixed", metric="score",
             workspace=Workspace(sqlite_settings))
    with pytest.raises(Conflict, match="another space"):  # beyond six significant digits
        tune(quadratic, {**SPACE, "x": ("float", -10, 10.0000001)}, n_trials=1,
             name="fixed", workspace=Workspace(sqlite_settings))


class RecordingExecutor(Executor):
    """A local executor that remembers what each task asked for."""

    name = "recording"

    def __init__(self) -> None:
        self.inner = LocalExecutor(2)
        self.requests: list[tuple[Resources, float | None]] = []
        self.closed = False

    @property
    def parallelism(self) -> int:
        return 2

    def submit(self, task: Callable[[], Any], *, resources: Resources = Resources(),
               timeout: float | None = None, name: str = "task") -> Future[Any]:
        self.requests.append((resources, timeout))
        return self.inner.submit(task, resources=resources, timeout=timeout, name=name)

    def shutdown(self) -> None:
        self.closed = True
        self.inner.shutdown()


def test_a_step_objective_brings_its_resources_and_timeout(sqlite_settings: Settings) -> None:
    from ratchet.pipelines import step

    @step(cache=False, cpus=2, gpus=1, timeout=600)
    def train(x: float, y: float) -> float:
        return quadratic(x, y)

    executor = RecordingExecutor()
    result = tune(train, SPACE, n_trials=3, executor=executor, workspace=Workspace(sqlite_settings),
                  storage=None)
    assert len(result.trials) == 3 and (result.trials["state"] == "COMPLETE").all()
    assert executor.requests == [(Resources(cpus=2, gpus=1), 600)] * 3
    assert not executor.closed  # the caller's executor is the caller's to shut down
    executor.shutdown()


def test_trial_timeout_fails_the_trial(sqlite_settings: Settings) -> None:
    import threading

    release = threading.Event()

    def slow(x: float) -> float:
        if x > 0.5:
            release.wait(30)  # outlives its timeout; released at the end of the test
        return x

    # Ours, so tune() does not wait for the stuck threads; one thread per trial, so no
    # trial queues behind a stuck one.
    executor = LocalExecutor(6)
    try:
        result = tune(slow, {"x": [0.25, 0.75]}, n_trials=6, trial_timeout=1.0, parallel=2,
                      executor=executor, workspace=Workspace(sqlite_settings), storage=None, seed=0)
    finally:
        release.set()
        executor.shutdown()
    runs = children(sqlite_settings, result.run_id)
    timed_out = [r for r in runs if r.params["x"] == "0.75"]
    assert timed_out and all(r.status == "failed" and "StepTimeout" in (r.error or "")
                             and "did not finish within" in (r.error or "")
                             for r in timed_out)
    assert result.best_params == {"x": 0.25}


def test_processes_executor_runs_pickled_trials_that_log_and_prune(
        sqlite_settings: Settings) -> None:
    # Worker processes get Settings, not clients: they open the store and, through the
    # shared journal, the study, so report() prunes there too.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    result = tune(curve, {"quality": ("float", 0.0, 1.0)}, n_trials=10, seed=0,
                  executor="processes:2", parallel=2, pruner=pruner,
                  workspace=Workspace(sqlite_settings))
    client = TrackingClient(Workspace(sqlite_settings))
    runs = children(sqlite_settings, result.run_id)
    assert len(runs) == 10
    assert {r.params["pid"] for r in runs}.isdisjoint({str(os.getpid())})
    assert {r.tags[STATE] for r in runs} == {"complete", "pruned"}
    for run in runs:
        assert client.metric_history(run.run_id, "objective")  # report() logged from there


def test_register_best_registers_the_best_trials_model(workspace_on: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)

    def fit(C: float) -> float:
        model = LogisticRegression(C=C, max_iter=1000).fit(X, y)
        ratchet.log_model(model)
        return float(model.score(X, y))

    result = tune(fit, {"C": ("float", 1e-4, 10.0, {"log": True})}, n_trials=4, seed=0,
                  parallel=2)
    version = result.register_best("iris-tuned")
    assert version.name == "iris-tuned" and version.version == 1
    assert version.run_id == result.best_run_id
    assert version.tags["ratchet.tuning.study"] == result.name
    loaded = ratchet.models.load("models:/iris-tuned/1")
    expected = LogisticRegression(C=result.best_params["C"], max_iter=1000).fit(X, y)
    np.testing.assert_array_equal(loaded.predict(X), expected.predict(X))


def test_register_best_without_a_logged_model(sqlite_settings: Settings) -> None:
    result = tune(quadratic, SPACE, n_trials=2, workspace=Workspace(sqlite_settings), storage=None)
    with pytest.raises(NotFound, match=r"logged no model at 'model': call ratchet.log_model"):
        result.register_best("nothing")


def test_result_before_any_completed_trial(sqlite_settings: Settings) -> None:
    result = tune(quadratic, SPACE, n_trials=0, workspace=Workspace(sqlite_settings), storage=None)
    assert "no completed trial" in repr(result)
    with pytest.raises(NotFound, match="has no completed trial"):
        _ = result.best_params


def test_progress_bar_on_request(sqlite_settings: Settings,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    tune(quadratic, SPACE, n_trials=3, name="shown", progress=True, storage=None,
         workspace=Workspace(sqlite_settings))
    captured = capsys.readouterr()
    assert "shown" in captured.err and "3/3" in captured.err and "best objective=" in captured.err
    assert captured.out == ""
    tune(quadratic, SPACE, n_trials=3, name="hidden", storage=None, workspace=Workspace(sqlite_settings))
    assert capsys.readouterr().err == ""  # not a terminal: no bar by default


def test_timeout_stops_starting_trials(sqlite_settings: Settings) -> None:
    import time

    def slow(x: float) -> float:
        time.sleep(0.2)
        return x

    result = tune(slow, {"x": ("float", 0, 1)}, n_trials=1000, timeout=0.3, parallel=1,
                  workspace=Workspace(sqlite_settings), storage=None)
    assert 1 <= len(result.trials) < 1000
    assert (result.trials["state"] == "COMPLETE").all()  # started trials were let finish


def test_submodules_do_not_shadow_public_names() -> None:
    import importlib
    import pkgutil

    import ratchet.tuning

    for info in pkgutil.iter_modules(ratchet.tuning.__path__):
        importlib.import_module(f"ratchet.tuning.{info.name}")
    for name in ratchet.tuning.__all__:
        assert not isinstance(getattr(ratchet.tuning, name), type(ratchet)), name
