"""``tune``: an Optuna study whose trials are tracked runs, executed by a ratchet executor.

The driver asks Optuna for trials (ask-and-tell), creates each trial's run, and hands the
executor a self-contained task; ``parallel`` trials are in flight at once. A trial that
raises is told to Optuna as failed and its run records the traceback; the study goes on.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ratchet.errors import Conflict, InvalidInput, NotFound, StepFailed
from ratchet.executors.base import DEFAULT_RESOURCES, Executor, Resources
from ratchet.executors.spec import resolve_executor
from ratchet.ids import new_id
from ratchet.tracking.client import DEFAULT_EXPERIMENT, MAX_ERROR_CHARS, TrackingClient
from ratchet.tuning.fluent_binding import fluent_bound_to
from ratchet.tuning.progress import TrialProgress
from ratchet.tuning.result import RUN_ID_ATTR, TuningResult
from ratchet.tuning.search_space import (
    check_objective_accepts,
    describe_space,
    parse_space,
    space_fingerprint,
)
from ratchet.tuning.storage import StudyStorage, resolve_storage
from ratchet.tuning.trial_task import (
    LiveSession,
    TrialOutcome,
    TrialTask,
    register_session,
    unregister_session,
)
from ratchet.workspace import resolve as resolve_workspace

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

    from ratchet.workspace import Workspace

DEFAULT_METRIC = "objective"
STUDY_TAG = "ratchet.tuning.study"
TRIAL_TAG = "ratchet.tuning.trial"
STATE_TAG = "ratchet.tuning.state"
METRIC_ATTR = "ratchet.metric"
SPACE_ATTR = "ratchet.space"
RUN_STATUS = {"complete": "finished", "pruned": "killed", "fail": "failed"}


def tune(
    objective: Callable[..., Any],
    space: Mapping[str, Any],
    n_trials: int = 20,
    *,
    direction: Literal["maximize", "minimize"] = "maximize",
    metric: str | None = None,
    experiment: str | None = None,
    name: str | None = None,
    storage: Any = "auto",
    sampler: optuna.samplers.BaseSampler | None = None,
    seed: int | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    executor: str | Executor | None = None,
    parallel: int | None = None,
    timeout: float | None = None,
    trial_timeout: float | None = None,
    resources: Resources | None = None,
    progress: bool | None = None,
    workspace: Workspace | None = None,
) -> TuningResult:
    """Search ``space`` for the parameters that optimise ``objective``; every trial is a
    child run of one run for the study.

    ``objective(**params)`` returns a number, or a dict of numbers with ``metric`` naming
    the one to optimise; it may be a ratchet ``Step`` (its function and resources are
    used). ``n_trials`` new trials run, ``parallel`` at a time on ``executor``; ``timeout``
    (seconds) stops starting new ones. The same ``name`` on the same ``storage`` resumes
    the study. See docs/tuning.md.
    """
    fn, step_resources, step_timeout = _unwrap_step(objective)
    if not callable(fn):
        raise InvalidInput(f"objective must be a function or a ratchet Step, got "
                           f"{type(objective).__name__}")
    distributions = parse_space(space)
    check_objective_accepts(fn, list(distributions))
    _check_count("n_trials", n_trials, minimum=0)
    if direction not in ("maximize", "minimize"):
        raise InvalidInput(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise InvalidInput(f"metric must be a non-empty string, got {metric!r}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidInput(f"name must be a non-empty string, got {name!r}")
    import optuna

    for label, value, kind in (("sampler", sampler, optuna.samplers.BaseSampler),
                               ("pruner", pruner, optuna.pruners.BasePruner),
                               ("resources", resources, Resources)):
        if value is not None and not isinstance(value, kind):
            raise InvalidInput(f"{label}= must be a {kind.__module__}.{kind.__name__} "
                               f"instance, got {value!r}")
    if sampler is not None and seed is not None:
        raise InvalidInput("pass seed= or sampler=, not both: seed= seeds the default "
                           "TPESampler; seed your own sampler yourself")
    for label, seconds in (("timeout", timeout), ("trial_timeout", trial_timeout)):
        if seconds is not None and (isinstance(seconds, bool)
                                    or not isinstance(seconds, int | float) or seconds <= 0):
            raise InvalidInput(f"{label} must be a number of seconds > 0, got {seconds!r}")
    client = resolve_workspace(workspace).client(TrackingClient)
    study_storage = resolve_storage(storage, client.settings)
    pool = resolve_executor(executor)
    try:
        width = pool.parallelism if parallel is None else parallel
        _check_count("parallel", width, minimum=1)
        with _quiet_optuna(), fluent_bound_to(client) as fluent_client:
            return _StudyDriver(
                fn=fn, distributions=distributions, n_trials=n_trials, direction=direction,
                metric=metric, experiment=experiment,
                name=name or f"{_name_of(fn)}-{new_id()[-8:]}", storage=study_storage,
                sampler=sampler, seed=seed, pruner=pruner, executor=pool, parallel=width,
                timeout=timeout, trial_timeout=trial_timeout or step_timeout,
                resources=resources or step_resources or DEFAULT_RESOURCES,
                progress=progress, tracking=client, fluent_client=fluent_client,
            ).run()
    finally:
        if not isinstance(executor, Executor):
            pool.shutdown()  # ours: we resolved it from a name


@dataclass
class _Pending:
    trial: optuna.Trial
    run_id: str | None = None
    future: Future[TrialOutcome] | None = None


class _StudyDriver:
    def __init__(self, *, fn: Callable[..., Any], distributions: dict[str, BaseDistribution],
                 n_trials: int, direction: str, metric: str | None, experiment: str | None,
                 name: str, storage: StudyStorage, sampler: Any, seed: int | None,
                 pruner: Any, executor: Executor, parallel: int, timeout: float | None,
                 trial_timeout: float | None, resources: Resources, progress: bool | None,
                 tracking: TrackingClient, fluent_client: TrackingClient) -> None:
        import optuna

        self.fn = fn
        self.distributions = distributions
        self.space_text = describe_space(distributions)
        self.space_exact = space_fingerprint(distributions)
        self.n_trials = n_trials
        self.direction = direction
        self.metric = metric or DEFAULT_METRIC
        self.metric_given = metric is not None
        self.experiment = experiment
        self.name = name
        self.storage = storage
        self.sampler = sampler or optuna.samplers.TPESampler(seed=seed)
        self.pruner = pruner or optuna.pruners.NopPruner()
        self.executor = executor
        self.parallel = parallel
        self.timeout = timeout
        self.trial_timeout = trial_timeout
        self.resources = resources
        self.progress = progress
        self.tracking = tracking
        self.session_token = new_id()
        self.session = LiveSession(fluent_client)
        self.best: float | None = None
        self.counts = {"complete": 0, "pruned": 0, "fail": 0}
        self.first_failure: tuple[_Pending, TrialOutcome] | None = None

    # ---------------------------------------------------------------- the study
    def run(self) -> TuningResult:
        import optuna

        from ratchet.tracking import code_version

        study = optuna.create_study(
            storage=self.storage.open(), sampler=self.sampler, pruner=self.pruner,
            study_name=self.name, direction=self.direction, load_if_exists=True)  # type: ignore[arg-type]
        self._check_resumable(study)
        self.code = code_version.capture()  # once: every trial runs the same code
        self.run_id, self.experiment_id = self._study_run(study)
        try:
            self.best = study.best_value if study.best_trials else None
        except ValueError:
            self.best = None
        register_session(self.session_token, self.session)
        in_flight: dict[Future[TrialOutcome], _Pending] = {}
        try:
            with TrialProgress(self.n_trials, self.name, self.progress) as bar:
                self._drive(study, in_flight, bar)
            self._check_not_all_failed()
        except BaseException as exc:
            self._abandon(study, in_flight.values(), exc)
            raise
        finally:
            unregister_session(self.session_token)
        self._close_study_run(study)
        return TuningResult(study, self.run_id, self.metric, self.tracking)

    def _drive(self, study: optuna.Study, in_flight: dict[Future[TrialOutcome], _Pending],
               bar: TrialProgress) -> None:
        deadline = time.monotonic() + self.timeout if self.timeout else None
        launched = 0
        while True:
            while (len(in_flight) < self.parallel and launched < self.n_trials
                   and (deadline is None or time.monotonic() < deadline)):
                pending = _Pending(study.ask(fixed_distributions=self.distributions))
                in_flight[self._launch(study, pending)] = pending
                launched += 1
            if not in_flight:
                return
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for future in done:
                outcome = _outcome_of(future)  # an interrupt leaves it in flight, to abandon
                self._finish(study, in_flight.pop(future), outcome)
                bar.advance(outcome.state, self.best, self.metric)

    def _launch(self, study: optuna.Study, pending: _Pending) -> Future[TrialOutcome]:
        trial = pending.trial
        try:
            run = self.tracking.store.create_run(
                self.experiment_id, name=f"trial-{trial.number}", parent_run_id=self.run_id,
                code=self.code, tags={STUDY_TAG: self.name, TRIAL_TAG: str(trial.number)})
            pending.run_id = run.run_id
            self.tracking.log_params(run.run_id, trial.params)
            trial.set_user_attr(RUN_ID_ATTR, run.run_id)
            self.session.trials[trial.number] = trial
            task = TrialTask(
                objective=self.fn, params=trial.params, run_id=run.run_id,
                trial_id=trial._trial_id, trial_number=trial.number, metric=self.metric,
                metric_given=self.metric_given, settings=self.tracking.settings,
                session=self.session_token, driver_pid=os.getpid(), storage=self.storage,
                study_name=self.name, pruner=self.pruner)
            pending.future = self.executor.submit(
                task, resources=self.resources, timeout=self.trial_timeout,
                name=f"{self.name}/trial-{trial.number}")
            return pending.future
        except BaseException as exc:
            self._abandon(study, [pending], exc)
            raise

    def _finish(self, study: optuna.Study, pending: _Pending, outcome: TrialOutcome) -> None:
        from optuna.trial import TrialState

        trial, run_id = pending.trial, pending.run_id
        assert run_id is not None
        self.session.trials.pop(trial.number, None)
        if outcome.state == "complete":
            study.tell(trial, outcome.value)
            self._note_best(outcome.value)
        else:
            study.tell(trial, state=TrialState.PRUNED if outcome.state == "pruned"
                       else TrialState.FAIL)
        self.counts[outcome.state] += 1
        if outcome.state == "fail" and self.first_failure is None:
            self.first_failure = (pending, outcome)
        self.tracking.set_tag(run_id, STATE_TAG, outcome.state)
        self.tracking.end_run(run_id, RUN_STATUS[outcome.state], error=outcome.error)

    def _note_best(self, value: float | None) -> None:
        if value is None:
            return
        better = (self.best is None or (value > self.best if self.direction == "maximize"
                                        else value < self.best))
        if better:
            self.best = value

    def _check_not_all_failed(self) -> None:
        launched = sum(self.counts.values())
        if not launched or self.counts["fail"] < launched or self.first_failure is None:
            return
        pending, outcome = self.first_failure
        where = f"trial-{pending.trial.number}"
        raise StepFailed(
            f"all {launched} trials of study {self.name!r} failed; the first ({where}, run "
            f"{pending.run_id}) raised:\n{outcome.error}",
            step=f"{self.name}/{where}", run_id=pending.run_id) from outcome.exception

    def _abandon(self, study: optuna.Study, pendings: Any, exc: BaseException) -> None:
        """Interrupted or broken: finish what is in flight so nothing stays 'running'."""
        from optuna.trial import TrialState

        interrupted = isinstance(exc, KeyboardInterrupt | SystemExit)
        reason = type(exc).__name__ if interrupted else _format(exc)
        for pending in list(pendings):
            if pending.future is not None:
                pending.future.cancel()
            with contextlib.suppress(Exception):  # already reporting the real error
                study.tell(pending.trial, state=TrialState.FAIL, skip_if_finished=True)
            if pending.run_id is not None:
                with contextlib.suppress(Exception):
                    self.tracking.end_run(pending.run_id, "killed", error=reason)
        if getattr(self, "run_id", None) is not None:
            with contextlib.suppress(Exception):
                self.tracking.end_run(self.run_id, "killed" if interrupted else "failed",
                                      error=reason)

    # ---------------------------------------------------------------- the study's run
    def _check_resumable(self, study: optuna.Study) -> None:
        from optuna.study import StudyDirection

        if study.directions != [StudyDirection[self.direction.upper()]]:
            raise Conflict(f"study {self.name!r} already exists with direction "
                           f"{[d.name.lower() for d in study.directions]}; pass that "
                           "direction= or choose a new name=")
        attrs = study.user_attrs
        if attrs.get(METRIC_ATTR, self.metric) != self.metric:
            raise Conflict(f"study {self.name!r} optimises {attrs[METRIC_ATTR]!r}, not "
                           f"{self.metric!r}; pass metric={attrs[METRIC_ATTR]!r} or choose a "
                           "new name=")
        recorded = attrs.get(SPACE_ATTR)
        if recorded is not None and recorded != self.space_exact:
            from optuna.distributions import json_to_distribution

            shown = describe_space({k: json_to_distribution(v) for k, v in recorded.items()})
            raise Conflict(f"study {self.name!r} searches {shown}, not {self.space_text}; "
                           "resuming with another space would mix two searches: choose a "
                           "new name=")

    def _study_run(self, study: optuna.Study) -> tuple[str, str]:
        """The study's parent run: resumed if the study has one, else created."""
        run_id = study.user_attrs.get(RUN_ID_ATTR)
        if run_id is not None:
            try:
                run = self.tracking.get_run(run_id)
            except NotFound:  # the study outlived its run (another store, a deleted run)
                run = None
            if run is not None:
                if self.experiment is not None and \
                        self.tracking.get_experiment(self.experiment).experiment_id \
                        != run.experiment_id:
                    raise Conflict(f"study {self.name!r} is tracked in another experiment "
                                   f"(run {run.run_id}); leave experiment= unset to resume it")
                self.tracking.store.set_run_status(run.run_id, "running")
                return run.run_id, run.experiment_id
        parent = self.tracking.active_run_id() or self.session.client.active_run_id()
        experiment = self.experiment
        if experiment is None and parent is not None:
            experiment = self.tracking.get_run(parent).experiment_id
        exp = self.tracking.store.get_or_create_experiment(experiment or DEFAULT_EXPERIMENT)
        run = self.tracking.store.create_run(
            exp.experiment_id, name=self.name, parent_run_id=parent, code=self.code,
            tags={STUDY_TAG: self.name, "ratchet.tuning.storage": self.storage.describe()})
        self.tracking.log_params(run.run_id, {
            "n_trials": self.n_trials, "direction": self.direction, "metric": self.metric,
            "sampler": type(self.sampler).__name__, "pruner": type(self.pruner).__name__,
            **{f"space.{k}": v for k, v in self.space_text.items()}})
        study.set_user_attr(RUN_ID_ATTR, run.run_id)
        study.set_user_attr(METRIC_ATTR, self.metric)
        study.set_user_attr(SPACE_ATTR, self.space_exact)
        return run.run_id, exp.experiment_id

    def _close_study_run(self, study: optuna.Study) -> None:
        from optuna.trial import TrialState

        states = [t.state for t in study.get_trials(deepcopy=False)]
        metrics = {"n_trials": float(len(states)),
                   "n_trials_complete": float(states.count(TrialState.COMPLETE)),
                   "n_trials_pruned": float(states.count(TrialState.PRUNED)),
                   "n_trials_failed": float(states.count(TrialState.FAIL))}
        tags = {}
        if study.best_trials:
            best = study.best_trial
            assert best.value is not None
            metrics[self.metric] = best.value
            tags = {"ratchet.tuning.best_trial": str(best.number),
                    "ratchet.tuning.best_run_id": str(best.user_attrs.get(RUN_ID_ATTR))}
        self.tracking.log_batch(self.run_id, [(k, v, 0, _now()) for k, v in metrics.items()],
                                tags=tags)
        self.tracking.end_run(self.run_id, "finished")


def _outcome_of(future: Future[TrialOutcome]) -> TrialOutcome:
    """The task's outcome; an executor-level error (timeout, lost worker) is a failure.
    ``KeyboardInterrupt`` and ``SystemExit`` propagate."""
    try:
        return future.result()
    except Exception as exc:
        return TrialOutcome("fail", error=_format(exc), exception=exc)


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))[-MAX_ERROR_CHARS:]


def _now() -> int:
    from ratchet.clock import now_ms

    return now_ms()


def _unwrap_step(objective: Any) -> tuple[Any, Resources | None, float | None]:
    """A ratchet ``Step`` contributes its function, resources and timeout."""
    if not hasattr(objective, "options"):  # cheap test first: pipelines is a heavy import
        return objective, None, None
    from ratchet.pipelines import Step

    if isinstance(objective, Step):
        return objective.fn, objective.resources, objective.timeout
    return objective, None, None


def _name_of(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "study" if name == "<lambda>" else name


def _check_count(label: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"{label} must be an integer >= {minimum}, got {value!r}")


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO; ratchet's runs and progress bar already say it."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)
