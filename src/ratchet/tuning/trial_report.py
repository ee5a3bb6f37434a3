"""``ratchet.tuning.report``: intermediate values from inside an objective, for pruning.

The trial being run is held in a ContextVar set by the trial task, so ``report`` needs no
handle: it logs the value as a metric of the trial's run, hands it to Optuna's pruner and
raises ``optuna.TrialPruned`` when the pruner says to stop.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from typing import TYPE_CHECKING

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    import optuna

    from ratchet.tracking.client import TrackingClient


class TrialReporter:
    """What ``report`` needs about the running trial."""

    def __init__(self, client: TrackingClient, run_id: str, trial: optuna.Trial | None,
                 key: str) -> None:
        self.client = client
        self.run_id = run_id
        self.trial = trial  # None: the study is not reachable here, values are only logged
        self.key = key
        self.last: tuple[int, float] | None = None  # (step, value) last reported for key

    def report(self, value: float, step: int, key: str | None) -> None:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidInput(f"report(step=) must be an integer >= 0, got {step!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"report() needs a number, got {value!r}") from None
        key = key or self.key
        self.client.log_metric(self.run_id, key, value, step)
        if key != self.key:
            return  # only the optimised metric feeds the pruner
        self.last = (step, value)
        if self.trial is None or math.isnan(value):
            return
        self.trial.report(value, step)
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"trial {self.trial.number} pruned at step {step} "
                                     f"({key}={value:g})")


_current: ContextVar[TrialReporter | None] = ContextVar("ratchet_tuning_trial", default=None)


def current_reporter() -> TrialReporter | None:
    return _current.get()


def set_reporter(reporter: TrialReporter) -> None:
    _current.set(reporter)


def report(value: float, step: int, *, key: str | None = None) -> None:
    """Log an intermediate ``value`` of the objective at ``step`` (an epoch, a boosting
    round) and stop the trial if the study's pruner says it is not promising.

    The value is logged as a metric of the trial's run. Under the metric being optimised
    (the default ``key``) it also goes to the pruner, and ``optuna.TrialPruned`` is raised
    when the pruner decides to prune; let it propagate. With any other ``key`` the value is
    only logged.
    """
    reporter = _current.get()
    if reporter is None:
        raise InvalidInput("ratchet.tuning.report() works inside an objective run by "
                           "ratchet.tuning.tune(); use ratchet.log_metric() elsewhere")
    reporter.report(value, step, key)
