"""backtest(): a synthetic daily stream whose concept flips halfway, replayed through the
real controller (performance-drop trigger, gate, shadow, canary) with a simulated clock,
against never retraining, a fixed schedule and the naive baselines. Also: its input
checks, and that it leaves the process's RATCHET_* environment as it found it."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import ratchet
from ratchet.ct.backtesting import (
    LOOP,
    MAJORITY,
    NEVER,
    PERIODS,
    SCHEDULED,
    YESTERDAY,
    BacktestResult,
    accuracy_by_period,
    backtest,
)
from ratchet.ct.gate import GatePolicy
from ratchet.ct.policy import CTPolicy, DataPolicy, MonitorPolicy, RolloutPolicy, Trigger
from ratchet.errors import InvalidInput
from ratchet.workspace import Workspace

MODEL, LABEL, TIME = "flip", "y", "day"
INPUTS = ["x1", "x2"]
ROWS, FLIP, START = 3_000, 1_500, 1_000
ENV = ("RATCHET_HOME", "RATCHET_DB", "RATCHET_ARTIFACTS")


# ------------------------------------------------------------------ the training pipeline
@ratchet.step(dataset={"output": "flip-train"})
def training_window(data: str) -> pd.DataFrame:
    return ratchet.data.get(data).to_pandas()


@ratchet.step(model={"output": MODEL})
def fit(train: pd.DataFrame) -> Any:
    model = LogisticRegression()
    model.fit(train[INPUTS], train[LABEL].astype(int))
    return model


@ratchet.pipeline(experiment="flip-ct")
def training(data: str) -> Any:
    return fit(training_window(data))


# ------------------------------------------------------------------ the stream
def stream(n: int = ROWS, flip: int = FLIP, seed: int = 0) -> pd.DataFrame:
    """One row a day; the label rule inverts at row ``flip`` (an abrupt concept change)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    rule = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    y = np.where(np.arange(n) < flip, rule, 1 - rule)
    days = pd.date_range("2015-01-01", periods=n, freq="D", tz="UTC")
    frame = pd.DataFrame({TIME: days, "x1": x[:, 0], "x2": x[:, 1], LABEL: y})
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)  # any order


def policy() -> CTPolicy:
    return CTPolicy(
        model=MODEL, pipeline="tests.ct.test_backtest:training",
        # A drop vs the champion's own baseline notices the change; the floor catches a
        # champion that was weak from its first window (its baseline is low too).
        triggers=(Trigger("performance", metric="accuracy", drop=0.1),
                  Trigger("performance", metric="accuracy", below=0.8), Trigger("manual")),
        cooldown=timedelta(0), max_retrains_per_day=1,
        gate=GatePolicy(metric="accuracy", margin=0.0, min_holdout=50),
        rollout=RolloutPolicy(shadow_requests=20, canary_percent=50, canary_requests=10,
                              min_labels=5, max_accuracy_drop=0.1,
                              max_prediction_shift=None),
        data=DataPolicy(label=LABEL, rows=120, holdout=50, lookback=timedelta(days=3_000),
                        min_rows=100),
        monitor=MonitorPolicy(rows=60, min_rows=30, multivariate=False))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestResult, dict[str, Any]]:
    """One backtest for the whole module, with sentinel RATCHET_* values set before it, and
    every model load counted (the registry's loader, wrapped: each call still loads)."""
    import ratchet.packaging

    base = tmp_path_factory.mktemp("backtest")
    loads: Counter[str] = Counter()
    real_load = ratchet.packaging.load_model

    def counting_load(directory: Any, **kwargs: Any) -> Any:
        loads[str(directory)] += 1
        return real_load(directory, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ratchet.packaging, "load_model", counting_load)
        mp.chdir(base)
        sentinels = {"RATCHET_HOME": str(base / "mine"),
                     "RATCHET_DB": f"sqlite:///{base / 'mine' / 'ratchet.db'}"}
        for key in ENV:
            mp.delenv(key, raising=False)
        for key, value in sentinels.items():
            mp.setenv(key, value)
        before = {k: os.environ.get(k) for k in ENV}
        ticks: list[tuple[int, int]] = []
        result = backtest(policy(), stream(), time_column=TIME, start=START, tick="30d",
                          label_delay="1d", work_dir=base / "scratch",
                          progress=lambda done, total: ticks.append((done, total)))
        after = {k: os.environ.get(k) for k in ENV}
    return result, {"before": before, "after": after, "ticks": ticks, "base": base,
                    "loads": loads}


