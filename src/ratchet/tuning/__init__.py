"""Hyperparameter tuning with Optuna, tracked: one run per study, a child run per trial.

    result = ratchet.tuning.tune(objective, {"C": ("float", 1e-3, 1e2, {"log": True})},
                                 n_trials=50, direction="maximize", seed=0)
    result.best_params, result.best_value, result.best_run_id
    result.register_best("churn")

``report(value, step)`` inside the objective logs intermediate values and prunes.
"""

from __future__ import annotations

from ratchet.tuning.result import TuningResult
from ratchet.tuning.study import tune
from ratchet.tuning.trial_report import report

__all__ = ["TuningResult", "report", "tune"]
