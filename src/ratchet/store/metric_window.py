"""A metric history downsampled in the database, keeping its shape.

A chart is a few hundred to a few thousand pixels wide, a history may hold millions of
points. ``metric_window`` cuts the steps of a window into at most ``points`` equal
buckets and returns, per bucket, the min and max (so a spike of one step survives as a
bucket's max), the mean, and the first and last values, computed by the database in
one indexed range scan over ``metrics (run_id, key, step)``: no history row travels to
Python. A window with at most ``points`` rows comes back raw (one bucket per row).

A window of up to ``SORTED_WINDOW`` rows is grouped in one statement (its rows ranked
within their bucket for first/last, then ``GROUP BY``): sorting 20,000 rows is cheaper
than visiting hundreds of buckets one index seek each. Past that, a ``GROUP BY`` over the
bucket number would sort every row first on both databases (neither
knows the bucket is monotonic in the step; 1M rows: 1.5-3 s, spilling to disk on
PostgreSQL), so each bucket is its own range scan of the index, in step order, with no
sort: on PostgreSQL a ``LATERAL`` subquery per bucket (plus two one-row lookups for its
first and last values); on SQLite, which has no ``LATERAL``, a correlated subquery per
bucket whose aggregates come back as one text row printed with 17 significant digits
(which round-trips a double exactly), and one ranked query for the first/last values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, and_, bindparam, case, func, or_, select, text

from ratchet.errors import InvalidInput
from ratchet.store import schema as t

MAX_POINTS = 10_000
SORTED_WINDOW = 20_000  # windows up to this many rows: one sorted GROUP BY


@dataclass(frozen=True)
class MetricBucket:
    """The rows of one run's metric whose steps fall in [step, last_step].

    Values that are NaN are counted in ``nan_count`` and left out of min, max and mean
    (those are NaN when every value is). ``first``/``last``: the value logged first at the
    lowest step and last at the highest (ties at a step: by timestamp, then log order)."""

    step: int
    last_step: int
    count: int
    nan_count: int
    min: float
    max: float
    mean: float
    first: float
    last: float


@dataclass(frozen=True)
class MetricWindow:
    """A window of a metric history, raw or downsampled.

    ``first_step``/``last_step``: the whole history's extent (None when it is empty), so a
    zoomed chart knows how far it may zoom out. ``start``/``end``: the steps this window
    covers (the asked range clamped to the extent). ``count``: rows in the window;
    ``bucket_width``: steps per bucket (1 when ``downsampled`` is false)."""

    run_id: str
    key: str
    first_step: int | None
    last_step: int | None
    start: int | None
    end: int | None
    count: int
    downsampled: bool
    bucket_width: int
    buckets: tuple[MetricBucket, ...]


def check_window(points: object, start: object, end: object) -> None:
    if isinstance(points, bool) or not isinstance(points, int) \
            or not 1 <= points <= MAX_POINTS:
        raise InvalidInput(f"points must be an integer from 1 to {MAX_POINTS}, got {points!r}")
    for name, value in (("start", start), ("end", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInput(f"{name} must be an integer step, got {value!r}")
    if isinstance(start, int) and isinstance(end, int) and start > end:
        raise InvalidInput(f"start ({start}) is after end ({end}): give start <= end")


@cache
def _statements() -> dict[str, Any]:
    """The statements every call runs, built once with bound parameters: building and
    keying SQLAlchemy constructs per call cost more than running them on short
    histories (a compare of 100 runs makes 100 calls)."""
    m = t.metrics
    lo, hi = bindparam("lo", type_=BigInteger), bindparam("hi", type_=BigInteger)
    width = bindparam("width", type_=BigInteger)
    of_metric = and_(m.c.run_id == bindparam("run_id"), m.c.key == bindparam("key"))
    in_window = and_(of_metric, m.c.step >= lo, m.c.step <= hi)
    bucket = (m.c.step - lo) // width  # integer division; step >= lo keeps it exact
    ranked = select(
        m.c.step, m.c.value, bucket.label("bucket"),
        func.row_number().over(partition_by=bucket, order_by=(m.c.step, m.c.timestamp, m.c.id)
                               ).label("from_first"),
        func.row_number().over(partition_by=bucket, order_by=(
            m.c.step.desc(), m.c.timestamp.desc(), m.c.id.desc())).label("from_last"),
    ).where(in_window).subquery()
    r = ranked.c
    return {
        # Two scalar subqueries: each is one index seek (a single SELECT with both min
        # and max would scan the range on SQLite).
        "extent": select(select(func.min(m.c.step)).where(of_metric).scalar_subquery(),
                         select(func.max(m.c.step)).where(of_metric).scalar_subquery()),
        "size": select(func.count()).select_from(
            select(m.c.step).where(in_window).limit(bindparam("limit")).subquery()),
        "raw": select(m.c.value, m.c.is_nan, m.c.step).where(in_window)
        .order_by(m.c.step, m.c.timestamp, m.c.id),
        # NaN is stored as NULL, so a NULL first/last value is NaN.
        "sorted": select(func.min(r.step), func.max(r.step), func.count(), func.count(r.value),
                         func.min(r.value), func.max(r.value), func.avg(r.value),
                         func.max(case((r.from_first == 1, r.value))),
                         func.max(case((r.from_last == 1, r.value))))
        .group_by(r.bucket).order_by(r.bucket),
    }


def read_window(conn: Any, dialect: str, run_id: str, key: str, points: int,
                start: int | None, end: int | None) -> MetricWindow | None:
    """The window, or None when the metric has no history (the caller tells a missing run
    from an empty history)."""
    statements = _statements()
    first_step, last_step = conn.execute(statements["extent"],
                                         {"run_id": run_id, "key": key}).one()
    if first_step is None:
        return None
    lo = first_step if start is None else max(start, first_step)
    hi = last_step if end is None else min(end, last_step)

    def window(count: int, downsampled: bool, width: int,
               buckets: tuple[MetricBucket, ...]) -> MetricWindow:
        return MetricWindow(run_id, key, first_step, last_step, lo, hi, count, downsampled,
                            width, buckets)

    if lo > hi:
        return window(0, False, 1, ())
    bound = {"run_id": run_id, "key": key, "lo": lo, "hi": hi}
    # A bounded count over the covering index picks the plan: the raw points, one sorted
    # statement for a small window (cheaper than visiting hundreds of buckets one index
    # seek each), or bucket by bucket for a large one.
    size = conn.execute(statements["size"],
                        {**bound, "limit": max(points, SORTED_WINDOW) + 1}).scalar()
    if size <= points:
        raw = conn.execute(statements["raw"], bound).all()
        return window(len(raw), False, 1, tuple(_raw_bucket(r) for r in raw))
    width = -(-(hi - lo + 1) // points)  # ceil: at most ``points`` buckets
    if size <= SORTED_WINDOW:
        buckets = tuple(
            MetricBucket(first, last, count, count - finite, *_values(finite, low, high, mean),
                         math.nan if head is None else float(head),
                         math.nan if tail is None else float(tail))
            for first, last, count, finite, low, high, mean, head, tail
            in conn.execute(statements["sorted"], {**bound, "width": width}))
    elif dialect == "postgresql":
        buckets = tuple(_postgres_buckets(conn, run_id, key, lo, hi, width))
    else:
        rows = _sqlite_buckets(conn, run_id, key, lo, hi, width)
        m = t.metrics
        ends = _first_and_last(conn, and_(m.c.run_id == run_id, m.c.key == key),
                               {s for r in rows for s in (r[0], r[1])})
        buckets = tuple(
            MetricBucket(first, last, count, count - finite, low, high, mean,
                         ends[first][0], ends[last][1])
            for first, last, count, finite, low, high, mean in rows)
    return window(sum(b.count for b in buckets), True, width, buckets)


Row = tuple[int, int, int, int, float, float, float]  # steps, counts, min, max, mean


def _raw_bucket(row: Any) -> MetricBucket:
    value = math.nan if row.is_nan else float(row.value)
    return MetricBucket(row.step, row.step, 1, int(bool(row.is_nan)), value, value, value,
                        value, value)


_POSTGRES_BUCKETS = text("""
SELECT a.first_step, a.last_step, a.n, a.finite, a.low, a.high, a.mean,
       f.value, f.is_nan, l.value, l.is_nan
