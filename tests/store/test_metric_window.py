"""TrackingStore.metric_window on SQLite, PostgreSQL and through the team server: the
buckets equal a brute-force reference computed from the logged points."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ratchet.errors import InvalidInput, NotFound
from ratchet.store import TrackingStore, metric_window
from ratchet.store.metric_window import MAX_POINTS, MetricBucket


@pytest.fixture(params=["sorted", "per bucket"])
def store(any_stores: Any, request: pytest.FixtureRequest,
          monkeypatch: pytest.MonkeyPatch) -> TrackingStore:
    """Both plans: small windows sorted once, large ones scanned bucket by bucket (forced
    here by a threshold of 0; the remote server runs in its own process and keeps the
    default, so it sees the sorted plan twice)."""
    if request.param == "per bucket":
        monkeypatch.setattr(metric_window, "SORTED_WINDOW", 0)
    return any_stores.tracking  # type: ignore[no-any-return]


@pytest.fixture
def run_id(store: TrackingStore) -> str:
    exp = store.get_or_create_experiment("exp")
    return store.create_run(exp.experiment_id, name="r").run_id


Point = tuple[str, float, int, int]


def reference(points: list[Point], lo: int, hi: int, buckets: int) -> list[MetricBucket]:
    """The expected downsampling, by hand: equal step buckets of ceil(range / buckets)."""
    width = -(-(hi - lo + 1) // buckets)
    ordered = sorted((p for p in points if lo <= p[2] <= hi), key=lambda p: (p[2], p[3]))
    groups: dict[int, list[Point]] = {}
    for p in ordered:
        groups.setdefault((p[2] - lo) // width, []).append(p)
    found = []
    for _, rows in sorted(groups.items()):
        values = [r[1] for r in rows if not math.isnan(r[1])]
        found.append(MetricBucket(
            rows[0][2], rows[-1][2], len(rows), len(rows) - len(values),
            min(values) if values else math.nan, max(values) if values else math.nan,
            sum(values) / len(values) if values else math.nan,
            next(r[1] for r in rows if r[2] == rows[0][2]), rows[-1][1]))
    return found


def same(got: MetricBucket, want: MetricBucket) -> bool:
    def eq(a: float, b: float) -> bool:
        return (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=1e-9)
    return (got.step, got.last_step, got.count, got.nan_count) == \
        (want.step, want.last_step, want.count, want.nan_count) and \
        all(eq(getattr(got, f), getattr(want, f))
            for f in ("min", "max", "mean", "first", "last"))


def check(store: TrackingStore, run_id: str, points: list[Point], n: int,
          start: int | None = None, end: int | None = None) -> Any:
    window = store.metric_window(run_id, "loss", points=n, start_step=start, end_step=end)
    steps = [p[2] for p in points]
    lo = min(steps) if start is None else max(start, min(steps))
    hi = max(steps) if end is None else min(end, max(steps))
    inside = [p for p in points if lo <= p[2] <= hi]
    assert (window.first_step, window.last_step) == (min(steps), max(steps))
    assert (window.start, window.end, window.count) == (lo, hi, len(inside))
    assert window.downsampled == (len(inside) > n)
    assert len(window.buckets) <= n
    if window.downsampled:
        want = reference(points, lo, hi, n)
        assert window.bucket_width == -(-(hi - lo + 1) // n)
    else:
        want = [MetricBucket(p[2], p[2], 1, int(math.isnan(p[1])), *[p[1]] * 5)
                for p in sorted(inside, key=lambda p: (p[2], p[3]))]
    assert len(window.buckets) == len(want)
    for got, expected in zip(window.buckets, want, strict=True):
        assert same(got, expected), (got, expected)
    return window


def test_a_spike_of_one_step_survives_downsampling(store: TrackingStore, run_id: str) -> None:
    points = [("loss", 1.0 / (1 + s), s, 1000 + s) for s in range(5000)]
    points[3217] = ("loss", 50.0, 3217, 4217)   # one step up
    points[4001] = ("loss", -7.5, 4001, 5001)   # one step down
    store.log_batch(run_id, points)
    window = check(store, run_id, points, 100)
    assert window.downsampled and len(window.buckets) == 100 and window.bucket_width == 50
    spike = next(b for b in window.buckets if b.step <= 3217 <= b.last_step)
    dip = next(b for b in window.buckets if b.step <= 4001 <= b.last_step)
    assert spike.max == 50.0 and dip.min == -7.5
    assert sum(b.count for b in window.buckets) == 5000
    # Zooming in: the finer window around the spike, then raw points.
    zoomed = check(store, run_id, points, 100, 3000, 3499)
    assert zoomed.bucket_width == 5 and (zoomed.first_step, zoomed.last_step) == (0, 4999)
    raw = check(store, run_id, points, 100, 3200, 3230)
    assert not raw.downsampled and [b.step for b in raw.buckets] == list(range(3200, 3231))
    assert raw.buckets[17].max == 50.0


def test_edges_of_the_window(store: TrackingStore, run_id: str) -> None:
    # Negative steps, gaps, a range that does not divide evenly, duplicates at one step.
    points = [("loss", float(s % 7), s, 10 + i) for i, s in enumerate(range(-300, 700, 3))]
    points += [("loss", 100.0, 41, 1), ("loss", -100.0, 41, 99_999)]  # logged around step 41
    store.log_batch(run_id, points)
    check(store, run_id, points, 7)
    check(store, run_id, points, 1)                   # one bucket holds everything
    check(store, run_id, points, 333)
    check(store, run_id, points, 400)                 # fits: raw
    check(store, run_id, points, 10, -1000, 5)       # start before the history: clamped
    check(store, run_id, points, 10, 41, 41)         # a single step, three rows
    check(store, run_id, points, 2, 41, 41)          # ... downsampled to one bucket
    one = store.metric_window(run_id, "loss", points=1, start_step=41, end_step=41)
    assert (one.buckets[0].first, one.buckets[0].last) == (100.0, -100.0)  # by timestamp
    past = store.metric_window(run_id, "loss", points=10, start_step=10_000)
    assert past.count == 0 and past.buckets == () and past.last_step == 699
    between = store.metric_window(run_id, "loss", points=10, start_step=1, end_step=2)
    assert between.count == 0 and between.buckets == ()
    big = [("loss", 1.0, s, 1) for s in (-(2 ** 40), 0, 2 ** 40)]
    other = store.create_run(store.get_or_create_experiment("exp").experiment_id).run_id
    store.log_batch(other, big)
    check(store, other, big, 2)


def test_nan_and_infinities(store: TrackingStore, run_id: str) -> None:
    points = [("loss", float(s), s, s) for s in range(40)]
    points[5] = ("loss", math.nan, 5, 5)
    points[12] = ("loss", math.inf, 12, 12)
    points[13] = ("loss", -math.inf, 13, 13)
    for s in range(30, 40):  # a bucket of NaN only
        points[s] = ("loss", math.nan, s, s)
    store.log_batch(run_id, points)
    window = check(store, run_id, points, 4)  # buckets of 10 steps
    first, second, _, last = window.buckets
    assert first.nan_count == 1 and first.min == 0.0 and first.max == 9.0
    assert first.first == 0.0 and first.last == 9.0
    assert second.max == math.inf and second.min == -math.inf
    assert last.nan_count == 10 and math.isnan(last.min) and math.isnan(last.max)
    assert math.isnan(last.first) and math.isnan(last.mean)
    raw = check(store, run_id, points, 40)
    assert math.isnan(raw.buckets[5].min) and raw.buckets[5].nan_count == 1


def test_empty_history_and_missing_run(store: TrackingStore, run_id: str) -> None:
    empty = store.metric_window(run_id, "never logged", points=100)
    assert (empty.first_step, empty.last_step, empty.count, empty.buckets) == \
        (None, None, 0, ())
    with pytest.raises(NotFound, match="no run"):
        store.metric_window("0" * 32, "loss", points=100)


@pytest.mark.parametrize("kwargs", [
    {"points": 0}, {"points": MAX_POINTS + 1}, {"points": -5}, {"points": 2.5},
    {"points": 10, "start_step": 9, "end_step": 3}, {"points": 10, "start_step": 1.5},
])
def test_bad_input_is_invalid_input(store: TrackingStore, run_id: str,
                                    kwargs: dict[str, Any]) -> None:
    store.log_batch(run_id, [("loss", 1.0, 0, 0)])
    with pytest.raises(InvalidInput):
        store.metric_window(run_id, "loss", **kwargs)