def test_each_model_version_is_loaded_once(run: tuple[BacktestResult, Any]) -> None:
    """Serving, the monitor (each tick), the gate, the canary guard and the judging of
    promotions share one loaded copy of each version: 200+ loads before they did."""
    from ratchet.config import load_settings
    from ratchet.registry import RegistryClient

    result, seen = run
    loads = seen["loads"]
    assert loads and set(loads.values()) == {1}, loads.most_common(3)
    registry = RegistryClient(Workspace(load_settings(env={"RATCHET_HOME": str(result.home)})))
    versions = registry.list_versions(MODEL)
    # Every version was loaded (the loop's and the fixed schedule's), none twice.
    assert len(loads) == len(versions)
    kinds = [e["kind"] for e in result.events]
    assert kinds.count("canary-started") >= 1 and kinds.count("gate") >= 1


def test_the_loop_recovers_from_the_concept_change(run: tuple[BacktestResult, Any]) -> None:
    result, _ = run
    loop, never = result.strategy(LOOP), result.strategy(NEVER)
    assert loop["accuracy"] > never["accuracy"] + 0.2, result.to_markdown()
    assert loop["promotions"] >= 1 and loop["retrains"] >= loop["promotions"]
    assert never["retrains"] == never["promotions"] == 0
    # The replay is the rows from START on; the first champion learned from the rest.
    assert result.rows == ROWS - START and result.home == run[1]["base"] / "scratch"
    # Never retrained: right before the flip, wrong after it.
    assert never["accuracy"] < 0.5
    first, last = result.periods[NEVER][0][1], result.periods[NEVER][-1][1]
    assert first is not None and first > 0.9 and last is not None and last < 0.1
    loop_last = result.periods[LOOP][-1][1]
    assert loop_last is not None and loop_last > 0.8


def test_summary_periods_events_and_promotions_agree(run: tuple[BacktestResult, Any]) -> None:
    result, _ = run
    names = [s["strategy"] for s in result.summary]
    assert names == [LOOP, NEVER, SCHEDULED, MAJORITY, YESTERDAY]
    assert set(result.periods) == set(names)
    lengths = {len(p) for p in result.periods.values()}
    assert lengths == {PERIODS}  # 2,000 days in 24 periods of 84 days: enough points to see
    assert len({tuple(d for d, _ in p) for p in result.periods.values()}) == 1  # same dates
    starts = [pd.Timestamp(d) for d, _ in result.periods[LOOP]]
    assert {b - a for a, b in pairwise(starts)} == {pd.Timedelta(days=84)}
    for s in result.summary:
        assert 0 <= s["accuracy"] <= 1
    kinds = [e["kind"] for e in result.events]
    loop = result.strategy(LOOP)
    assert loop["promotions"] == kinds.count("promoted")
    assert loop["retrains"] == kinds.count("retrained")
    assert loop["rejected"] == kinds.count("rejected")
    assert loop["rolled_back"] == kinds.count("rolled-back")
    assert kinds.count("trigger") >= loop["retrains"]
    promoted = [e for e in result.events if e["kind"] == "promoted"]
    assert 1 <= len(result.promotions) <= len(promoted)
    for judged, event in zip(result.promotions, promoted, strict=False):
        assert judged["version"] == event["evidence"]["version"]
        assert judged["previous"] == event["evidence"]["previous"]
        assert judged["at"] == event["at"] and judged["rows"] > 0
        assert judged["lowered"] == (judged["accuracy_new"] < judged["accuracy_old"])
    # The first promotion replaced the initial champion, after the concept changed; the
    # newest champion is far better than the one it replaced on the rows that followed.
    first, last = result.promotions[0], result.promotions[-1]
    assert first["previous"] == 1 and first["at"] > "2019-02-09"  # row 1,500: 2019-02-10
    assert last["accuracy_new"] > last["accuracy_old"] + 0.5 and not last["lowered"]
    # Every event is dated inside the replay, in order.
    dates = [e["at"] for e in result.events]
    assert dates == sorted(dates) and dates[0] >= "2017-09-27"  # row 1,000
    as_dict = result.to_dict()
    assert as_dict["rows"] == result.rows and len(as_dict["events"]) == len(result.events)
    assert as_dict["policy"]["model"] == MODEL


