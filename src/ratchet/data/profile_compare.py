"""Compare two dataset profiles column by column, without re-reading either dataset.

Plain statistics, not yet drift *tests*: each is a small pure function over what a profile
stores (101 quantiles, a histogram, top categories), so the drift tests built later can
reuse them. ``compare_profiles`` applies them per column and flags a column ``changed``
when any statistic crosses a fixed threshold:

============================  ==========  ==============================================
statistic                     threshold   computed for
============================  ==========  ==============================================
``null_rate_change`` (abs)    > 0.05      every column present on both sides
``psi``                       > 0.2       numeric (histograms) and categorical (top)
``js_distance``               > 0.1       columns with ``top`` on both sides
``wasserstein_normalized``    > 0.1       numeric columns (W1 / reference std)
============================  ==========  ==============================================

PSI 0.2 is the credit-scoring convention for a significant shift; 0.1 for the
Jensen-Shannon distance and the std-normalized Wasserstein distance are Evidently's
defaults for large samples. ``ks_approx`` (numeric and datetime) and ``mean_shift_in_std``
are reported but do not flag: the KS statistic alarms on trivial shifts in large samples,
and datetime ranges move by design. These thresholds ignore sample size, so a small
current window can flag on noise alone; the drift tests will handle that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ratchet.data.profile import (
    BOOLEAN,
    DATETIME,
    NULL,
    NUMERIC,
    QUANTILE_PROBS,
    ColumnProfile,
    DatasetProfile,
    type_family,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

PSI_THRESHOLD = 0.2
JS_DISTANCE_THRESHOLD = 0.1
WASSERSTEIN_THRESHOLD = 0.1
NULL_RATE_THRESHOLD = 0.05
# Empty bins get this probability in PSI so the logarithm stays finite (Evidently's value).
PSI_FLOOR = 1e-4
# The Wasserstein distance is normalized by the reference std, never by less than this.
MIN_SCALE = 1e-3
OTHER_BUCKET = "\x00other"  # cannot collide with a real category label from a profile


@dataclass(frozen=True)
class ColumnComparison:
    column: str
    status: str  # "same" | "changed" | "added" | "removed" | "type_changed"
    reference_type: str | None  # Arrow type strings
    current_type: str | None
    statistics: dict[str, float | None] = field(default_factory=dict)
    changed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- building blocks


def _probs(quantiles: Sequence[float], probs: Sequence[float] | None) -> np.ndarray:
    import numpy as np

    if probs is not None:
        return np.asarray(probs, dtype=float)
    if len(quantiles) == len(QUANTILE_PROBS):
        return np.asarray(QUANTILE_PROBS, dtype=float)
    return np.linspace(0.0, 1.0, len(quantiles))


def cdf_from_quantiles(
    quantiles: Sequence[float],
    x: ArrayLike,
    probs: Sequence[float] | None = None,
    *,
    left: bool = False,
) -> np.ndarray:
    """The CDF implied by quantiles ``q_k`` at probabilities ``p_k``, evaluated at ``x``.

    Between knots the CDF is linear — the inverse of the linear interpolation
    ``numpy.quantile`` uses: ``F(x) = p_k + (p_{k+1} - p_k) (x - q_k) / (q_{k+1} - q_k)``
    for ``q_k <= x < q_{k+1}``; 0 below ``q_0`` and 1 from ``q_last`` on. Repeated
    quantiles are an atom, a jump in F. ``left=True`` gives the left limit
    ``F(x-) = P(X < x)`` instead of ``P(X <= x)``.
    """
    import numpy as np

    q = np.asarray(quantiles, dtype=float)
    p = _probs(quantiles, probs)
    xs = np.atleast_1d(np.asarray(x, dtype=float))
    # k: the last knot at or below x (strictly below for the left limit)
    k = np.searchsorted(q, xs, side="left" if left else "right") - 1
    kc = np.clip(k, 0, len(q) - 2)
    q0, q1 = q[kc], q[kc + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(q1 > q0, (xs - q0) / (q1 - q0), 1.0)
    out = p[kc] + (p[kc + 1] - p[kc]) * np.clip(frac, 0.0, 1.0)
    out = np.where(k < 0, 0.0, out)
    return np.where(k >= len(q) - 1, 1.0, out)


def ks_from_quantiles(
    reference: Sequence[float],
    current: Sequence[float],
    probs: Sequence[float] | None = None,
) -> float:
    """Kolmogorov-Smirnov statistic ``sup_x |F_ref(x) - F_cur(x)|`` of the two CDFs implied
    by the quantiles (``cdf_from_quantiles``).

    Both CDFs are linear between the union of their knots, so the supremum is attained at
    a knot, as a value or as a left limit. With 101 quantiles this approximates the
    two-sample KS statistic of the raw data to about 0.01.
    """
    import numpy as np

    knots = np.union1d(np.asarray(reference, dtype=float), np.asarray(current, dtype=float))
    gap = 0.0
    for left in (False, True):
        fr = cdf_from_quantiles(reference, knots, probs, left=left)
        fc = cdf_from_quantiles(current, knots, probs, left=left)
        gap = max(gap, float(np.max(np.abs(fr - fc))))
    return min(gap, 1.0)


def wasserstein_from_quantiles(
    reference: Sequence[float],
    current: Sequence[float],
    probs: Sequence[float] | None = None,
) -> float:
    """1-Wasserstein distance ``W1 = ∫_0^1 |Q_ref(p) - Q_cur(p)| dp`` between the
    piecewise-linear quantile functions, integrated exactly (a sign change inside a
    segment is handled, not smoothed over by the trapezoid rule)."""
    import numpy as np

    pr, pc = _probs(reference, probs), _probs(current, probs)
    grid = np.union1d(pr, pc)
    d = np.interp(grid, pr, np.asarray(reference, dtype=float)) - np.interp(
        grid, pc, np.asarray(current, dtype=float)
    )
    h = np.diff(grid)
    a, b = d[:-1], d[1:]
    same_sign = a * b >= 0
    absum = np.abs(a) + np.abs(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(absum > 0, (a * a + b * b) / (2 * absum), 0.0)
    return float(np.sum(h * np.where(same_sign, absum / 2, crossing)))


def bin_masses_from_quantiles(
    quantiles: Sequence[float],
    edges: Sequence[float],
    probs: Sequence[float] | None = None,
) -> np.ndarray:
    """Probability mass of the quantile-implied distribution in each histogram bin
    ``[e_i, e_{i+1})`` (the last bin closed), with the mass below ``e_0`` added to the
    first bin and above ``e_n`` to the last, so the masses sum to 1 — how a current
    distribution is re-binned onto reference histogram edges."""
    import numpy as np

    e = np.asarray(edges, dtype=float)
    below = cdf_from_quantiles(quantiles, e, probs, left=True)  # P(X < e_i)
    masses = np.diff(below)
    masses[0] += below[0]  # everything under the reference range
    masses[-1] += 1.0 - below[-1]  # the closed last edge and everything above it
    return np.clip(masses, 0.0, None)


def _normalize(x: ArrayLike) -> np.ndarray:
    import numpy as np

    a = np.asarray(x, dtype=float)
    total = a.sum()
    return a / total if total > 0 else a


def psi(expected: ArrayLike, actual: ArrayLike, floor: float = PSI_FLOOR) -> float:
    """Population stability index ``Σ (a_i - e_i) ln(a_i / e_i)`` over bins, where ``e`` is
    the reference (expected) and ``a`` the current distribution; counts or proportions,
    normalized here, with empty bins raised to ``floor``."""
    import numpy as np

    e = np.maximum(_normalize(expected), floor)
    a = np.maximum(_normalize(actual), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def js_divergence(p: ArrayLike, q: ArrayLike, base: float = 2.0) -> float:
    """Jensen-Shannon divergence ``½ KL(p‖m) + ½ KL(q‖m)``, ``m = (p + q) / 2``; in [0, 1]
    with the default base 2. Counts or proportions (normalized here)."""
    import numpy as np

    pn, qn = _normalize(p), _normalize(q)
    m = (pn + qn) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    return max(0.0, (kl(pn) + kl(qn)) / 2 / math.log(base))


def js_distance(p: ArrayLike, q: ArrayLike) -> float:
    """Jensen-Shannon distance: the square root of the natural-log divergence, as
    ``scipy.spatial.distance.jensenshannon`` and Evidently compute it; in [0, √ln 2]."""
    return math.sqrt(js_divergence(p, q, base=math.e))


def category_distributions(
    reference_top: Sequence[tuple[str, int]],
    reference_other: int,
    current_top: Sequence[tuple[str, int]],
    current_other: int,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Two comparable count vectors from two (top, other_count) summaries.

    A category gets its own bucket when its count is known on both sides — listed in a
    side's ``top``, or absent from a ``top`` that is complete (``other_count == 0``, so
    its count there is 0). Every other category is pooled into one ``OTHER_BUCKET``
    whose count on each side is that side's remainder, so both vectors keep their totals.
    """
    import numpy as np

    ref, cur = dict(reference_top), dict(current_top)
    labels = []
    for label in list(ref) + [k for k in cur if k not in ref]:
        if (label in ref or reference_other == 0) and (label in cur or current_other == 0):
            labels.append(label)
    r = np.array([ref.get(k, 0) for k in labels], dtype=float)
    c = np.array([cur.get(k, 0) for k in labels], dtype=float)
    r_rest = sum(ref.values()) + reference_other - r.sum()
    c_rest = sum(cur.values()) + current_other - c.sum()
    if r_rest > 0 or c_rest > 0:
        labels.append(OTHER_BUCKET)
        r, c = np.append(r, r_rest), np.append(c, c_rest)
    return labels, r, c