FROM generate_series(0, :n - 1) AS bucket(i)
CROSS JOIN LATERAL (
    SELECT count(*) AS n, min(step) AS first_step, max(step) AS last_step,
           count(value) AS finite, min(value) AS low, max(value) AS high, avg(value) AS mean
    FROM metrics
    WHERE run_id = :run_id AND key = :key
      AND step BETWEEN :lo + i * :width AND least(:lo + i * :width + :width - 1, :hi)) AS a
LEFT JOIN LATERAL (
    SELECT value, is_nan FROM metrics
    WHERE run_id = :run_id AND key = :key AND step = a.first_step
    ORDER BY timestamp, id LIMIT 1) AS f ON true
LEFT JOIN LATERAL (
    SELECT value, is_nan FROM metrics
    WHERE run_id = :run_id AND key = :key AND step = a.last_step
    ORDER BY timestamp DESC, id DESC LIMIT 1) AS l ON true
WHERE a.n > 0
ORDER BY bucket.i
""")


def _postgres_buckets(conn: Any, run_id: str, key: str, lo: int, hi: int,
                      width: int) -> list[MetricBucket]:
    # The plan's cost estimate is large enough to trigger JIT compilation, which costs
    # more (~1 s) than the query itself; this transaction only.
    conn.execute(text("SET LOCAL jit = off"))
    n = -(-(hi - lo + 1) // width)
    found = []
    for (first, last, count, finite, low, high, mean, f_value, f_nan, l_value,
         l_nan) in conn.execute(_POSTGRES_BUCKETS, {"n": n, "run_id": run_id, "key": key,
                                                    "lo": lo, "hi": hi, "width": width}):
        found.append(MetricBucket(first, last, count, count - finite,
                                  *_values(finite, low, high, mean),
                                  math.nan if f_nan else float(f_value),
                                  math.nan if l_nan else float(l_value)))
    return found


_SQLITE_BUCKETS = text("""
WITH RECURSIVE bucket(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM bucket WHERE i + 1 < :n)
SELECT (SELECT printf('%d %d %d %d ', count(*), min(step), max(step), count(value))
               || printf('%!.17g %!.17g ', min(value), max(value))
               -- avg is NULL for +inf + -inf (SQLite has no NaN); printf would say 0.0
               || CASE WHEN avg(value) IS NULL THEN 'nan' ELSE printf('%!.17g', avg(value)) END
        FROM metrics
        WHERE run_id = :run_id AND key = :key
          AND step >= :lo + i * :width AND step <= min(:lo + i * :width + :width - 1, :hi))
