"""Infinite values (inf, -inf): left out of every drift statistic, counted by data quality,
and a monitor whose reference holds one still judges, stores (strict JSON) and reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ratchet.config import Settings
from ratchet.errors import InvalidInput
from ratchet.monitoring import column_drift, dataset_drift
from ratchet.monitoring.data_quality import quality_report
from ratchet.monitoring.drift import JENSENSHANNON, KS, PSI, WASSERSTEIN
from ratchet.packaging.signature import ColumnSpec, Signature
from ratchet.registry import RegistryClient
from ratchet.workspace import Workspace
from tests.monitoring.test_monitor import _serve, home, registry  # noqa: F401 (fixtures)
from tests.serving.conftest import churn_frame

RNG = np.random.default_rng(3)


def with_infinities(values: np.ndarray, *where: int) -> np.ndarray:
    out = values.copy()
    for i, at in enumerate(where):
        out[at] = np.inf if i % 2 == 0 else -np.inf
    return out


@pytest.mark.parametrize("test", [KS, WASSERSTEIN, PSI, JENSENSHANNON])
def test_infinite_values_are_left_out_of_every_numeric_statistic(test: str) -> None:
    reference, shifted = RNG.normal(size=2_000), RNG.normal(1.0, 1.0, 800)
    spoiled = with_infinities(reference, 3, 10)
    drift = column_drift(spoiled, with_infinities(shifted, 0), test=test)
    clean = column_drift(reference[np.isfinite(spoiled)], shifted[1:], test=test)
    # The same verdict and statistic as without the infinite values, which are counted.
    assert drift.statistic == pytest.approx(clean.statistic)
    assert np.isfinite(drift.statistic) and drift.drifted and clean.drifted
    assert (drift.n_reference, drift.n_current) == (1_998, 799)
    assert (drift.non_finite_reference, drift.non_finite_current) == (2, 1)
    json.dumps(drift.to_dict(), allow_nan=False)          # strict JSON, no ValueError


def test_a_side_with_only_infinite_values_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="no non-null values on the reference side "
                                           r"\(infinite values do not count\)"):
        column_drift(np.array([np.inf, -np.inf, np.nan]), RNG.normal(size=50), column="x")


def test_dataset_drift_with_an_infinite_reference_value_still_sees_the_shift() -> None:
    reference = pd.DataFrame({"a": with_infinities(RNG.normal(size=3_000), 7),
                              "b": RNG.normal(size=3_000)})
    current = pd.DataFrame({"a": RNG.normal(2.0, 1.0, 500), "b": RNG.normal(size=500)})
    drift = dataset_drift(reference, current)
    assert drift.drifted_columns == ["a"]
    json.dumps(drift.to_dict(), allow_nan=False)


def test_data_quality_counts_infinite_values_as_an_issue_not_as_out_of_range() -> None:
    signature = Signature(inputs=(ColumnSpec("x", "float64", min=0.0, max=10.0),
                                  ColumnSpec("n", "int64"), ColumnSpec("s", "string")))
    current = pd.DataFrame({"x": [1.0, np.inf, -np.inf, 20.0, np.nan],
                            "n": pd.Series([1, "inf", 2, 3, 4], dtype=object),
                            "s": ["a", "b", "c", "d", "e"]})
    reference = pd.DataFrame({"x": [1.0, np.inf, 2.0, 3.0, 4.0], "n": [1, 2, 3, 4, 5],
                              "s": ["a"] * 5})
    report = quality_report(current, signature, reference)
    x, n, s = report.column("x"), report.column("n"), report.column("s")
    assert (x.non_finite, x.out_of_range, x.reference_non_finite) == (2, 1, 1)
    # "inf" as text is not a number (the column contract; serving rejects it too).
    assert (n.non_finite, n.type_violations, n.reference_non_finite) == (0, 1, 0)
    assert s.non_finite is None and s.reference_non_finite is None and s.issues == ()
    assert "2 infinite values (40.0%), left out of the drift tests" in x.issues
    assert "the reference has 1 infinite value, left out of the drift tests" in x.issues
    assert len(x.issues) == 4 and report.issues == 5  # x: null, range, inf, ref inf; n: inf
    # Without a signature, numeric columns are still checked.
    plain = quality_report(current[["x"]])
    assert plain.column("x").non_finite == 2 and plain.issues == 1
    json.dumps(report.to_dict(), allow_nan=False)


def test_a_monitor_whose_reference_holds_infinity_stores_and_reports(
        home: Settings, registry: RegistryClient, tmp_path: Path) -> None:  # noqa: F811
    from ratchet.monitoring.monitor import run_monitor
    from ratchet.monitoring.report_html import plotly_js_name

    reference, labels = churn_frame(3_000, seed=5)
    reference["income"] = reference["income"].astype(float)
    reference.loc[[4, 9], "income"] = [np.inf, -np.inf]
    rows, row_labels = churn_frame(300, seed=6)
    rows = rows.assign(income=rows["income"] + 30)     # a clear shift in income
    _serve(home, rows, row_labels)
    reports = tmp_path / "reports"
    run = run_monitor("churn", window="1h", workspace=Workspace(home),
                      reference=reference.assign(label=labels), report_dir=reports)
    drift = {c["column"]: c for c in run.result["drift"]["columns"]}
    assert drift["income"]["drifted"] and drift["income"]["non_finite_reference"] == 2
    assert np.isfinite(drift["income"]["statistic"])
    quality = {c["column"]: c for c in run.result["quality"]["columns"]}
    assert quality["income"]["reference_non_finite"] == 2
    edges = run.result["distributions"]["income"]["edges"]
    assert all(np.isfinite(edges))
    stored = registry.tracking.workspace.stores.monitor.history("churn")
    assert len(stored) == 1 and stored[0].result["drift"]["columns"] == \
        run.result["drift"]["columns"]
    # The report references the folder's one copy of plotly.js.
    again = run_monitor("churn", window="1h", workspace=Workspace(home),
                        reference=reference.assign(label=labels), report_dir=reports)
    assert again.report_html is not None and run.report_html is not None
    assert sorted(p.name for p in reports.glob("*.js")) == [plotly_js_name()]
    assert len(list(reports.glob("*.html"))) == 2
    assert run.report_html.stat().st_size < 300_000