# --------------------------------------------------------------------------- comparison


def compare_profiles(
    reference: DatasetProfile | Mapping[str, Any],
    current: DatasetProfile | Mapping[str, Any],
) -> list[ColumnComparison]:
    """Per-column comparison: reference columns in order, then columns only in current.

    Added / removed columns and columns whose type family changed (numeric, boolean,
    datetime, string, other; ``int64`` → ``double`` is not a change of family, an
    all-null column of Arrow type ``null`` is compatible with anything) are reported with
    ``changed=True`` and no statistics. Accepts profiles or their ``to_dict()`` form.
    """
    ref = (
        reference if isinstance(reference, DatasetProfile) else DatasetProfile.from_dict(reference)
    )
    cur = current if isinstance(current, DatasetProfile) else DatasetProfile.from_dict(current)
    cur_by_name = {c.name: c for c in cur.columns}
    ref_names = {c.name for c in ref.columns}
    out = []
    for r in ref.columns:
        c = cur_by_name.get(r.name)
        if c is None:
            out.append(ColumnComparison(r.name, "removed", r.arrow_type, None, {}, True))
        else:
            out.append(compare_columns(r, c))
    for c in cur.columns:
        if c.name not in ref_names:
            out.append(ColumnComparison(c.name, "added", None, c.arrow_type, {}, True))
    return out


