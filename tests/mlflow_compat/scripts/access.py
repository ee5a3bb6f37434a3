"""What the real MLflow client does with a token the server refuses or that may only read.

Usage: python access.py EXPERIMENT_NAME   (MLFLOW_TRACKING_TOKEN is set by the caller)
Reads (search, get by name) and writes (create an experiment, start a run) are each
tried once; what each returned or raised is reported.
"""

from __future__ import annotations

import sys
from typing import Any

from _report import describe, emit, step
from mlflow import MlflowClient

experiment = sys.argv[1]
client = MlflowClient()


def attempt(function: Any) -> dict[str, Any]:
    try:
        return {"ok": True, "value": function()}
    except Exception as exc:  # reported to the test
        return {"ok": False, "error": describe(exc)}


@step("read")
def _() -> Any:
    def read() -> Any:
        found = client.get_experiment_by_name(experiment)
        return None if found is None else found.experiment_id

    return attempt(read)


@step("create_experiment")
def _() -> Any:
    return attempt(lambda: client.create_experiment(f"{experiment}-by-reader"))


@step("create_run")
def _() -> Any:
    def create() -> Any:
        found = client.get_experiment_by_name(experiment)
        return client.create_run(found.experiment_id).info.run_id

    return attempt(create)


emit()
