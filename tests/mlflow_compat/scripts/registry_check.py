"""After ratchet moved an alias (``ratchet models alias set``): what MLflow's client sees.

Usage: python registry_check.py MODEL_NAME ALIAS ROWS_JSON
Prints the version the alias points at, the model's aliases, and the predictions of the
model loaded by that alias for the given rows.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import mlflow
from _report import emit, step
from mlflow import MlflowClient

name, alias, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = MlflowClient()


@step("alias")
def _() -> Any:
    version = client.get_model_version_by_alias(name, alias)
    return {"version": str(version.version),
            "aliases": dict(client.get_registered_model(name).aliases)}


@step("load")
def _() -> Any:
    import pandas as pd

    loaded = mlflow.pyfunc.load_model(f"models:/{name}@{alias}")
    return [int(v) for v in loaded.predict(pd.DataFrame(rows))]


emit()
