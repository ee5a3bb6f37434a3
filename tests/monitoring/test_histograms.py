"""What the report draws per column: equal-width bins both sides share, a long tail kept out
of the range (and counted), whole numbers on whole-number bins, categories as counts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ratchet.monitoring.histograms import BINS, column_histogram
from ratchet.monitoring.monitor import _distribution

RNG = np.random.default_rng(11)


def test_a_long_tail_gets_equal_bins_and_the_reference_is_not_flat() -> None:
    reference = pd.Series(RNG.lognormal(3, 1.2, 20_000))
    current = pd.Series(RNG.lognormal(3.2, 1.2, 2_000))
    spec = _distribution(reference, current)          # what the monitor records
    edges = np.asarray(spec["edges"])
    widths = np.diff(edges)
    assert spec["kind"] == "numeric" and len(widths) == BINS
    assert np.allclose(widths, widths[0])             # equal widths, not quantile bins
    shares = np.asarray(spec["reference"]) / len(reference)
    assert shares.max() > 4 * np.median(shares)       # the shape shows (skewed, not 5 % flat)
    # The tail beyond the 99.5th percentile is counted, not stretched into the range.
    for side, values in (("reference", reference), ("current", current)):
        below, above = spec["outside"][side]
        assert sum(spec[side]) + below + above == len(values)
        assert above == int((values > edges[-1]).sum()) and above > 0
    assert edges[-1] < reference.max() / 3


def test_whole_numbers_get_whole_number_bins() -> None:
    ages = column_histogram(pd.Series(RNG.integers(18, 81, 5_000)),
                            pd.Series(RNG.integers(25, 90, 500)), numeric=True)
    edges = np.asarray(ages["edges"])
    width = edges[1] - edges[0]
    assert width == int(width) and np.allclose(np.diff(edges), width)
    assert edges[0] == 17.5 and edges[-1] >= 89.5     # every value in a bin
    assert ages["outside"] == {"reference": [0, 0], "current": [0, 0]}
    codes = column_histogram(pd.Series([1, 2, 2, 3, 5] * 20), pd.Series([2, 3, 9]),
                             numeric=True)
    assert codes["edges"] == [v - 0.5 for v in range(1, 11)]   # a bar per value
    assert codes["reference"][:5] == [20, 40, 20, 0, 20]


def test_constants_nulls_infinities_and_categories() -> None:
    constant = column_histogram(pd.Series([2.5] * 10), pd.Series([2.5, np.nan]), numeric=True)
    assert constant["edges"] == [2.0, 3.0]
    assert (constant["reference"], constant["current"]) == ([10], [1])
    spoiled = column_histogram(pd.Series([0.1, 0.2, np.inf, 0.3, -np.inf]),
                               pd.Series([0.15, np.nan]), numeric=True)
    assert all(np.isfinite(spoiled["edges"]))
    assert sum(spoiled["reference"]) + sum(spoiled["outside"]["reference"]) == 3
    plans = column_histogram(pd.Series(["a", "b", "b", None]), pd.Series(["b", "c"]),
                             numeric=False)
    assert plans == {"kind": "categorical", "categories": ["b", "a", "c"],
                     "reference": [2, 1, 0], "current": [1, 0, 1]}


def test_a_numeric_column_with_no_finite_value_falls_back_to_categories() -> None:
    empty = column_histogram(pd.Series([np.nan, np.nan]), pd.Series([1.0]), numeric=True)
    assert empty["kind"] == "categorical"
    assert empty["reference"] == [0] and empty["current"] == [1]
