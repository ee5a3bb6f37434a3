"""The most recent change point in a right/wrong (0/1) series: where a model's error rate
last moved, so that a retrain can learn from the rows since then (``data.window:
changepoint``).

Detection is binary segmentation on the tail. The best single split of the series is the
one with the largest Bernoulli likelihood-ratio statistic

    LR(t) = 2 [ l(x[:t]) + l(x[t:]) - l(x) ],   l(s) = k log(k/m) + (m-k) log(1 - k/m)

(``m`` rows, ``k`` errors; both sides at least ``min_size`` rows), found in one O(n) pass
over cumulative sums. The split counts only when LR exceeds a threshold that bounds the
chance of a false alarm on a series *without* change to ``alpha``; the scan then repeats
on the rows after it, so the last split that counts is the most recent change. A series
with no change stops at the first scan with probability about ``1 - alpha`` (the tests
measure it).

The threshold, permutation-free, is the smaller of two bounds on the maximum of LR over
the candidate splits under "no change" (each controls the false-alarm rate by itself):

- Bonferroni: each LR(t) is asymptotically chi-squared with one degree of freedom, so
  ``P(max LR > u) <= K * P(chi2_1 > u)`` over the ``K`` candidate splits;
- the Brownian-bridge bound (James, James & Siegmund 1987; Siegmund 1988): LR(t) behaves
  like the square of a standardized Brownian bridge ``U(s)``, ``s = t/n``, and for splits
  with ``h <= s <= 1 - h`` (``h = min_size / n``)
  ``P(max |U| > c) ~= c phi(c) [(1 - 1/c^2) log((1 - h)^2 / h^2) + 4/c^2]``. On n discrete
  rows the maximum is smaller than the continuous one, so this over-states the
  false-alarm rate: it errs on the side of no change.

Rows that err in runs (a bad season) vary more between blocks than independent rows
would; the statistic is divided by that excess (``dispersion``, a quasi-likelihood
correction, never below 1) before it is compared with the threshold.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np

ALPHA = 0.05            # false alarms on a series without change, at most about this often
MIN_SIZE = 30           # rows on each side of a change point (the chi-squared needs a few)


@dataclass(frozen=True)
class ChangePoint:
    """A change in the error rate: rows ``index`` onwards err at ``rate_after``, the rows
    of the scanned segment before it at ``rate_before``."""

    index: int             # the first row after the change (0-based, in the whole series)
    rate_before: float     # error rate of the scanned segment's rows before ``index``
    rate_after: float      # error rate of the rows from ``index`` to the end
    statistic: float       # the likelihood-ratio statistic of the split
    threshold: float       # what statistic / dispersion had to exceed (``alpha``'s bound)
    dispersion: float      # between-block variation over the binomial's (>= 1; doc below)
    segment_start: int     # where the scan that found it began (0, or an earlier change)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def most_recent_change(errors: Any, *, min_size: int = MIN_SIZE,
                       alpha: float = ALPHA) -> ChangePoint | None:
    """The most recent change point of ``errors`` (0/1 or booleans, oldest first), or
    None when no split is significant at ``alpha``. Each side of a change point has at
    least ``min_size`` rows."""
    x = _errors(errors)
    if not isinstance(min_size, int) or isinstance(min_size, bool) or min_size < 1:
        raise InvalidInput(f"min_size must be an int >= 1, got {min_size!r}")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not 0 < alpha < 1:
        raise InvalidInput(f"alpha must be in (0, 1), got {alpha!r}")
    found: ChangePoint | None = None
    found_all: list[ChangePoint] = []
    start = 0
    while len(x) - start >= 2 * min_size:
        segment = x[start:]
        split, statistic = best_split(segment, min_size)
        cuts = [c.index for c in found_all] + [start + split]
        spread = dispersion(x, cuts, min_size)
        bound = threshold(len(segment), min_size, alpha)
        if not statistic / spread > bound:
            break
        found = ChangePoint(index=start + split, rate_before=float(segment[:split].mean()),
                            rate_after=float(segment[split:].mean()),
                            statistic=float(statistic), threshold=bound,
                            dispersion=spread, segment_start=start)
        found_all.append(found)
        start += split
    return found


def dispersion(x: np.ndarray, cuts: Sequence[int], block: int) -> float:
    """How much more the error rate varies between blocks of ``block`` rows than
    independent rows would make it (the quasi-binomial dispersion, at least 1), with the
    rate constant between ``cuts`` (split points): the whole blocks' squared deviations
    from their piece's rate, over the binomial variance, per degree of freedom. Rows that
    err in runs (a bad season, a bad week) make it exceed 1; the likelihood ratio is
    divided by it, so such runs are not taken for a change. The whole series informs it,
    also when only its tail is scanned for a later change."""
    import numpy as np

    edges = [0, *cuts, len(x)]
    deviations: list[float] = []
    pieces = 0
    for lo, hi in itertools.pairwise(edges):
        count = (hi - lo) // block
        if count == 0:
            continue
        pieces += 1
        piece = x[hi - count * block:hi]  # whole blocks, ending at the piece's end
        deviations.extend((piece.reshape(count, block).mean(axis=1) - x[lo:hi].mean())
                          .tolist())
    freedom = len(deviations) - pieces
    p = float(x.mean())
    if freedom < 1 or not 0 < p < 1:
        return 1.0
    binomial = p * (1 - p) / block
    return max(1.0, float(np.sum(np.square(deviations))) / freedom / binomial)


def window_since_change(errors: Any, *, rows: int, smallest: int, min_size: int,
                        alpha: float = ALPHA) -> tuple[int, ChangePoint | None]:
    """How many of the newest rows to learn from, and the change point that says so: the
    rows since the most recent change in ``errors`` (a model's right/wrong series, oldest
    first), at least ``smallest``, at most ``rows``; ``rows`` when there is none."""
    x = _errors(errors)
    change = most_recent_change(x, min_size=min_size, alpha=alpha) \
        if len(x) >= 2 * min_size else None
    if change is None:
        return rows, None
    return min(rows, max(smallest, len(x) - change.index)), change


def best_split(x: np.ndarray, min_size: int) -> tuple[int, float]:
    """The split ``t`` (rows ``[0, t)`` | ``[t, n)``, each at least ``min_size``) with the
    largest Bernoulli likelihood-ratio statistic, and that statistic: one pass."""
    import numpy as np

    n = len(x)
    if n < 2 * min_size:
        raise InvalidInput(f"a split needs at least {2 * min_size} rows, got {n}")
    cumulative = np.concatenate(([0.0], np.cumsum(x, dtype=float)))
    t = np.arange(min_size, n - min_size + 1)
    before, total = cumulative[t], cumulative[-1]
    after = total - before
    statistic = 2 * (_loglik(before, t) + _loglik(after, n - t) - _loglik(total, n))
    best = int(np.argmax(statistic))
    return int(t[best]), max(float(statistic[best]), 0.0)


def threshold(n: int, min_size: int, alpha: float = ALPHA) -> float:
    """The likelihood-ratio value a split of ``n`` rows (sides >= ``min_size``) must
    exceed: the smaller of the Bonferroni and the Brownian-bridge bounds (module doc)."""
    candidates = n - 2 * min_size + 1
    if candidates < 1:
        raise InvalidInput(f"a split needs at least {2 * min_size} rows, got {n}")
    # Bonferroni over the candidates: P(chi2_1 > c^2) = erfc(c / sqrt 2)
    level = alpha / candidates
    bonferroni = _solve(lambda c: math.erfc(c / math.sqrt(2)) - level)
    h = min_size / n
    span = math.log((1 - h) ** 2 / h ** 2) if h < 0.5 else 0.0

    def excess(c: float) -> float:  # decreasing for c >= 2
        density = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
        return c * density * ((1 - 1 / c ** 2) * span + 4 / c ** 2) - alpha

    if excess(2.0) <= 0:  # a lenient alpha: the approximation is not made for it
        return bonferroni ** 2
    return min(bonferroni, _solve(excess, low=2.0)) ** 2


def error_series(truth: Sequence[Any] | Any, predicted: Sequence[Any] | Any,
                 classes: Sequence[Any] | None) -> np.ndarray:
    """1 where a model's answer was wrong, 0 where right, oldest first.

    With ``classes`` (a classifier), labels and answers are matched to the classes as the
    monitor's accuracy matches them (``1`` names class ``True``, ``"1"`` names ``1``); a
    label that names no class is wrong. Without (a regressor), a row is wrong when its
    absolute error exceeds the series' median absolute error, so a change in the size of
    the errors is a change in this rate."""
    import numpy as np
    import pandas as pd

    truth, predicted = pd.Series(np.asarray(truth, dtype=object)), \
        pd.Series(np.asarray(predicted, dtype=object))
    if len(truth) != len(predicted):
        raise InvalidInput(f"{len(truth)} labels but {len(predicted)} answers")
    if classes is None:
        error = np.abs(pd.to_numeric(truth, errors="coerce").to_numpy(float)
                       - pd.to_numeric(predicted, errors="coerce").to_numpy(float))
        error = np.where(np.isnan(error), np.inf, error)  # no number: wrong
        if not len(error):
            return np.zeros(0, dtype=np.int8)
        return (error > np.median(error)).astype(np.int8)
    from ratchet.packaging.labels import class_matcher

    match = class_matcher(list(classes))

    def codes(values: pd.Series, missing: int) -> np.ndarray:
        index, uniques = pd.factorize(values, use_na_sentinel=True)
        mapped = np.array([missing if (i := match(u)) is None else i for u in uniques]
                          + [missing], dtype=np.intp)
        return mapped[index]  # the sentinel -1 picks the appended "missing"

    return (codes(truth, -1) != codes(predicted, -2)).astype(np.int8)


# ----------------------------------------------------------------------------- helpers
def _errors(errors: Any) -> np.ndarray:
    import numpy as np

    x = np.asarray(errors)
    if x.ndim != 1:
        raise InvalidInput(f"errors must be a 1-d series of 0/1, got shape {x.shape}")
    if x.dtype == bool:
        return x.astype(float)
    try:
        x = x.astype(float)
    except (TypeError, ValueError):
        raise InvalidInput("errors must be 0/1 (wrong = 1), got non-numbers") from None
    if not np.isin(x, (0.0, 1.0)).all():
        raise InvalidInput("errors must be 0/1 (wrong = 1); found other values or NaN")
    return x


def _loglik(k: Any, m: Any) -> Any:
    """The Bernoulli log-likelihood at the MLE of ``k`` errors in ``m`` rows (vectorised)."""
    return _xlogx(k) + _xlogx(m - k) - _xlogx(m)


def _xlogx(a: Any) -> Any:
    import numpy as np

    a = np.asarray(a, dtype=float)
    return a * np.log(np.where(a > 0, a, 1.0))


def _solve(f: Any, low: float = 0.5, high: float = 40.0) -> float:
    """The root of a decreasing ``f`` on [low, high] by bisection (to 1e-10)."""
    if f(low) <= 0:
        return low
    for _ in range(200):
        mid = (low + high) / 2
        if f(mid) > 0:
            low = mid
        else:
            high = mid
        if high - low < 1e-10:
            break
    return (low + high) / 2


__all__ = ["ALPHA", "MIN_SIZE", "ChangePoint", "best_split", "dispersion", "error_series",
           "most_recent_change", "threshold", "window_since_change"]
