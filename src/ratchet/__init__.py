"""ratchet: the continuous-training loop in one package.

    import ratchet
    with ratchet.start_run(experiment="churn") as run:
        ratchet.log_params({"C": 1.0})
        ratchet.log_metric("auc", 0.91, step=3)
        mv = ratchet.log_model(model, name="churn", input_example=X.head())
    ratchet.models.set_alias("churn", "champion", version=mv.version)
    model = ratchet.models.load("models:/churn@champion")

Everything here is imported lazily so that ``import ratchet`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ratchet import errors

__version__ = "0.1.0"

_LAZY = {
    "start_run": "ratchet.tracking.fluent",
    "end_run": "ratchet.tracking.fluent",
    "active_run_id": "ratchet.tracking.fluent",
    "log_param": "ratchet.tracking.fluent",
    "log_params": "ratchet.tracking.fluent",
    "log_metric": "ratchet.tracking.fluent",
    "log_metrics": "ratchet.tracking.fluent",
    "log_batch": "ratchet.tracking.fluent",
    "set_tag": "ratchet.tracking.fluent",
    "set_tags": "ratchet.tracking.fluent",
    "log_artifact": "ratchet.tracking.fluent",
    "log_artifacts": "ratchet.tracking.fluent",
    "log_input": "ratchet.tracking.fluent",
    "get_run": "ratchet.tracking.fluent",
    "search_runs": "ratchet.tracking.fluent",
    "log_model": "ratchet.registry.fluent",
    "delete_run": "ratchet.tracking.deletion",
    "restore_run": "ratchet.tracking.deletion",
    "delete_experiment": "ratchet.tracking.deletion",
    "restore_experiment": "ratchet.tracking.deletion",
    "gc": "ratchet.tracking.gc",
    "autolog": "ratchet.autolog",
    "TrackingClient": "ratchet.tracking.client",
    "Workspace": "ratchet.workspace",
    "RegistryClient": "ratchet.registry.client",
    "step": "ratchet.pipelines",
    "pipeline": "ratchet.pipelines",
    "register_materializer": "ratchet.pipelines",
    "schedule": "ratchet.pipelines",
    "tune": "ratchet.tuning",
}
_SUBMODULES = {"ct", "data", "features", "models", "monitoring", "pipelines", "serving", "tuning",
               "workspace"}

__all__ = [
    "RegistryClient",
    "TrackingClient",
    "Workspace",
    "__version__",
    "active_run_id",
    "autolog",
    "ct",
    "data",
    "delete_experiment",
    "delete_run",
    "end_run",
    "errors",
    "gc",
    "get_run",
    "log_artifact",
    "log_artifacts",
    "log_batch",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "models",
    "monitoring",
    "pipeline",
    "pipelines",
    "register_materializer",
    "restore_experiment",
    "restore_run",
    "schedule",
    "search_runs",
    "serving",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "tune",
    "tuning",
    "workspace",
]

if TYPE_CHECKING:
    from ratchet import ct, data, models, monitoring, pipelines, serving, tuning, workspace
    from ratchet.autolog import autolog
    from ratchet.pipelines import pipeline, register_materializer, schedule, step
    from ratchet.registry.client import RegistryClient
    from ratchet.registry.fluent import log_model
    from ratchet.tracking.client import TrackingClient
    from ratchet.tracking.deletion import (
        delete_experiment,
        delete_run,
        restore_experiment,
        restore_run,
    )
    from ratchet.tracking.fluent import (
        active_run_id,
        end_run,
        get_run,
        log_artifact,
        log_artifacts,
        log_batch,
        log_input,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        search_runs,
        set_tag,
        set_tags,
        start_run,
    )
    from ratchet.tracking.gc import gc
    from ratchet.tuning import tune
    from ratchet.workspace import Workspace


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"ratchet.{name}")
        globals()[name] = module
        return module
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'ratchet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
