"""One trial as the task an executor runs: a zero-argument callable that cloudpickle can ship.

It carries plain data only (the objective, the parameters, the trial's run id, the driver's
``Settings`` and where the study lives), never live clients or connections. In the
driver's process it finds the driver's live objects through a session token; anywhere
else it opens its own tracking client (cached per process) and, when the study's storage
is shared, reopens the study so that ``report`` can prune.

The objective runs in a fresh ``contextvars.Context`` with the trial's run as the active
run, so ``ratchet.log_metric`` / ``ratchet.log_model`` in it go to the trial's run, and
pool threads never see each other's runs.
"""

from __future__ import annotations

import contextvars
import math
import os
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import TYPE_CHECKING, Any, Literal

from ratchet.errors import InvalidInput
from ratchet.tracking.client import MAX_ERROR_CHARS, TrackingClient
from ratchet.tuning.fluent_binding import fluent_bound_to
from ratchet.tuning.storage import StudyStorage
from ratchet.tuning.trial_report import TrialReporter, set_reporter
from ratchet.workspace import Workspace

if TYPE_CHECKING:
    import optuna

    from ratchet.config import Settings

TrialState = Literal["complete", "pruned", "fail"]


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial task returns: small, picklable."""

    state: TrialState
    values: dict[str, float] = field(default_factory=dict)  # everything the objective returned
    value: float | None = None  # the optimised metric
    error: str | None = None
    exception: BaseException | None = None  # only when run in the driver's process


@dataclass
class LiveSession:
    """The driver's objects, reachable by tasks running in the driver's process."""

    client: TrackingClient  # the client the fluent API uses during the study
    trials: dict[int, optuna.Trial] = field(default_factory=dict)


_sessions: dict[str, LiveSession] = {}
_remote_clients: dict[Settings, TrackingClient] = {}
_remote_studies: dict[tuple[StudyStorage, str], optuna.Study] = {}
_remote_lock = threading.Lock()


def register_session(token: str, session: LiveSession) -> None:
    _sessions[token] = session


def unregister_session(token: str) -> None:
    _sessions.pop(token, None)


class TrialTask:
    def __init__(self, *, objective: Callable[..., Any], params: Mapping[str, Any],
                 run_id: str, trial_id: int, trial_number: int, metric: str,
                 metric_given: bool, settings: Settings, session: str, driver_pid: int,
                 storage: StudyStorage, study_name: str, pruner: Any) -> None:
        self.objective = objective
        self.params = dict(params)
        self.run_id = run_id
        self.trial_id = trial_id
        self.trial_number = trial_number
        self.metric = metric
        self.metric_given = metric_given
        self.settings = settings
        self.session = session
        self.driver_pid = driver_pid
        self.storage = storage
        self.study_name = study_name
        self.pruner = pruner

    def __call__(self) -> TrialOutcome:
        live = _sessions.get(self.session) if os.getpid() == self.driver_pid else None
        if live is not None:
            trial = live.trials.get(self.trial_number)
            return contextvars.Context().run(self._run, live.client, trial, True)
        client = _remote_client(self.settings)
        with fluent_bound_to(client) as bound:
            return contextvars.Context().run(self._run, bound, self._remote_trial(), False)

    def _run(self, client: TrackingClient, trial: optuna.Trial | None,
             local: bool) -> TrialOutcome:
        with client.activate(self.run_id):
            return self._call_objective(client, trial, local)

    def _call_objective(self, client: TrackingClient, trial: optuna.Trial | None,
                        local: bool) -> TrialOutcome:
        import optuna

        reporter = TrialReporter(client, self.run_id, trial, self.metric)
        set_reporter(reporter)
        try:
            result = self.objective(**self.params)
            values, value = self._values(result)
        except optuna.TrialPruned:
            return TrialOutcome("pruned", value=reporter.last[1] if reporter.last else None)
        except Exception as exc:  # the user's error is recorded; the study goes on
            text = "".join(traceback.format_exception(exc))[-MAX_ERROR_CHARS:]
            return TrialOutcome("fail", error=text, exception=exc if local else None)
        step = reporter.last[0] if reporter.last else 0
        # The objective's result lands at the last reported step, once.
        points = {k: v for k, v in values.items()
                  if not (k == self.metric and reporter.last == (step, v))}
        if points:
            client.log_metrics(self.run_id, points, step=step)
        return TrialOutcome("complete", values, value)

    def _values(self, result: Any) -> tuple[dict[str, float], float]:
        if isinstance(result, Mapping):
            values = {str(k): _number(v, f"objective result[{k!r}]") for k, v in result.items()}
            if not values:
                raise InvalidInput("the objective returned an empty dict")
            if self.metric_given:
                if self.metric not in values:
                    raise InvalidInput(f"the objective returned {sorted(values)}, without "
                                       f"metric={self.metric!r} that the study optimises")
                key = self.metric
            elif len(values) == 1:
                key = next(iter(values))
            else:
                raise InvalidInput(f"the objective returned several values {sorted(values)}: "
                                   "pass metric= to tune() to say which one to optimise")
        else:
            key = self.metric
            values = {key: _number(result, "objective result")}
        value = values[key]
        if math.isnan(value):
            raise InvalidInput(f"the objective returned NaN for {key!r}")
        return values, value

    def _remote_trial(self) -> optuna.Trial | None:
        """The trial, reopened from shared storage; None if the study is out of reach."""
        if not self.storage.shared:
            return None
        import optuna

        key = (self.storage, self.study_name)
        with _remote_lock:
            study = _remote_studies.get(key) if self.storage.kind != "custom" else None
            if study is None:
                try:
                    storage = self.storage.open()
                    assert storage is not None
                    study = optuna.load_study(study_name=self.study_name, storage=storage,
                                              pruner=self.pruner)
                except KeyError:  # e.g. a journal path that is not shared with this node
                    return None
                if self.storage.kind != "custom":
                    _remote_studies[key] = study
            study.pruner = self.pruner  # a cached study may come from a call with another
        return optuna.Trial(study, self.trial_id)


def _number(value: Any, what: str) -> float:
    # numpy and torch scalars are not always ``Real`` but convert cleanly
    if isinstance(value, bool) or not (isinstance(value, Real) or hasattr(value, "__float__")):
        raise InvalidInput(f"{what} must be a number, got {type(value).__name__} ({value!r})")
    return float(value)


def _remote_client(settings: Settings) -> TrackingClient:
    with _remote_lock:
        found = _remote_clients.get(settings)
        if found is None:
            found = _remote_clients[settings] = Workspace(settings).client(TrackingClient)
        return found