def test_progress_is_reported_per_tick(run: tuple[BacktestResult, Any]) -> None:
    ticks = run[1]["ticks"]
    assert len(ticks) == 67  # 2,000 days in 30-day ticks
    assert all(total == ROWS - START for _, total in ticks)
    assert [done for done, _ in ticks] == sorted(done for done, _ in ticks)
    assert ticks[-1][0] == ROWS - START


def test_markdown_and_html(run: tuple[BacktestResult, Any], tmp_path: Path) -> None:
    result, _ = run
    table = result.to_markdown().splitlines()
    assert table[0].startswith("| strategy | accuracy |")
    assert len(table) == 2 + len(result.summary)
    loop = result.strategy(LOOP)
    assert table[2] == (f"| loop | {loop['accuracy']:.4f} | {loop['retrains']} | "
                        f"{loop['promotions']} | {loop['rejected']} | {loop['rolled_back']} |")
    path = result.write_html(tmp_path / "report" / "backtest.html", title="flip backtest")
    assert path == tmp_path / "report" / "backtest.html"
    page = path.read_text(encoding="utf-8")
    assert "flip backtest" in page
    for name in (LOOP, NEVER, SCHEDULED, MAJORITY, "yesterday"):
        assert name in page, name
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?https?://", page, re.IGNORECASE)
    assert "promoted" in page
    # The accuracy plot marks each promotion where it happened.
    data = _plot_data(page)
    promoted = [e["at"] for e in result.events if e["kind"] == "promoted"]
    marks = next(t for t in data if t["name"].startswith("promotion"))
    assert marks["name"] == f"promotion ({len(promoted)})"
    assert [x for x in marks["x"] if x][::2] == promoted
    assert [t["name"] for t in data][:len(result.summary)] == [s["strategy"]
                                                                for s in result.summary]


def _plot_data(page: str) -> list[dict[str, Any]]:
    import json

    call = re.search(r'Plotly\.newPlot\(\s*"ratchet-plot-1",\s*', page)
    assert call is not None
    data, _ = json.JSONDecoder().raw_decode(page, call.end())
    return list(data)


def test_periods_of_a_given_length_never_end_on_a_sliver() -> None:
    day = 86_400_000
    times = np.arange(0, 400) * day                         # 400 days, one row a day
    truth = np.zeros(400, dtype=int)
    never = np.where(np.arange(400) < 395, 1, 0)             # wrong, except the last 5 days
    periods = accuracy_by_period(times, truth, {NEVER: never}, 100 * day)
    assert [d for d, _ in periods[NEVER]] == ["1970-01-01", "1970-04-11", "1970-07-20",
                                              "1970-10-28"]
    assert periods[NEVER][-1][1] == pytest.approx(5 / 100)   # 100 days, not 1.0 on 5 rows
    longer = accuracy_by_period(times, truth, {NEVER: never}, 130 * day)
    assert [a for _, a in longer[NEVER]][-1] == pytest.approx(5 / 140)  # 10 days joined
    kept = accuracy_by_period(times[:360], truth[:360], {NEVER: never[:360]}, 100 * day)
    assert len(kept[NEVER]) == 4                             # 60 days: over half, its own
    auto = accuracy_by_period(times, truth, {NEVER: never})
    assert len(auto[NEVER]) == PERIODS - 1 or len(auto[NEVER]) == PERIODS
    assert accuracy_by_period([], [], {NEVER: []}) == {NEVER: []}
    with pytest.raises(InvalidInput, match="period must be positive"):
        accuracy_by_period(times, truth, {NEVER: never}, 0)


def test_a_temporary_scratch_store_is_removed_also_after_a_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.chdir(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))      # where mkdtemp makes folders
    monkeypatch.setenv("TMPDIR", str(temp))                  # (else in memory, /dev/shm)
    small = replace(policy(), triggers=(Trigger("manual"),))
    result = backtest(small, stream(300, 150), time_column=TIME, start=150, tick="30d")
    assert result.home is None and result.to_dict()["home"] is None
    assert result.strategy(LOOP)["accuracy"] > 0
    assert list(temp.iterdir()) == []                        # nothing left behind
    broken = replace(small, pipeline="tests.ct.test_backtest:no_such_pipeline")
    with pytest.raises(Exception, match="no_such_pipeline"):
        backtest(broken, stream(300, 150), time_column=TIME, start=150, tick="30d")
    assert list(temp.iterdir()) == []
    assert all(k not in os.environ for k in ENV)


