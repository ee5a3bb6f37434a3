"""Drift tests: each statistic against SciPy or a hand computation, the default choice of
test, verdicts on same and shifted data, and the dataset and multivariate verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ratchet.errors import InvalidInput
from ratchet.monitoring import DriftTest, classifier_drift, column_drift, dataset_drift
from ratchet.monitoring.drift import (
    CATEGORICAL,
    CHISQUARE,
    JENSENSHANNON,
    KS,
    NUMERIC,
    PSI,
    SMALL_SAMPLE,
    WASSERSTEIN,
    binned_counts,
    category_counts,
    choose_test,
    numeric_bins,
    wasserstein_normalized,
)

RNG = np.random.default_rng(42)


def normal(n: int, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return RNG.normal(loc, scale, n)


def categories(n: int, p: tuple[float, ...] = (0.5, 0.3, 0.2)) -> pd.Series:
    return pd.Series(RNG.choice(["a", "b", "c"][: len(p)], n, p=p))


@pytest.mark.parametrize("kind, n, test", [
    (NUMERIC, SMALL_SAMPLE, KS), (NUMERIC, SMALL_SAMPLE + 1, WASSERSTEIN),
    (CATEGORICAL, 10, CHISQUARE), (CATEGORICAL, 50_000, JENSENSHANNON)])
def test_default_test_follows_kind_and_sample_size(kind: str, n: int, test: str) -> None:
    assert choose_test(kind, n).test == test


def test_wasserstein_is_exact_for_equal_sizes_and_close_otherwise() -> None:
    a, b = normal(5_000), normal(5_000, 0.3, 1.5)
    expected = stats.wasserstein_distance(a, b) / np.std(a)
    assert wasserstein_normalized(a, b) == pytest.approx(expected, rel=1e-9)
    c = RNG.lognormal(0.3, 1.5, 7_919)  # heavy-tailed, another size: still exact
    assert wasserstein_normalized(a, c) == pytest.approx(
        stats.wasserstein_distance(a, c) / np.std(a), rel=1e-9)


def test_ks_matches_scipy() -> None:
    a, b = normal(800), normal(600, 0.2)
    drift = column_drift(a, b)
    assert drift.test == KS
    expected = stats.ks_2samp(a, b)
    assert drift.statistic == pytest.approx(expected.statistic)
    assert drift.p_value == pytest.approx(expected.pvalue)
    assert drift.drifted == (expected.pvalue < 0.05)


def test_numeric_psi_on_reference_quantile_bins() -> None:
    a, b = normal(20_000), normal(20_000, 0.5)
    edges = numeric_bins(a)
    assert len(edges) == 19  # 20 bins of ~5% of the reference each
    ref, cur = binned_counts(a, edges), binned_counts(b, edges)
    assert ref.sum() == len(a) and cur.sum() == len(b)
    # Sorted and unsorted counting agree.
    assert (binned_counts(np.sort(b), edges, sorted_input=True) == cur).all()
    p, q = ref / ref.sum(), cur / cur.sum()
    expected = float(np.sum((q - p) * np.log(q / p)))
    drift = column_drift(a, b, test=PSI)
    assert drift.statistic == pytest.approx(expected, rel=1e-9)
    assert drift.drifted and drift.threshold == 0.2


@pytest.mark.parametrize("test", [KS, PSI, WASSERSTEIN, JENSENSHANNON])
def test_numeric_tests_stay_quiet_on_same_data_and_alarm_on_a_shift(test: str) -> None:
    n = 600 if test == KS else 50_000
    same = column_drift(normal(n), normal(n), test=test)
    shifted = column_drift(normal(n), normal(n, 1.0), test=test)
    assert not same.drifted, same
    assert shifted.drifted, shifted


@pytest.mark.parametrize("test", [CHISQUARE, PSI, JENSENSHANNON])
def test_categorical_tests_stay_quiet_on_same_data_and_alarm_on_a_shift(test: str) -> None:
    n = 800 if test == CHISQUARE else 50_000
    same = column_drift(categories(n), categories(n), test=test)
    shifted = column_drift(categories(n), categories(n, (0.2, 0.3, 0.5)), test=test)
    assert same.kind == CATEGORICAL and not same.drifted, same
    assert shifted.drifted, shifted


def test_chi_square_matches_scipy_on_counts() -> None:
    ref, cur = categories(900), categories(700, (0.4, 0.4, 0.2))
    drift = column_drift(ref, cur)
    rc, cc = category_counts(ref, cur)
    expected = stats.chisquare(cc, rc / rc.sum() * cc.sum())
    assert drift.test == CHISQUARE
    assert drift.statistic == pytest.approx(expected.statistic, rel=1e-3)


def test_categories_new_in_current_are_counted_and_js_is_bounded() -> None:
    ref = pd.Series(["a"] * 5_000 + ["b"] * 5_000)
    cur = pd.Series(["a"] * 5_000 + ["z"] * 5_000)
    rc, cc = category_counts(ref, cur)
    assert rc.tolist() == [5_000, 5_000, 0] and cc.tolist() == [5_000, 0, 5_000]
    drift = column_drift(ref, cur)
    assert drift.test == JENSENSHANNON and drift.drifted and 0 < drift.statistic <= 1
    assert column_drift(ref, ref).statistic == pytest.approx(0, abs=1e-12)


def test_nulls_are_left_out_and_an_empty_side_is_an_error() -> None:
    a = pd.Series([1.0, None, 2.0, 3.0] * 500)
    drift = column_drift(a, a)
    assert drift.n_reference == 1_500 and not drift.drifted
    with pytest.raises(InvalidInput, match="no non-null values on the current side"):
        column_drift(a, pd.Series([None, None], dtype=float), column="x")


def test_bad_overrides_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="test must be one of"):
        column_drift(categories(100), categories(100), test=KS)
    with pytest.raises(InvalidInput, match="threshold must be a positive number"):
        column_drift(normal(100), normal(100), test=DriftTest(PSI, -1))
    frame = pd.DataFrame({"x": normal(50)})
    with pytest.raises(InvalidInput, match="unknown column"):
        dataset_drift(frame, frame, overrides={"y": PSI})
    with pytest.raises(InvalidInput, match="not in both"):
        dataset_drift(frame, frame.rename(columns={"x": "y"}), columns=["x"])
    with pytest.raises(InvalidInput, match="drift_share"):
        dataset_drift(frame, frame, drift_share=0)


def test_dataset_verdict_by_share_with_prediction_and_target_apart() -> None:
    n = 20_000
    ref = pd.DataFrame({"a": normal(n), "b": normal(n), "c": categories(n),
                        "d": normal(n), "prediction": normal(n), "label": categories(n)})
    cur = pd.DataFrame({"a": normal(n, 2), "b": normal(n, 2), "c": categories(n),
                        "d": normal(n), "prediction": normal(n, 1),
                        "label": categories(n, (0.1, 0.1, 0.8))})
    report = dataset_drift(ref, cur, prediction="prediction", target="label",
                           overrides={"d": DriftTest(PSI, 0.5)})
    assert [c.column for c in report.columns] == ["a", "b", "c", "d"]
    assert report.drifted_columns == ["a", "b"] and report.share == 0.5 and report.drift
    assert report.prediction is not None and report.prediction.drifted
    assert report.target is not None and report.target.drifted
    assert next(c for c in report.columns if c.column == "d").test == PSI
    assert not dataset_drift(ref, cur, columns=["a", "b", "c", "d"], drift_share=0.75).drift
    serial = dataset_drift(ref, cur, prediction="prediction", target="label",
                           overrides={"d": DriftTest(PSI, 0.5)}, workers=1)
    assert serial.to_dict() == report.to_dict()


def test_classifier_sees_a_change_the_columns_alone_do_not() -> None:
    """Same N(0, 1) marginals; only the correlation between x and y changes."""
    n = 20_000
    x = normal(n)
    ref = pd.DataFrame({"x": x, "y": normal(n), "plan": categories(n)})
    x2 = normal(n)
    cur = pd.DataFrame({"x": x2, "y": 0.9 * x2 + np.sqrt(1 - 0.81) * normal(n),
                        "plan": categories(n)})
    assert not dataset_drift(ref, cur).drifted_columns
    multivariate = classifier_drift(ref, cur, sample=5_000)
    assert multivariate.drifted and multivariate.auc > 0.6
    quiet = classifier_drift(ref, ref.sample(frac=1, random_state=3), sample=5_000)
    assert not quiet.drifted and quiet.auc < 0.55
    with pytest.raises(InvalidInput, match="threshold"):
        classifier_drift(ref, cur, threshold=0.4)


def test_a_numeric_column_with_a_few_codes_is_tested_as_categories() -> None:
    ref = pd.Series(RNG.choice([1, 2, 3, 4, 5], 20_000, p=[0.4, 0.3, 0.1, 0.1, 0.1]))
    cur = pd.Series(RNG.choice([1, 2, 3, 4, 5], 20_000, p=[0.1, 0.1, 0.1, 0.3, 0.4]))
    drift = column_drift(ref, cur)
    assert (drift.kind, drift.test, drift.drifted) == (CATEGORICAL, JENSENSHANNON, True)
    assert column_drift(ref, cur, test=WASSERSTEIN).kind == NUMERIC  # unless told otherwise
    assert column_drift(normal(5_000), normal(5_000)).kind == NUMERIC


def test_a_distance_at_the_threshold_drifts() -> None:
    ref = pd.Series(["a"] * 10 + ["b"] * 10)
    statistic = column_drift(ref, ref.replace({"b": "a"}), test=JENSENSHANNON).statistic
    at = column_drift(ref, ref.replace({"b": "a"}), test=DriftTest(JENSENSHANNON, statistic))
    assert at.drifted
