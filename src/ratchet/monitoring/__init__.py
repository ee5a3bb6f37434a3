"""``ratchet.monitoring``: drift, data quality and performance of a served model.

    report = ratchet.monitoring.dataset_drift(reference_df, current_df)
    report.drift, report.drifted_columns, report.to_dict()

Heavy modules (NumPy, SciPy, scikit-learn, pandas) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ratchet.monitoring.multivariate_drift import ClassifierDrift, classifier_drift
    from ratchet.monitoring.drift import (
        ColumnDrift,
        DatasetDrift,
        DriftTest,
        choose_test,
        column_drift,
        dataset_drift,
    )

_LAZY = {
    "ClassifierDrift": "ratchet.monitoring.multivariate_drift",
    "classifier_drift": "ratchet.monitoring.multivariate_drift",
    "ColumnDrift": "ratchet.monitoring.drift",
    "DatasetDrift": "ratchet.monitoring.drift",
    "DriftTest": "ratchet.monitoring.drift",
    "choose_test": "ratchet.monitoring.drift",
    "column_drift": "ratchet.monitoring.drift",
    "dataset_drift": "ratchet.monitoring.drift",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ratchet.monitoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ClassifierDrift",
    "ColumnDrift",
    "DatasetDrift",
    "DriftTest",
    "choose_test",
    "classifier_drift",
    "column_drift",
    "dataset_drift",
]
