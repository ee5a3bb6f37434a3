"""What the real MLflow client does with a token the server refuses, and with a token that
may only read.

Usage: python access.py EXPERIMENT_NAME WRONG_TOKEN READER_TOKEN
As each token (MLFLOW_TRACKING_TOKEN, read by the client on every request), a read (get
the experiment by name) and two writes (create an experiment, create a run) are each
tried once; what each returned or raised is reported.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from _report import describe, emit, step
from mlflow import MlflowClient

experiment, tokens = sys.argv[1], {"wrong_token": sys.argv[2], "reader": sys.argv[3]}
client = MlflowClient()


def attempt(function: Any) -> dict[str, Any]:
    try:
        return {"ok": True, "value": function()}
    except Exception as exc:  # reported to the test
        return {"ok": False, "error": describe(exc)}


def read() -> Any:
    found = client.get_experiment_by_name(experiment)
    return None if found is None else found.experiment_id


def create_run() -> Any:
    found = client.get_experiment_by_name(experiment)
    return client.create_run(found.experiment_id).info.run_id


def attempts(who: str) -> dict[str, Any]:
    return {"read": attempt(read),
            "create_experiment": attempt(
                lambda: client.create_experiment(f"{experiment}-by-{who}")),
            "create_run": attempt(create_run)}


for who, token in tokens.items():
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    step(who)(lambda who=who: attempts(who))


emit()
