"""Drift tests: pure, vectorized functions over columns (NumPy/SciPy, no per-row Python).

Numeric columns: Kolmogorov-Smirnov (p-value), Population Stability Index, Wasserstein
distance normalized by the reference's standard deviation, Jensen-Shannon distance on
values binned at the reference's quantiles. Categorical columns: chi-square (p-value), PSI,
Jensen-Shannon distance on category frequencies.

Which test, by default (``choose_test``) — the rule Evidently popularized, for the same
reason: a p-value answers "could these two samples come from one distribution?", which at
a thousand rows is the useful question and at a million rows is almost always "no" for
differences nobody cares about. So small reference samples get a hypothesis test, large
ones an effect size with a fixed threshold:

==============  ==========================  ==========================================
column          reference rows <= 1,000     reference rows > 1,000
==============  ==========================  ==========================================
numeric         KS, drift if p < 0.05       Wasserstein / std(reference), drift if >= 0.1
categorical     chi-square, p < 0.05        Jensen-Shannon distance, drift if >= 0.1
==============  ==========================  ==========================================

A column's kind is the column contract's (``ratchet.columns.statistical_kind``): numbers
are numeric, everything else categorical, and a numeric column with at most
``CATEGORICAL_MAX_DISTINCT`` (five) distinct finite values in the reference (codes,
ratings) is tested as categories, the same rule that makes a profile call it categorical.
Distances drift at or above their threshold, p-values below theirs. The distance
thresholds are those of profile comparison (``ratchet.data.profile_compare``: PSI 0.2,
Jensen-Shannon and normalized Wasserstein 0.1), defined there once.

Nulls, and in numeric columns infinite values (``inf``, ``-inf``), are left out of every
statistic: one ``inf`` would make a mean, a standard deviation or a bin edge infinite and
the statistic NaN, which no threshold can judge. How many were left out on each side is in
the result (``non_finite_reference``, ``non_finite_current``); data quality reports them
as an issue. A side with no finite value left is an error, as one with no value at all.

Any column can be given another test and threshold (``overrides``). The dataset drifts
when at least ``drift_share`` (default half) of its columns do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ratchet.columns import (
    CATEGORICAL,
    CATEGORICAL_MAX_DISTINCT,
    FLOAT,
    NUMERIC,
    statistical_kind,
    values_family,
)
from ratchet.data.profile_compare import (
    JS_DISTANCE_THRESHOLD,
    MIN_SCALE,
    PSI_FLOOR,
    PSI_THRESHOLD,
    WASSERSTEIN_THRESHOLD,
    js_distance,
    psi,
)
from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

KS, CHISQUARE, PSI, WASSERSTEIN, JENSENSHANNON = (
    "ks", "chisquare", "psi", "wasserstein", "jensenshannon")
# p-value tests drift when p < threshold; distance tests when the statistic > threshold.
P_VALUE_TESTS = frozenset({KS, CHISQUARE})
TESTS_FOR = {NUMERIC: (KS, PSI, WASSERSTEIN, JENSENSHANNON),
             CATEGORICAL: (CHISQUARE, PSI, JENSENSHANNON)}
DEFAULT_THRESHOLDS = {KS: 0.05, CHISQUARE: 0.05, PSI: PSI_THRESHOLD,
                      WASSERSTEIN: WASSERSTEIN_THRESHOLD, JENSENSHANNON: JS_DISTANCE_THRESHOLD}
SMALL_SAMPLE = 1_000
NUMERIC_BINS = 20           # quantile bins of the reference, for PSI and JS on numbers
FEW_VALUES = CATEGORICAL_MAX_DISTINCT  # a numeric column this few values: categories
DEFAULT_DRIFT_SHARE = 0.5


@dataclass(frozen=True)
class DriftTest:
    """A test for one column, with its threshold (None: the test's default)."""

    test: str
    threshold: float | None = None


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int                 # values tested (nulls and non-finite left out)
    n_current: int
    non_finite_reference: int = 0    # inf / -inf left out of the statistic
    non_finite_current: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("statistic", "p_value"):  # strict JSON has no inf or NaN
            if data[key] is not None and not math.isfinite(data[key]):
                data[key] = None
        return data


@dataclass(frozen=True)
class DatasetDrift:
    columns: tuple[ColumnDrift, ...]
    drift_share: float
    prediction: ColumnDrift | None = None
    target: ColumnDrift | None = None

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def drift(self) -> bool:
        return bool(self.columns) and self.share >= self.drift_share

    def to_dict(self) -> dict[str, Any]:
        return {"drift": self.drift, "share": self.share, "drift_share": self.drift_share,
                "drifted_columns": self.drifted_columns,
                "columns": [c.to_dict() for c in self.columns],
                "prediction": self.prediction.to_dict() if self.prediction else None,
                "target": self.target.to_dict() if self.target else None}


# ----------------------------------------------------------------------------- choosing
def choose_test(kind: str, n_reference: int) -> DriftTest:
    """The default test for a column kind and reference size (see the module docstring)."""
    small = n_reference <= SMALL_SAMPLE
    if kind == NUMERIC:
        test = KS if small else WASSERSTEIN
    elif kind == CATEGORICAL:
        test = CHISQUARE if small else JENSENSHANNON
    else:
        raise InvalidInput(f"column kind must be {NUMERIC!r} or {CATEGORICAL!r}, got {kind!r}")
    return DriftTest(test, DEFAULT_THRESHOLDS[test])


def column_kind(values: Any) -> str:
    """Numeric for int/float dtypes (not bool); everything else is categorical (the column
    contract's rule by dtype; ``column_drift`` then applies its few-values rule)."""
    return statistical_kind(values_family(values))


# ----------------------------------------------------------------------------- numeric tests
def ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: (statistic, p-value)."""
    from scipy import stats

    result = stats.ks_2samp(reference, current, method="auto")
    return float(result.statistic), float(result.pvalue)


def wasserstein_normalized(reference: np.ndarray, current: np.ndarray, *,
                           sorted_input: bool = False) -> float:
    """Earth mover's distance divided by the reference's standard deviation.

    Exact: for equal sizes the mean absolute difference of the sorted samples, otherwise
    the integral of the difference of the two empirical CDFs.
    """
    import numpy as np

    ref = reference if sorted_input else np.sort(reference)
    cur = current if sorted_input else np.sort(current)
    if len(ref) == len(cur):
        distance = float(np.mean(np.abs(ref - cur)))
    else:  # the integral of |F - G| between consecutive points of both samples
        points = np.sort(np.concatenate([ref, cur]), kind="mergesort")  # two sorted runs
        cdf_ref = np.searchsorted(ref, points[:-1], side="right") / len(ref)
        cdf_cur = np.searchsorted(cur, points[:-1], side="right") / len(cur)
        distance = float(np.sum(np.abs(cdf_ref - cdf_cur) * np.diff(points)))
    scale = max(float(np.std(ref)), MIN_SCALE)
    return distance / scale


def _quantiles(sorted_values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Quantiles of an already sorted sample (no re-sort)."""
    import numpy as np

    positions = grid * (len(sorted_values) - 1)
    return np.interp(positions, np.arange(len(sorted_values)), sorted_values)


def numeric_bins(reference: np.ndarray, bins: int = NUMERIC_BINS, *,
                 sorted_input: bool = False) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (duplicates merged)."""
    import numpy as np

    ref = reference if sorted_input else np.sort(reference)
    edges = _quantiles(ref, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(edges)


def binned_counts(values: np.ndarray, edges: np.ndarray, *,
                  sorted_input: bool = False) -> np.ndarray:
    """Counts per bin (len(edges) + 1 bins); binary search on a sorted sample."""
    import numpy as np

    if sorted_input:
        cuts = np.searchsorted(values, edges, side="right")
        return np.diff(np.concatenate(([0], cuts, [len(values)])))
    return np.bincount(np.searchsorted(edges, values, side="right"),
                       minlength=len(edges) + 1)


# ----------------------------------------------------------------------------- categorical
def category_counts(reference: Any, current: Any) -> tuple[np.ndarray, np.ndarray]:
    """Counts of each category on both sides, aligned (hash-based, not sorted)."""
    import numpy as np
    import pandas as pd

    codes, _ = pd.factorize(pd.concat([pd.Series(reference), pd.Series(current)],
                                      ignore_index=True), use_na_sentinel=True)
    n_ref = len(reference)
    width = int(codes.max()) + 1 if len(codes) else 0
    ref_codes, cur_codes = codes[:n_ref], codes[n_ref:]
    return (np.bincount(ref_codes[ref_codes >= 0], minlength=width),
            np.bincount(cur_codes[cur_codes >= 0], minlength=width))


def chi_square_test(reference_counts: np.ndarray, current_counts: np.ndarray
                    ) -> tuple[float, float]:
    """Goodness of fit of the current counts to the reference's frequencies."""
    import numpy as np
    from scipy import stats

    expected_p = np.maximum(reference_counts / reference_counts.sum(), PSI_FLOOR)
    expected = expected_p / expected_p.sum() * current_counts.sum()
    result = stats.chisquare(current_counts, expected)
    return float(result.statistic), float(result.pvalue)


# ----------------------------------------------------------------------------- one column
def column_drift(reference: Any, current: Any, *, column: str = "value",
                 kind: str | None = None, test: DriftTest | str | None = None) -> ColumnDrift:
    """Test one column: reference and current are arrays or Series (nulls, and infinite
    numbers, are left out)."""
    import numpy as np
    import pandas as pd

    kind = kind or column_kind(reference)
    ref = pd.Series(reference).dropna()
    cur = pd.Series(current).dropna()
    r = c = None
    non_finite = (0, 0)
    if kind == NUMERIC:
        r, c = ref.to_numpy(dtype=np.float64), cur.to_numpy(dtype=np.float64)
        finite_r, finite_c = np.isfinite(r), np.isfinite(c)
        non_finite = (len(r) - int(finite_r.sum()), len(c) - int(finite_c.sum()))
        r, c = np.sort(r[finite_r]), np.sort(c[finite_c])
        ref, cur = ref[finite_r], cur[finite_c]
    if len(ref) == 0 or len(cur) == 0:
        side = "reference" if len(ref) == 0 else "current"
        raise InvalidInput(f"column {column!r}: no non-null values on the {side} side"
                           + (" (infinite values do not count)" if kind == NUMERIC else ""))
    if kind == NUMERIC:
        assert r is not None and c is not None
        if test is None:  # a handful of codes: compare frequencies, not distances
            kind = statistical_kind(FLOAT, int(np.count_nonzero(np.diff(r))) + 1)
    chosen = _test(test, kind, len(ref), column)
    threshold = chosen.threshold if chosen.threshold is not None else \
        DEFAULT_THRESHOLDS[chosen.test]
    p_value: float | None = None
    if kind == NUMERIC:
        assert r is not None and c is not None
        if chosen.test == KS:
            statistic, p_value = ks_test(r, c)
        elif chosen.test == WASSERSTEIN:
            statistic = wasserstein_normalized(r, c, sorted_input=True)
        else:
            edges = numeric_bins(r, sorted_input=True)
            rc = binned_counts(r, edges, sorted_input=True)
            cc = binned_counts(c, edges, sorted_input=True)
            statistic = psi(rc, cc) if chosen.test == PSI else js_distance(rc, cc)
    else:
        rc, cc = category_counts(ref, cur)
        if chosen.test == CHISQUARE:
            statistic, p_value = chi_square_test(rc, cc)
        elif chosen.test == PSI:
            statistic = psi(rc, cc)
        else:
            statistic = js_distance(rc, cc)
    drifted = (p_value < threshold) if p_value is not None else statistic >= threshold
    return ColumnDrift(column, kind, chosen.test, _finite(statistic), p_value, threshold,
                       bool(drifted), len(ref), len(cur), *non_finite)


def _test(test: DriftTest | str | None, kind: str, n_reference: int,
          column: str) -> DriftTest:
    if test is None:
        return choose_test(kind, n_reference)
    chosen = DriftTest(test) if isinstance(test, str) else test
    if not isinstance(chosen, DriftTest) or chosen.test not in TESTS_FOR[kind]:
        raise InvalidInput(f"column {column!r} ({kind}): test must be one of "
                           f"{', '.join(TESTS_FOR[kind])}, got {test!r}")
    if chosen.threshold is not None and not (
            isinstance(chosen.threshold, int | float) and chosen.threshold > 0):
        raise InvalidInput(f"column {column!r}: threshold must be a positive number, "
                           f"got {chosen.threshold!r}")
    return chosen


def _finite(value: float) -> float:
    return value if math.isfinite(value) else float("inf")


# ----------------------------------------------------------------------------- a dataset
def dataset_drift(reference: pd.DataFrame, current: pd.DataFrame, *,
                  columns: Sequence[str] | None = None,
                  overrides: Mapping[str, DriftTest | str] | None = None,
                  drift_share: float = DEFAULT_DRIFT_SHARE,
                  prediction: str | None = None, target: str | None = None,
                  workers: int = 2) -> DatasetDrift:
    """Test every shared column (or ``columns``); ``prediction`` and ``target`` are tested
    like the others but reported apart (prediction drift, target drift). Columns run on
    ``workers`` threads: NumPy's sorts release the GIL, so both cores work."""
    if not 0 < drift_share <= 1:
        raise InvalidInput(f"drift_share must be in (0, 1], got {drift_share!r}")
    special = {c for c in (prediction, target) if c}
    if columns is None:
        columns = [c for c in reference.columns if c in current.columns and c not in special]
    missing = [c for c in [*columns, *special]
               if c not in reference.columns or c not in current.columns]
    if missing:
        raise InvalidInput(f"column(s) {', '.join(map(repr, missing))} are not in both the "
                           "reference and the current data")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(columns) - special)
    if unknown:
        raise InvalidInput(f"overrides name unknown column(s): {', '.join(unknown)}")

    def one(name: str) -> ColumnDrift:
        return column_drift(reference[name], current[name], column=name,
                            test=overrides.get(name))

    names = [*columns, *sorted(special)]
    if workers > 1 and len(names) > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="ratchet-drift") as pool:
            results = dict(zip(names, pool.map(one, names), strict=True))
    else:
        results = {name: one(name) for name in names}
    return DatasetDrift(tuple(results[c] for c in columns), drift_share,
                        results.get(prediction) if prediction else None,
                        results.get(target) if target else None)
