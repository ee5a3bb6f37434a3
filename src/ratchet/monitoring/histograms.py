"""What a monitor report draws for a column: reference and current on the same bins.

Numeric columns get equal-width bins over the range both sides share, so bar heights compare
at a glance (quantile bins, which the drift tests use, have unequal widths: the reference is
flat by construction and a long tail becomes one wide slab). The range is the 0.5th to the
99.5th percentile of both sides together, so one extreme value cannot squeeze the rest into
a single bar; the values beyond it are counted (``outside``) and the report says how many.
A column of whole numbers gets bins of a whole number of values each (one per value when it
spans at most ``UNIT_BINS``), so no bar holds one value more than its neighbour.
Nulls and infinite values are left out (data quality counts them). Categorical columns get
the ``TOP_CATEGORIES`` most frequent categories of both sides.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

BINS = 30
TAIL = 0.005          # the share of each end left beyond the plotted range
UNIT_BINS = 40        # whole numbers over at most this many values: one bin per value
TOP_CATEGORIES = 20


def column_histogram(reference: pd.Series, current: pd.Series, *, numeric: bool
                     ) -> dict[str, Any]:
    """``{"kind": "numeric", "edges": [...], "reference": counts, "current": counts,
    "outside": {"reference": [below, above], "current": [below, above]}}`` (len(edges) =
    bins + 1, equal widths), or ``{"kind": "categorical", "categories": [...], ...}``."""
    import numpy as np
    import pandas as pd

    ref, cur = reference.dropna(), current.dropna()
    if numeric:
        r = ref.to_numpy(dtype=np.float64)
        c = cur.to_numpy(dtype=np.float64)
        r, c = r[np.isfinite(r)], c[np.isfinite(c)]
        if len(r) and len(c):
            edges = _edges(r, c)
            return {"kind": "numeric", "edges": edges.tolist(),
                    "reference": _counts(r, edges), "current": _counts(c, edges),
                    "outside": {"reference": _outside(r, edges),
                                "current": _outside(c, edges)}}
    top = pd.concat([ref, cur]).astype(str).value_counts().index[:TOP_CATEGORIES].tolist()
    ref_counts = ref.astype(str).value_counts()
    cur_counts = cur.astype(str).value_counts()
    return {"kind": "categorical", "categories": top,
            "reference": [int(ref_counts.get(c, 0)) for c in top],
            "current": [int(cur_counts.get(c, 0)) for c in top]}


def _edges(reference: Any, current: Any) -> Any:
    import numpy as np

    both = np.concatenate([reference, current])
    lo, hi = float(both.min()), float(both.max())
    whole = bool(np.all(both == np.round(both)))
    if whole and hi - lo + 1 <= UNIT_BINS:  # codes, counts, ratings: a bar per value
        return np.arange(lo - 0.5, hi + 1.0, 1.0)
    # The tails of each side, so a shifted current window keeps its own bulk in range.
    lo = min(float(np.quantile(reference, TAIL)), float(np.quantile(current, TAIL)))
    hi = max(float(np.quantile(reference, 1 - TAIL)), float(np.quantile(current, 1 - TAIL)))
    if hi <= lo:  # (nearly) constant: one bar around the value
        return np.array([lo - 0.5, lo + 0.5])
    if whole:  # whole-number bins, or bars alternate with how many values each one holds
        first, last = math.floor(lo), math.ceil(hi)
        width = math.ceil((last - first + 1) / BINS)
        bins = math.ceil((last - first + 1) / width)
        return first - 0.5 + width * np.arange(bins + 1, dtype=np.float64)
    return np.linspace(lo, hi, BINS + 1)


def _counts(values: Any, edges: Any) -> list[int]:
    import numpy as np

    counts, _ = np.histogram(values, bins=edges)
    return [int(n) for n in counts]


def _outside(values: Any, edges: Any) -> list[int]:
    import numpy as np

    return [int(np.count_nonzero(values < edges[0])),
            int(np.count_nonzero(values > edges[-1]))]


__all__ = ["column_histogram"]