def compare_columns(reference: ColumnProfile, current: ColumnProfile) -> ColumnComparison:
    """Compare one column's two profiles (see the module docstring for the thresholds)."""
    rf, cf = type_family(reference.arrow_type), type_family(current.arrow_type)
    if rf != cf and NULL not in (rf, cf):
        return ColumnComparison(
            reference.name, "type_changed", reference.arrow_type, current.arrow_type, {}, True
        )
    stats: dict[str, float | None] = {
        "null_rate_ref": reference.null_rate,
        "null_rate_cur": current.null_rate,
        "null_rate_change": current.null_rate - reference.null_rate,
    }
    if reference.top is not None and current.top is not None:
        stats.update(_categorical_stats(reference, current))
    if rf == cf and rf in (NUMERIC, BOOLEAN):
        stats.update(_moment_stats(reference, current))
    if rf == cf and rf in (NUMERIC, DATETIME) and reference.quantiles and current.quantiles:
        stats["ks_approx"] = ks_from_quantiles(reference.quantiles, current.quantiles)
        if rf == NUMERIC:
            stats.update(_numeric_shape_stats(reference, current, has_psi="psi" in stats))
    if reference.mean_length is not None or current.mean_length is not None:
        stats["mean_length_ref"] = reference.mean_length
        stats["mean_length_cur"] = current.mean_length
    changed = _over_threshold(stats)
    return ColumnComparison(
        reference.name,
        "changed" if changed else "same",
        reference.arrow_type,
        current.arrow_type,
        {k: _clean(v) for k, v in stats.items()},
        changed,
    )


