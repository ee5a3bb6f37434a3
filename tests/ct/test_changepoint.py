"""Change-point training windows: the most recent change in a right/wrong series (found
near where it is, rarely on a series without one, never closer to an end than min_size),
the policy's ``data.window: changepoint``, and the controller training on the rows since
the change in its champion's errors."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from ratchet.ct.changepoint import (
    best_split,
    error_series,
    most_recent_change,
    threshold,
    window_since_change,
)
from ratchet.ct.gate import GatePolicy
from ratchet.ct.policy import DataPolicy, load_policy, policy_from_dict
from ratchet.errors import InvalidInput
from tests.ct.test_controller import (  # noqa: F401  (fixtures)
    INPUTS,
    LABEL,
    MINUTE,
    MODEL,
    T0,
    Scene,
    bare,
    scene,
)


def bernoulli(rates_and_lengths: list[tuple[float, int]], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(n) < p for p, n in rates_and_lengths]).astype(int)


# ------------------------------------------------------------------ detection
def test_a_change_is_found_near_where_it_is() -> None:
    near = 0
    for seed in range(20):
        x = bernoulli([(0.2, 1200), (0.35, 800)], seed)
        change = most_recent_change(x, min_size=50)
        assert change is not None, seed
        near += abs(change.index - 1200) <= 150  # chance runs can move the estimate
        assert change.rate_before < change.rate_after
        assert change.statistic > change.threshold
        assert change.rate_after == pytest.approx(x[change.index:].mean())
    assert near >= 18


def test_the_most_recent_of_two_changes_is_returned() -> None:
    for seed in range(10):
        x = bernoulli([(0.1, 1000), (0.3, 1000), (0.1, 1000)], seed)
        change = most_recent_change(x, min_size=50)
        assert change is not None and abs(change.index - 2000) <= 200, (seed, change)
        assert change.rate_after < 0.15 < change.rate_before


def test_a_series_without_change_rarely_raises_a_false_alarm() -> None:
    """At alpha = 0.05, at least 95% of stationary series give no change point, across
    rates, lengths and minimum sizes (the threshold's bounds are conservative)."""
    settings = [(0.3, 1000, 30), (0.1, 3000, 100), (0.5, 400, 30), (0.25, 7300, 365)]
    for p, n, min_size in settings:
        alarms = sum(most_recent_change(bernoulli([(p, n)], seed), min_size=min_size)
                     is not None for seed in range(200))
        assert alarms <= 10, (p, n, min_size, alarms)


def test_errors_that_come_in_runs_are_not_taken_for_a_change() -> None:
    """Each block of 100 rows has its own error rate around 0.25 (a bad week, a good one)
    but nothing changes for good: the plain likelihood ratio sees a change in 30-50% of
    such series; divided by the between-block dispersion, far fewer."""
    from ratchet.ct.changepoint import dispersion

    corrected = plain = 0
    spreads = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        rates = np.clip(rng.normal(0.25, 0.05, 30), 0.01, 0.99)
        x = (rng.random(3000) < np.repeat(rates, 100)).astype(float)
        corrected += most_recent_change(x, min_size=100) is not None
        split, statistic = best_split(x, 100)
        plain += statistic > threshold(3000, 100)
        spreads.append(dispersion(x, [split], 100))
    assert plain >= 30 and corrected <= 15, (plain, corrected)
    assert np.median(spreads) > 1.5
    independent = [dispersion(bernoulli([(0.25, 3000)], seed).astype(float), [1500], 100)
                   for seed in range(50)]
    assert np.median(independent) < 1.2  # rows without runs: (about) the binomial's


def test_a_stricter_alpha_raises_the_threshold() -> None:
    assert threshold(2000, 50, 0.01) > threshold(2000, 50, 0.05) > threshold(2000, 50, 0.2)
    # never below a single split's chi-squared quantile (3.84 at 0.05): it searches many
    assert threshold(2000, 50, 0.05) > 3.84
    # more candidate splits, a higher bar
    assert threshold(10_000, 30) > threshold(1_000, 30)


def test_each_side_of_a_change_keeps_min_size_rows() -> None:
    x = np.r_[np.zeros(480, dtype=int), np.ones(20, dtype=int)]  # wrong only at the end
    change = most_recent_change(x, min_size=50)
    assert change is not None and change.index == 450  # as close to the end as allowed
    early = np.r_[np.ones(10, dtype=int), np.zeros(490, dtype=int)]
    found = most_recent_change(early, min_size=50)
    assert found is None or 50 <= found.index <= 450
    for seed in range(20):
        series = bernoulli([(0.1, 300), (0.6, 40), (0.1, 60)], seed)
        change = most_recent_change(series, min_size=80)
        assert change is None or 80 <= change.index <= len(series) - 80
    assert most_recent_change(np.ones(99, dtype=int), min_size=50) is None  # too short


def test_the_best_split_is_the_likelihood_ratio_maximum() -> None:
    x = bernoulli([(0.3, 70), (0.7, 50)], 3)

    def loglik(s: np.ndarray) -> float:
        k, m = s.sum(), len(s)
        return sum(c * math.log(c / m) for c in (k, m - k) if c)

    brute = {t: 2 * (loglik(x[:t]) + loglik(x[t:]) - loglik(x)) for t in range(10, 111)}
    split, statistic = best_split(x.astype(float), 10)
    assert split == max(brute, key=lambda t: brute[t])
    assert statistic == pytest.approx(brute[split])


@pytest.mark.parametrize("errors, kwargs, message", [
    ([0, 1, 2], {}, "0/1"),
    ([0.0, float("nan")], {}, "0/1"),
    ([[0, 1], [1, 0]], {}, "1-d"),
    (["a", "b"], {}, "non-numbers"),
    ([0, 1] * 50, {"min_size": 0}, "min_size"),
    ([0, 1] * 50, {"alpha": 1.5}, "alpha"),
])
def test_bad_input_is_named(errors: list, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        most_recent_change(errors, **kwargs)


def test_error_series_matches_labels_to_classes_and_regressors_by_median() -> None:
    # labels as booleans, answers as 0/1 (as a logged feedback column may be)
    wrong = error_series([True, False, True, None], np.array([1, 1, 0, 1]), [0, 1])
    assert wrong.tolist() == [0, 1, 1, 1]  # a missing label counts as wrong
    assert error_series(["a", "b"], ["a", "c"], ["a", "b"]).tolist() == [0, 1]
    assert error_series([1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 3.0, 8.0], None).tolist() == \
        [0, 1, 0, 1]
    with pytest.raises(InvalidInput, match="2 labels but 1 answers"):
        error_series([0, 1], [0], [0, 1])


def test_the_window_is_the_rows_since_the_change_within_its_bounds() -> None:
    x = bernoulli([(0.1, 2000), (0.5, 600)], 1)
    rows, change = window_since_change(x, rows=1500, smallest=300, min_size=100)
    assert change is not None and rows == len(x) - change.index
    assert abs(rows - 600) <= 100
    # a change more recent than the smallest window: the smallest window
    rows, change = window_since_change(x, rows=1500, smallest=1000, min_size=100)
    assert change is not None and rows == 1000
    # at most rows
    assert window_since_change(x, rows=400, smallest=300, min_size=100)[0] == 400
    # no change (or too few rows to look): the default window, rows
    flat = bernoulli([(0.2, 2000)], 2)
    assert window_since_change(flat, rows=1500, smallest=300, min_size=100) == (1500, None)
    assert window_since_change(x[:150], rows=1500, smallest=300, min_size=100) == \
        (1500, None)


# ------------------------------------------------------------------ policy
def test_the_policy_reads_a_changepoint_window(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("model: churn\npipeline: flows:training\n"
                    "data: {rows: 3000, holdout: 300, window: changepoint, "
                    "min_window: 900}\n")
    policy = load_policy(path)
    assert policy.data.window == "changepoint" and policy.data.smallest_window == 900
    assert policy_from_dict(policy.to_dict()) == policy
    assert DataPolicy().window == "newest"  # the default is unchanged
    # default smallest window: twice the holdout, at least min_rows, at most rows
    assert DataPolicy(rows=3000, holdout=300, window="changepoint").smallest_window == 600
    assert DataPolicy(rows=3000, holdout=100, min_rows=500,
                      window="changepoint").smallest_window == 500
    assert DataPolicy(rows=500, holdout=300, window="changepoint").smallest_window == 500


@pytest.mark.parametrize("data, message", [
    ({"window": "recent"}, "data.window must be one of newest, changepoint"),
    ({"window": "changepoint", "min_window": 1000}, "data.min_window (1000) must be larger "
     "than data.holdout (1000)"),
    ({"window": "changepoint", "min_window": 20_000}, "at most data.rows (10000)"),
    ({"window": "changepoint", "min_window": 1500, "min_rows": 2000}, "at least data.min_rows"),
    ({"window": "changepoint", "min_window": "2000"}, "data.min_window must be an int"),
    ({"min_window": 2000}, "data.min_window applies to window: changepoint only"),
])
def test_window_mistakes_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        policy_from_dict({"model": "churn", "pipeline": "flows:training", "data": data},
                         "p.yaml")


# ------------------------------------------------------------------ controller
@pytest.fixture
def served(request: pytest.FixtureRequest) -> Scene:
    """test_controller's scene: v1, trained on the first concept, is the champion."""
    found: Scene = request.getfixturevalue("scene")
    return found


def _data_event(at: Scene) -> dict:
    events = [e for e in at.registry.tracking.workspace.stores.ct_events.history(MODEL)
              if e.kind == "data"]
    assert events, "no data event"
    return {"summary": events[-1].summary, **events[-1].evidence}


def test_the_controller_trains_on_the_rows_since_the_change(served: Scene) -> None:
    """600 rows of the champion's concept (it is right), then 500 of a flipped one (it is
    wrong): the window is the 500 rows since the change, not the newest data.rows."""
    served.serve(600)
    served.serve(500, flipped=True)
    served.request("retrain")
    data = DataPolicy(label=LABEL, rows=1000, holdout=150, min_rows=200,
                      window="changepoint")
    result = served.controller(data=data, gate=GatePolicy(margin=0.5, min_holdout=100)).tick()
    state = served.store.get(MODEL)
    assert state is not None and state.cycle == 1, result.describe()
    cycle = state.data.get("cycle") or state.data["last_cycle"]  # the gate may pass
    event = _data_event(served)
    window = event["window"]
    assert window["rule"] == "changepoint" and window["scanned"] == 1100
    assert abs(window["index"] - 600) <= 5
    assert window["rate_before"] < 0.1 and window["rate_after"] > 0.9
    since = 1100 - window["index"]
    assert cycle["rows"] == {"train": since - 150, "holdout": 150}
    assert window["at"].startswith("2024-05-01")
    assert abs(np.datetime64(window["at"][:19]).astype("datetime64[ms]").astype(int)
               - (T0 + 600 * MINUTE)) <= 5 * MINUTE
    assert "since a change point at 2024-05-01" in event["summary"]
    # every row it trains on is of the new concept
    import ratchet

    train = ratchet.data.get(cycle["train"]).to_pandas()
    rule = (train["x1"] + 0.5 * train["x2"] > 0).astype(int)
    assert (train[LABEL].astype(int) == 1 - rule).mean() > 0.98
    assert list(train.columns) == [*INPUTS, LABEL]


def test_without_a_change_the_controller_keeps_the_default_window(served: Scene) -> None:
    served.serve(700)
    served.request("retrain")
    data = DataPolicy(label=LABEL, rows=500, holdout=150, min_rows=200,
                      window="changepoint")
    served.controller(data=data, gate=GatePolicy(margin=0.5, min_holdout=100)).tick()
    state = served.store.get(MODEL)
    assert state is not None
    assert state.data["last_cycle"]["rows"] == {"train": 350, "holdout": 150}
    event = _data_event(served)
    assert event["window"]["note"] == "no change point: default window"
    assert "index" not in event["window"] and event["window"]["scanned"] == 700
    assert "(no change point: default window)" in event["summary"]


def test_a_change_found_earlier_holds_when_the_new_champion_cannot_show_it(
        served: Scene) -> None:
    """Cycle 1 finds the change at row ~600. The next champion errs as often before the
    change as after it (it learned nothing), so its own errors show no change: the window
    still starts at the change found before, not the default newest data.rows."""
    import pandas as pd

    from ratchet.ct.controller import CHAMPION
    from tests.ct.test_controller import frame, train

    served.serve(600)
    served.serve(500, flipped=True)
    served.request("retrain")
    data = DataPolicy(label=LABEL, rows=1000, holdout=150, min_rows=200,
                      window="changepoint")
    gate = GatePolicy(margin=0.99, min_holdout=100)  # nothing passes: the cycle ends
    served.controller(data=data, gate=gate).tick()
    first = _data_event(served)["window"]
    assert abs(first["index"] - 600) <= 5 and not first.get("remembered")
    coin = frame(400, seed=7)
    coin[LABEL] = np.random.default_rng(7).integers(0, 2, 400)  # labels it cannot learn
    guesser = train(served.deployments, coin)
    served.registry.set_alias(MODEL, CHAMPION, guesser, reason="test: a guesser")
    served.serve(300, flipped=True)
    served.request("retrain")
    served.controller(data=data, gate=gate).tick()
    event = _data_event(served)
    window = event["window"]
    assert window["remembered"] is True and window["at"] == first["at"]
    assert window["rows_since"] == 1400 - first["index"]
    state = served.store.get(MODEL)
    assert state is not None
    assert state.data["last_cycle"]["rows"] == {"train": window["rows_since"] - 150,
                                                "holdout": 150}
    assert "found in an earlier cycle" in event["summary"]
    assert pd.Timestamp(window["at"]) == pd.Timestamp(first["at"])