FROM bucket
""")


def _sqlite_buckets(conn: Any, run_id: str, key: str, lo: int, hi: int,
                    width: int) -> list[Row]:
    n = -(-(hi - lo + 1) // width)
    found: list[Row] = []
    for (line,) in conn.execute(_SQLITE_BUCKETS, {"n": n, "run_id": run_id, "key": key,
                                                  "lo": lo, "hi": hi, "width": width}):
        count, first, last, finite, low, high, mean = line.split(" ")
        if int(count):
            found.append((int(first), int(last), int(count), int(finite),
                          *_values(int(finite), float(low), float(high), float(mean))))
    return found


def _values(finite: int, low: Any, high: Any, mean: Any) -> tuple[float, float, float]:
    """min, max, mean as floats; NaN when the bucket holds only NaN (SQL saw NULLs)."""
    if not finite:
        return math.nan, math.nan, math.nan
    return float(low), float(high), math.nan if mean is None else float(mean)


def _first_and_last(conn: Any, of_metric: Any, steps: set[int]
                    ) -> dict[int, tuple[float, float]]:
    """Per step: the value logged first and the one logged last at it. Ranked in SQL, so
    a step logged a million times still sends two rows."""
    m = t.metrics
    order = (m.c.timestamp, m.c.id)
    ranked = select(
        m.c.step, m.c.value, m.c.is_nan,
        func.row_number().over(partition_by=m.c.step, order_by=order).label("rank"),
        func.count().over(partition_by=m.c.step).label("n"),
    ).where(of_metric, m.c.step.in_(bindparam("steps", expanding=True))).subquery()
    rows = conn.execute(
        select(ranked.c.step, ranked.c.value, ranked.c.is_nan, ranked.c.rank, ranked.c.n)
        .where(or_(ranked.c.rank == 1, ranked.c.rank == ranked.c.n))
        .order_by(ranked.c.step, ranked.c.rank), {"steps": sorted(steps)}).all()
    found: dict[int, list[float]] = {}
    for row in rows:
        value = math.nan if row.is_nan else float(row.value)
        pair = found.setdefault(row.step, [value, value])
        pair[1] = value  # ordered by rank: the last row seen is the last logged
    return {step: (pair[0], pair[1]) for step, pair in found.items()}