def test_the_environment_is_as_it_was(run: tuple[BacktestResult, Any]) -> None:
    seen = run[1]
    assert seen["after"] == seen["before"]
    assert seen["before"]["RATCHET_ARTIFACTS"] is None  # unset before, unset after
    assert seen["before"]["RATCHET_HOME"] is not None


def test_the_scratch_store_holds_the_timeline(run: tuple[BacktestResult, Any]) -> None:
    from ratchet.config import load_settings
    from ratchet.registry import RegistryClient

    result, _ = run
    registry = RegistryClient(Workspace(load_settings(
        env={"RATCHET_HOME": str(result.home)})))
    champion = registry.get_model(MODEL).aliases["champion"]
    promoted = [e for e in result.events if e["kind"] == "promoted"]
    assert champion == promoted[-1]["evidence"]["version"]
    # The caller's own store (RATCHET_HOME at the time) got none of it.
    mine = run[1]["base"] / "mine"
    if (mine / "ratchet.db").exists():
        theirs = RegistryClient(Workspace(load_settings(env={"RATCHET_HOME": str(mine)})))
        assert theirs.list_models() == []
        assert theirs.tracking.workspace.stores.ct_events.history(MODEL) == []


def test_the_monitor_reads_a_versions_reference_once(run: tuple[BacktestResult, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``monitor_logged(references=)`` (the backtest's world keeps one per replay): the
    reference data of a model version is read, and the model's answers on it computed,
    once across runs; every run's result is the same as without it."""
    from datetime import UTC, datetime

    import ratchet.monitoring.monitor as monitor
    from ratchet.config import load_settings
    from ratchet.registry import RegistryClient
    from ratchet.serving.deployments import DeploymentClient

    result, _ = run
    ws = Workspace(load_settings(env={"RATCHET_HOME": str(result.home)}))
    version = ws.client(RegistryClient).get_model(MODEL).aliases["champion"]
    deployments = ws.client(DeploymentClient)
    reads: Counter[tuple[str, int]] = Counter()
    real_reference = monitor._reference

    def counted(registry: Any, name: str, v: int, *args: Any) -> Any:
        reads[(name, v)] += 1
        return real_reference(registry, name, v, *args)

    monkeypatch.setattr(monitor, "_reference", counted)
    rows = stream(200, flip=100, seed=3)
    kept: dict[Any, Any] = {}
    for window in (rows.iloc[:120], rows.iloc[80:]):   # the second one drifts (flipped)
        logged = pd.DataFrame({
            "timestamp": window[TIME].to_numpy(), "variant": "primary", "status": "ok",
            "input.x1": window["x1"].to_numpy(), "input.x2": window["x2"].to_numpy(),
            "output.prediction": (window["x1"] > 0).astype(int).to_numpy(),
            "feedback": window[LABEL].to_numpy()})
        start, end = datetime(2015, 1, 1, tzinfo=UTC), datetime(2023, 1, 1, tzinfo=UTC)
        runs = [monitor.monitor_logged("flip", logged, start=start, end=end,
                                       deployments=deployments, store=False, report=False,
                                       model=(MODEL, version), references=memo).result
                for memo in (None, kept)]
        for r in runs:
            r.pop("created_at")
        assert runs[0] == runs[1]
        assert runs[0]["reference"]["dataset"] == "flip-train"
    assert reads == {(MODEL, version): 3}   # twice without the mapping, once with it
    # (the version's stored label-free estimator is kept there too, when it has one)
    assert {"reference", "answers"} <= {k[0] for k in kept}


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(("change", "kwargs", "message"), [
    (lambda f: f.drop(columns=[TIME]), {}, "no column 'day'"),
    (lambda f: f.drop(columns=[LABEL]), {}, "no column 'y'"),
    (lambda f: f.assign(y=f[LABEL].where(f.index != 7)), {}, "'y' has missing labels"),
    (lambda f: f, {"label": "rain"}, "no column 'rain'"),
    (lambda f: f.assign(day=f[TIME].astype(str).where(f.index != 3, "soon")), {},
     "'day', row .*'soon' is not a time"),
    (lambda f: f, {"start": 0}, "start 0 leaves no rows"),
    (lambda f: f, {"start": 200}, "start 200 leaves no rows"),
    (lambda f: f, {"start": "2030-01-01"}, "leaves no rows"),
    (lambda f: f, {"start": "1990-01-01"}, "leaves no rows"),
    (lambda f: f, {"start": "next tuesday"}, "neither a time nor a row number"),
    (lambda f: f, {"period": "fortnight"}, "period must be year, quarter or month"),
    (lambda f: f, {"period": "1y"}, "period must be year, quarter or month"),
    (lambda f: f, {"features": ["x1", "x3"]},
     r"features: the history has no column 'x3'; its columns: day, x1, x2, y"),
    (lambda f: f, {"drop": ["z"]}, "drop: the history has no column 'z'"),
    (lambda f: f, {"features": "x1", "drop": "x2"}, "give features or drop, not both"),
])
def test_bad_input_names_the_problem(change: Any, kwargs: dict[str, Any], message: str,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    history = change(stream(200, 100))
    arguments: dict[str, Any] = {"time_column": TIME, "start": 100,
                                 "work_dir": tmp_path / "scratch", **kwargs}
    with pytest.raises(InvalidInput, match=message):
        backtest(policy(), history, **arguments)
    assert not (tmp_path / "scratch").exists()  # refused before any work
    assert all(k not in os.environ for k in ENV)


# ------------------------------------------------------------------ issue 15: inputs, periods,
# the delayed "yesterday's label", trust
@ratchet.step(dataset={"output": "every-train"})
def every_window(data: str) -> pd.DataFrame:
    return ratchet.data.get(data).to_pandas()


@ratchet.step(model={"output": "every"})
def fit_every_column(train: pd.DataFrame) -> Any:
    """Fits on whatever columns the backtest hands it: the inputs it chose."""
    return LogisticRegression().fit(train.drop(columns=[LABEL]), train[LABEL].astype(int))


@ratchet.pipeline(experiment="every-ct")
def training_every(data: str) -> Any:
    return fit_every_column(every_window(data))


class Wrapped:
    """A model only cloudpickle can save (python flavor): loading it runs code."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.feature_names_in_ = inner.feature_names_in_

    def predict(self, X: pd.DataFrame) -> Any:
        return self.inner.predict(X[list(self.feature_names_in_)])


@ratchet.step(model={"output": "wrapped"})
def fit_wrapped(train: pd.DataFrame) -> Any:
    return Wrapped(LogisticRegression().fit(train[INPUTS], train[LABEL].astype(int)))


@ratchet.pipeline(experiment="wrapped-ct")
def training_wrapped(data: str) -> Any:
    return fit_wrapped(every_window(data))


@ratchet.step(model={"output": "kind"})
def fit_categorical_hgb(train: pd.DataFrame) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype")
    return model.fit(train.drop(columns=[LABEL]), train[LABEL])


@ratchet.pipeline(experiment="kind-ct")
def training_categorical(data: str) -> Any:
    return fit_categorical_hgb(every_window(data))


def quiet(model: str, pipeline: str) -> CTPolicy:
    """The flip policy with only a manual trigger: one training run, no retrains."""
    return replace(policy(), model=model, pipeline=f"tests.ct.test_backtest:{pipeline}",
                   triggers=(Trigger("manual"),))


def with_extra_columns(n: int = 300, flip: int = 150) -> pd.DataFrame:
    rows = stream(n, flip)
    rng = np.random.default_rng(5)
    return rows.assign(noise=rng.normal(size=n), leak=rows[LABEL] * 2.0 - 1.0)


def lagged_accuracy(history: pd.DataFrame, start: int, lag: int) -> float:
    """Accuracy of answering row i with the label of row i - lag (daily rows, in time)."""
    y = history.sort_values(TIME)[LABEL].to_numpy()
    return float(np.mean(y[start:] == y[start - lag:len(y) - lag]))


def inputs_of(home: Path, model: str, version: int = 1) -> list[str]:
    from ratchet.config import load_settings
    from ratchet.registry import RegistryClient

    registry = RegistryClient(Workspace(load_settings(env={"RATCHET_HOME": str(home)})))
    loaded = registry.load(f"models:/{model}/{version}")
    assert loaded.signature is not None
    return [c.name for c in loaded.signature.inputs]


def test_yesterdays_label_is_the_newest_that_had_arrived() -> None:
    from ratchet.ct.backtesting import newest_known_labels

    day = 86_400_000
    times = np.arange(20) * day
    labels = np.array(list("abcdefghijklmnopqrst"), dtype=object)
    week = newest_known_labels(times, labels, 10, 7 * day)
    assert list(week) == list(labels[3:13])                 # 7 days old, not yesterday's
    assert list(newest_known_labels(times, labels, 10, day)) == list(labels[9:19])
    # No delay: the previous row's label, never the row's own (nor a same-time row's after).
    assert list(newest_known_labels(times, labels, 10, 0)) == list(labels[9:19])
    same = np.array([0, 0, 5, 5, 5, 9]) * day
    assert list(newest_known_labels(same, labels[:6], 2, 0)) == ["b", "c", "d", "e"]
    # A label arrives exactly label_delay after its row: at that moment it is known.
    assert list(newest_known_labels(times, labels, 18, 2 * day + 1)) == ["p", "q"]
    # Irregular times: the newest row at least a week older.
    irregular = np.array([0, 1, 2, 10, 11, 30]) * day
    assert list(newest_known_labels(irregular, labels[:6], 3, 7 * day)) == ["c", "c", "e"]
    # Before any label has arrived: no answer (counted wrong).
    assert list(newest_known_labels(times, labels, 1, 5 * day)) == [None] * 4 + list(
        labels[:15])


def test_yesterdays_label_with_a_one_day_delay_is_the_previous_days(
        run: tuple[BacktestResult, Any]) -> None:
    result, _ = run
    expected = lagged_accuracy(stream(), START, 1)
    assert result.strategy(YESTERDAY)["accuracy"] == pytest.approx(expected)


def test_calendar_periods_follow_the_calendar() -> None:
    days = pd.date_range("2016-01-01", "2018-12-31", freq="D", tz="UTC")   # 2016: leap
    times = ((days - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy()
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, len(days))
    answer = np.where(rng.random(len(days)) < 0.3, 1 - truth, truth)
    frame = pd.DataFrame({"right": truth == answer}, index=days)
    for unit, rule, count in (("year", "YS", 3), ("quarter", "QS", 12), ("month", "MS", 36)):
        got = accuracy_by_period(times, truth, {LOOP: answer}, unit)[LOOP]
        expected = frame["right"].resample(rule).mean()
        assert len(got) == count, (unit, got[-2:])
        assert [d for d, _ in got] == [d.strftime("%Y-%m-%d") for d in expected.index]
        assert [a for _, a in got] == pytest.approx(expected.to_list())
    # The same years in 365-day periods start on 2016-12-31: not calendar years.
    fixed = accuracy_by_period(times, truth, {LOOP: answer}, 365 * 86_400_000)[LOOP]
    assert [d for d, _ in fixed] == ["2016-01-01", "2016-12-31", "2017-12-31"]
    # Text durations still work, as do the words in any case.
    assert accuracy_by_period(times, truth, {LOOP: answer}, "365d")[LOOP] == fixed
    assert accuracy_by_period(times, truth, {LOOP: answer}, " Year ")[LOOP] == \
        accuracy_by_period(times, truth, {LOOP: answer}, "year")[LOOP]


def test_calendar_periods_join_slivers_at_either_end() -> None:
    days = pd.date_range("2016-12-28", "2019-01-03", freq="D", tz="UTC")
    times = ((days - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy()
    truth = np.zeros(len(days), dtype=int)
    answer = (days.year == 2016).astype(int)        # wrong only on the first four days
    got = accuracy_by_period(times, truth, {NEVER: answer}, "year")[NEVER]
    assert [d for d, _ in got] == ["2017-01-01", "2018-01-01"]   # 4 + 3 days joined
    assert got[0][1] == pytest.approx(365 / 369) and got[1][1] == 1.0
    half = pd.date_range("2017-05-01", "2018-09-30", freq="D", tz="UTC")  # over half: kept
    kept = ((half - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy()
    assert [d for d, _ in accuracy_by_period(kept, np.zeros(len(half)),
                                             {NEVER: np.zeros(len(half))}, "year")[NEVER]] \
        == ["2017-01-01", "2018-01-01"]


@pytest.mark.parametrize("value", ["fortnight", "1y", "12 months", "0", "-3d", "yearly", 0])
def test_a_period_that_is_neither_a_calendar_unit_nor_a_duration(value: Any) -> None:
    from ratchet.ct.backtesting import parse_period

    with pytest.raises(InvalidInput, match=r"^--period must be year, quarter or month "
                                           r"\(calendar periods\) or a duration"):
        parse_period(value, "--period")
    with pytest.raises(InvalidInput, match=r"^period must be year, quarter or month"):
        accuracy_by_period([0, 1], [0, 0], {LOOP: [0, 0]}, value if value else "0")
    assert parse_period("MONTH") == "month" and parse_period("90d") == 90 * 86_400_000
    assert parse_period(None) is None and parse_period(timedelta(hours=1)) == 3_600_000


def test_choosing_the_inputs() -> None:
    from ratchet.ct.backtesting import choose_inputs

    columns = ["day", "x1", "x2", "noise", "y"]
    assert choose_inputs(columns, "day", "y") == ["x1", "x2", "noise"]      # the default
    assert choose_inputs(columns, "day", "y", features=["x2", "x1"]) == ["x2", "x1"]
    assert choose_inputs(columns, "day", "y", features="x1, x2,") == ["x1", "x2"]
    assert choose_inputs(columns, "day", "y", drop="noise") == ["x1", "x2"]
    assert choose_inputs(columns, "day", "y", drop=["noise", "y"]) == ["x1", "x2"]
    wrong: list[tuple[dict[str, Any], str]] = [
             ({"features": ["x1", "nope"]}, "features: the history has no column 'nope'; "
              "its columns: day, x1, x2, noise, y"),
             ({"drop": "gone,x1"}, "drop: the history has no column 'gone'"),
             ({"features": ["x1"], "drop": ["x2"]}, "give features or drop, not both"),
             ({"features": ["x1", "y"]}, "features: 'y' is the label column"),
             ({"features": ["day"]}, "features: 'day' is the time column"),
             ({"features": ""}, "features leaves the model no input column"),
             ({"drop": ["x1", "x2", "noise"]}, "drop leaves the model no input column")]
    for kwargs, message in wrong:
        with pytest.raises(InvalidInput, match=re.escape(message)):
            choose_inputs(columns, "day", "y", **kwargs)
    with pytest.raises(InvalidInput, match=re.escape("--features: the history has no column")):
        choose_inputs(columns, "day", "y", features="x9", names=("--features", "--drop"))


def test_inputs_label_delay_and_calendar_periods_in_a_backtest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    history = with_extra_columns(500, 250)
    common: dict[str, Any] = {"time_column": TIME, "start": 250, "tick": "30d",
                              "schedule": None}
    # Default: every column but the time and the label, the leaky one included.
    every = backtest(quiet("every", "training_every"), history, label_delay="7d",
                     period="month", work_dir=tmp_path / "every", **common)
    assert inputs_of(tmp_path / "every", "every") == ["x1", "x2", "noise", "leak"]
    assert every.strategy(LOOP)["accuracy"] > 0.97     # the leak answers
    # Yesterday's label is a week old with a 7-day delay: the newest a real system has.
    assert every.strategy(YESTERDAY)["accuracy"] == pytest.approx(
        lagged_accuracy(history, 250, 7))
    assert every.strategy(YESTERDAY)["accuracy"] != pytest.approx(
        lagged_accuracy(history, 250, 1))
    # 2015-09-08 .. 2016-05-14 by calendar month: May's 14 days join April.
    starts = [d for d, _ in every.periods[LOOP]]
    assert starts == [f"{y}-{m:02d}-01" for y, m in ((2015, 9), (2015, 10), (2015, 11),
                                                     (2015, 12), (2016, 1), (2016, 2),
                                                     (2016, 3), (2016, 4))]
    chosen = backtest(quiet("every", "training_every"), history, features=["x1", "x2"],
                      work_dir=tmp_path / "chosen", **common)
    assert inputs_of(tmp_path / "chosen", "every") == ["x1", "x2"]
    dropped = backtest(quiet("every", "training_every"), history, drop="leak,noise",
                       work_dir=tmp_path / "dropped", **common)
    assert inputs_of(tmp_path / "dropped", "every") == ["x1", "x2"]
    for result in (chosen, dropped):   # the flipped half: no leak to answer with
        assert result.strategy(LOOP)["accuracy"] < 0.2


def test_a_model_that_needs_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ratchet.errors import Untrusted

    monkeypatch.chdir(tmp_path)
    common: dict[str, Any] = {"time_column": TIME, "start": 150, "tick": "30d"}
    with pytest.raises(Untrusted, match=r"saved with cloudpickle.*own pipeline: give "
                                        r"trust=True \(ratchet ct backtest --trust\)"):
        backtest(quiet("wrapped", "training_wrapped"), stream(300, 300),
                 work_dir=tmp_path / "refused", **common)
    trusted = backtest(quiet("wrapped", "training_wrapped"), stream(300, 300),
                       schedule="60d", trust=True, **common)
    # Served, monitored and retrained on a schedule (in the second process) with trust.
    assert trusted.strategy(LOOP)["accuracy"] > 0.9
    assert trusted.strategy(SCHEDULED)["retrains"] == 2
    assert trusted.strategy(SCHEDULED)["accuracy"] > 0.9


def test_categorical_hist_gradient_boosting_needs_no_trust(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trained by the pipeline on a pandas categorical column, stored as a dataset version,
    registered, then served, monitored and judged: every load without trust."""
    monkeypatch.chdir(tmp_path)
    history = stream(300, 300)
    kind = np.where(history["x1"] > 0.5, "high", np.where(history["x1"] < -0.5, "low", "mid"))
    history = history.assign(kind=pd.Categorical(kind), x1=0.0)   # x1 only as a category
    result = backtest(quiet("kind", "training_categorical"), history, time_column=TIME,
                      start=150, tick="30d", schedule="60d", features=["kind", "x2"])
    assert result.strategy(LOOP)["accuracy"] > 0.7
    assert result.strategy(LOOP)["accuracy"] == pytest.approx(
        result.strategy(NEVER)["accuracy"])   # served answers = the model's own
    assert result.strategy(SCHEDULED)["retrains"] == 2


# ------------------------------------------------------------------ the command line
CLI_POLICY = """\
model: every
pipeline: tests.ct.test_backtest:training_every
triggers: [manual]
gate: {metric: accuracy, margin: 0.0, min_holdout: 50}
data: {label: y, rows: 120, holdout: 50, lookback: 3000d, min_rows: 100}
monitor: {rows: 60, min_rows: 30, multivariate: false}
"""


@pytest.fixture
def cli_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / ".ratchet"))
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "policy.yaml").write_text(CLI_POLICY)
    with_extra_columns(400, 400).to_parquet(tmp_path / "history.parquet")
    return tmp_path


def ct_backtest(*args: str) -> Any:
    from typer.testing import CliRunner

    from ratchet.cli.main import app

    return CliRunner().invoke(app, ["ct", "backtest", "policy.yaml", "--data",
                                    "history.parquet", "--time-column", TIME, "--start",
                                    "250", *args], catch_exceptions=False)


def test_cli_help_states_the_default_inputs_and_the_risk_of_trust(cli_project: Path) -> None:
    from typer.testing import CliRunner

    from ratchet.cli.main import app

    text = " ".join(CliRunner().invoke(app, ["ct", "backtest", "--help"],
                                       env={"COLUMNS": "300"}).stdout.split())
    for fragment in ("every column except --time-column and the label", "--drop",
                     "year, quarter or month", "runs code when loaded",
                     "only for a pipeline and data from a trusted source"):
        assert fragment in text.replace("│ ", ""), fragment


@pytest.mark.parametrize(("args", "message"), [
    (["--period", "fortnight"], "--period must be year, quarter or month"),
    (["--features", "x1,x3"], "--features: the history has no column 'x3'; its columns: "
                              "day, x1, x2, y, noise, leak"),
    (["--drop", "leak,gone"], "--drop: the history has no column 'gone'"),
    (["--features", "x1", "--drop", "leak"], "give --features or --drop, not both"),
])
def test_cli_wrong_input_is_one_line_naming_the_option(cli_project: Path, args: list[str],
                                                       message: str) -> None:
    from tests.cli.conftest import assert_user_error

    assert_user_error(ct_backtest(*args), message)


def test_cli_backtest_with_chosen_inputs_delay_and_calendar_months(cli_project: Path) -> None:
    import json

    done = ct_backtest("--features", "x1", "--period", "month", "--label-delay", "7d",
                       "--tick", "30d", "--schedule", "365d", "--json")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    history = pd.read_parquet(cli_project / "history.parquet")
    yesterday = next(s for s in result["summary"] if s["strategy"] == YESTERDAY)
    assert yesterday["accuracy"] == pytest.approx(lagged_accuracy(history, 250, 7))
    loop = next(s for s in result["summary"] if s["strategy"] == LOOP)
    assert 0.7 < loop["accuracy"] < 0.95   # x1 alone (the label needs x2, or the leak)
    assert [d for d, _ in result["periods"][LOOP]][:2] == ["2015-09-01", "2015-10-01"]