def _categorical_stats(reference: ColumnProfile, current: ColumnProfile) -> dict[str, float | None]:
    assert reference.top is not None and current.top is not None
    r_other, c_other = reference.other_count or 0, current.other_count or 0
    _, r, c = category_distributions(reference.top, r_other, current.top, c_other)
    out: dict[str, float | None] = {}
    if r.sum() > 0 and c.sum() > 0:
        out["psi"] = psi(r, c)
        out["js_divergence"] = js_divergence(r, c)
        out["js_distance"] = js_distance(r, c)
    ref_labels, cur_labels = {v for v, _ in reference.top}, {v for v, _ in current.top}
    # Only certain when the other side's top is complete; otherwise unknown.
    out["new_categories"] = float(len(cur_labels - ref_labels)) if r_other == 0 else None
    out["missing_categories"] = float(len(ref_labels - cur_labels)) if c_other == 0 else None
    return out


def _moment_stats(reference: ColumnProfile, current: ColumnProfile) -> dict[str, float | None]:
    shift = None
    if reference.mean is not None and current.mean is not None and reference.std:
        shift = (current.mean - reference.mean) / reference.std
    return {
        "mean_ref": reference.mean,
        "mean_cur": current.mean,
        "std_ref": reference.std,
        "std_cur": current.std,
        "mean_shift_in_std": shift,
    }


def _numeric_shape_stats(
    reference: ColumnProfile, current: ColumnProfile, *, has_psi: bool
) -> dict[str, float | None]:
    assert reference.quantiles is not None and current.quantiles is not None
    out: dict[str, float | None] = {}
    scale = _scale(reference)
    w = wasserstein_from_quantiles(reference.quantiles, current.quantiles)
    out["wasserstein"] = w
    out["wasserstein_normalized"] = w / scale if scale is not None else None
    # A complete category table (discrete numerics) already gave an exact PSI.
    h = reference.histogram
    if not has_psi and h is not None and len(h["counts"]) > 1:
        ch = current.histogram
        if ch is not None and list(ch["edges"]) == list(h["edges"]):
            cur_mass = _normalize(ch["counts"])  # same bins: use the exact counts
        else:
            cur_mass = bin_masses_from_quantiles(current.quantiles, h["edges"])
        out["psi"] = psi(h["counts"], cur_mass)
    return out


def _scale(reference: ColumnProfile) -> float | None:
    """Reference spread for normalizing: std, else IQR; None for a constant column."""
    if reference.std:
        return max(reference.std, MIN_SCALE)
    q = reference.quantiles
    if q is not None and len(q) == len(QUANTILE_PROBS) and q[75] > q[25]:
        return max(q[75] - q[25], MIN_SCALE)
    return None


def _over_threshold(stats: Mapping[str, float | None]) -> bool:
    def above(key: str, limit: float) -> bool:
        v = stats.get(key)
        return v is not None and math.isfinite(v) and abs(v) > limit

    return (
        above("null_rate_change", NULL_RATE_THRESHOLD)
        or above("psi", PSI_THRESHOLD)
        or above("js_distance", JS_DISTANCE_THRESHOLD)
        or above("wasserstein_normalized", WASSERSTEIN_THRESHOLD)
    )


def _clean(v: float | None) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


__all__ = [
    "ColumnComparison",
    "bin_masses_from_quantiles",
    "category_distributions",
    "cdf_from_quantiles",
    "compare_columns",
    "compare_profiles",
    "js_distance",
    "js_divergence",
    "ks_from_quantiles",
    "psi",
    "wasserstein_from_quantiles",
]
