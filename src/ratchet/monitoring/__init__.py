"""``ratchet.monitoring``: drift, data quality and performance of a served model.

    report = ratchet.monitoring.dataset_drift(reference_df, current_df)
    report.drift, report.drifted_columns, report.to_dict()
    run = ratchet.monitoring.run_monitor("churn", window="1h")   # stored, reported
    estimator = ratchet.monitoring.fit_performance_estimator(holdout_proba, holdout_y, classes)
    estimator.estimate(live_proba)        # calibrated label-free estimate (CBPE)

Heavy modules (NumPy, SciPy, scikit-learn, pandas) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.lazy import lazy_getattr

if TYPE_CHECKING:
    from ratchet.monitoring.data_quality import ColumnQuality, QualityReport, quality_report
    from ratchet.monitoring.drift import (
        ColumnDrift,
        DatasetDrift,
        DriftTest,
        choose_test,
        column_drift,
        dataset_drift,
    )
    from ratchet.monitoring.estimation import (
        CALIBRATION_TAG,
        CBPE,
        DLE,
        estimator_from_dict,
        fit_estimator,
        fit_loss_estimator,
        fit_performance_estimator,
    )
    from ratchet.monitoring.monitor import MonitorRun, list_monitor_results, run_monitor
    from ratchet.monitoring.multivariate_drift import ClassifierDrift, classifier_drift
    from ratchet.monitoring.performance import (
        classification_metrics,
        estimate_classification_performance,
        performance_by_window,
        regression_metrics,
    )
    from ratchet.monitoring.report_html import render_report

_LAZY = {
    "ColumnQuality": "ratchet.monitoring.data_quality",
    "QualityReport": "ratchet.monitoring.data_quality",
    "quality_report": "ratchet.monitoring.data_quality",
    "classification_metrics": "ratchet.monitoring.performance",
    "regression_metrics": "ratchet.monitoring.performance",
    "performance_by_window": "ratchet.monitoring.performance",
    "estimate_classification_performance": "ratchet.monitoring.performance",
    "CALIBRATION_TAG": "ratchet.monitoring.estimation",
    "CBPE": "ratchet.monitoring.estimation",
    "DLE": "ratchet.monitoring.estimation",
    "estimator_from_dict": "ratchet.monitoring.estimation",
    "fit_estimator": "ratchet.monitoring.estimation",
    "fit_loss_estimator": "ratchet.monitoring.estimation",
    "fit_performance_estimator": "ratchet.monitoring.estimation",
    "MonitorRun": "ratchet.monitoring.monitor",
    "run_monitor": "ratchet.monitoring.monitor",
    "list_monitor_results": "ratchet.monitoring.monitor",
    "render_report": "ratchet.monitoring.report_html",
    "ClassifierDrift": "ratchet.monitoring.multivariate_drift",
    "classifier_drift": "ratchet.monitoring.multivariate_drift",
    "ColumnDrift": "ratchet.monitoring.drift",
    "DatasetDrift": "ratchet.monitoring.drift",
    "DriftTest": "ratchet.monitoring.drift",
    "choose_test": "ratchet.monitoring.drift",
    "column_drift": "ratchet.monitoring.drift",
    "dataset_drift": "ratchet.monitoring.drift",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "CALIBRATION_TAG",
    "CBPE",
    "DLE",
    "ClassifierDrift",
    "ColumnDrift",
    "ColumnQuality",
    "DatasetDrift",
    "DriftTest",
    "MonitorRun",
    "QualityReport",
    "choose_test",
    "classification_metrics",
    "classifier_drift",
    "column_drift",
    "dataset_drift",
    "estimate_classification_performance",
    "estimator_from_dict",
    "fit_estimator",
    "fit_loss_estimator",
    "fit_performance_estimator",
    "list_monitor_results",
    "performance_by_window",
    "quality_report",
    "regression_metrics",
    "render_report",
    "run_monitor",
]
