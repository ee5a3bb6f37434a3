"""Calibrated label-free estimation: CBPE fitted on a labeled reference removes the bias of
over-confident probabilities, DLE estimates a regressor's errors, estimators round-trip
through plain JSON, hostile dicts are refused, and monitor runs use a stored estimator."""

from __future__ import annotations

import copy
import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ratchet.config import Settings
from ratchet.errors import InvalidInput
from ratchet.monitoring.estimation import (
    CALIBRATION_TAG,
    CBPE,
    DLE,
    _boosted,
    _expected_auc,
    estimator_from_dict,
    fit_estimator,
    fit_loss_estimator,
    fit_performance_estimator,
    load_estimator,
    save_estimator,
)
from ratchet.monitoring.performance import (
    classification_metrics,
    estimate_classification_performance,
    regression_metrics,
)
from ratchet.registry import RegistryClient
from ratchet.workspace import Workspace

TOLERANCE = 0.015  # |calibrated estimate - realized| on 20,000 rows (sampling sd ~0.003)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _binary(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray]:
    """Labels drawn from sigmoid(z); the model says sigmoid(3z): over-confident. Returns
    the model's proba, the labels and the true probabilities."""
    rng = np.random.default_rng(seed)
    z = rng.normal(shift, 1.5, n)
    truth = _sigmoid(z)
    y = (rng.random(n) < truth).astype(int)
    q = _sigmoid(3 * z)
    return np.column_stack([1 - q, q]), y, truth


def test_calibration_removes_the_bias_of_over_confident_probabilities() -> None:
    proba, y, _ = _binary(20_000, seed=1)
    estimator = fit_performance_estimator(proba, y, [0, 1], source="holdout of run r1")
    assert isinstance(estimator, CBPE) and estimator.calibrators[0] is not None
    # New rows, shifted (covariate shift: calibration still holds).
    live, live_y, live_truth = _binary(20_000, seed=2, shift=0.8)
    pred = live.argmax(axis=1)
    realized = classification_metrics(live_y, pred, live, [0, 1])
    calibrated = estimator.estimate(live)
    uncalibrated = estimate_classification_performance(live, [0, 1])
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert abs(calibrated[metric] - realized[metric]) < TOLERANCE, metric
    for metric in ("accuracy", "f1", "roc_auc"):  # the bias the fit removes
        assert abs(uncalibrated[metric] - realized[metric]) > 3 * TOLERANCE, metric
    # Against the labels' true law (no sampling noise in the target): tighter.
    oracle = np.mean(np.where(pred == 1, live_truth, 1 - live_truth))
    assert abs(calibrated["accuracy"] - oracle) < 0.01
    # Log loss: the model's own loss under the calibrated law, not the entropy.
    assert abs(calibrated["log_loss"] - realized["log_loss"]) < 0.1
    assert abs(uncalibrated["log_loss"] - realized["log_loss"]) > 0.3
    assert calibrated["calibrated"] is True and uncalibrated["calibrated"] is False
    assert calibrated["n"] == 20_000 and calibrated["estimated"] is True
    assert "20000 labeled reference rows (holdout of run r1)" in calibrated["note"]
    assert "uncalibrated" in uncalibrated["note"]


def test_isotonic_maps_are_scikit_learns_and_the_result_has_the_uncalibrated_shape() -> None:
    from sklearn.isotonic import IsotonicRegression

    proba, y, _ = _binary(3_000, seed=3)
    estimator = fit_performance_estimator(proba, y, [0, 1])
    calibrator = estimator.calibrators[0]
    assert calibrator is not None
    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(proba[:, 1], y)
    grid = np.r_[np.linspace(-0.5, 1.5, 501), proba[:500, 1]]
    np.testing.assert_allclose(calibrator(grid), fitted.predict(grid), atol=1e-12)
    live, _, _ = _binary(500, seed=4)
    plain = estimate_classification_performance(live, [0, 1])
    assert set(estimator.estimate(live)) == set(plain)


def test_the_models_predictions_are_used_and_rows_without_probabilities_skipped() -> None:
    proba, y, _ = _binary(4_000, seed=5)
    estimator = fit_performance_estimator(proba, np.array(["no", "yes"])[y], ["no", "yes"])
    live, _, _ = _binary(4_000, seed=6)
    always_yes = np.full(len(live), "yes", dtype=object)
    estimate = estimator.estimate(live, always_yes)
    calibrated_positive = estimator.calibrate(live)[:, 1]
    assert estimate["accuracy"] == pytest.approx(calibrated_positive.mean())
    assert estimate["recall"] == pytest.approx(1.0)
    with_failures = np.vstack([live, np.full((3, 2), np.nan)])
    assert estimator.estimate(with_failures)["n"] == len(live)
    assert estimator.estimate(np.empty((0, 2)))["accuracy"] is None
    with pytest.raises(InvalidInput, match="not among the classes"):
        estimator.estimate(live[:2], ["yes", "maybe"])


def test_expected_auc_is_roc_auc_when_the_probabilities_are_the_labels() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 2_000).astype(float)
    scores = np.round(rng.random(2_000) * 0.6 + labels * 0.3, 2)  # many ties
    assert _expected_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores),
                                                          abs=1e-12)
    assert _expected_auc(np.zeros(5), np.arange(5.0)) is None


def test_multiclass_calibrates_each_class_and_renormalizes() -> None:
    def draw(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        logits = rng.normal(0, 1.2, (n, 3)) + np.array([shift, 0.0, -shift])
        truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = np.array([rng.choice(3, p=row) for row in truth])
        sharp = np.exp(3 * logits)
        return sharp / sharp.sum(axis=1, keepdims=True), y

    classes = ["a", "b", "c"]
    proba, y = draw(20_000, seed=8)
    estimator = fit_performance_estimator(proba, np.array(classes)[y], classes)
    assert len(estimator.calibrators) == 3
    assert sum(m is not None for m in estimator.calibrators) >= 2
    np.testing.assert_allclose(estimator.calibrate(proba[:100]).sum(axis=1), 1.0)
    live, live_y = draw(20_000, seed=9, shift=0.5)
    pred = live.argmax(axis=1)
    realized = classification_metrics(live_y, pred, live, [0, 1, 2])
    calibrated = estimator.estimate(live)
    uncalibrated = estimate_classification_performance(live, classes)
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert abs(calibrated[metric] - realized[metric]) < TOLERANCE, metric
    assert abs(uncalibrated["accuracy"] - realized["accuracy"]) > 3 * TOLERANCE


def test_a_reference_that_cannot_calibrate_is_refused_by_name() -> None:
    proba, y, _ = _binary(200, seed=10)
    with pytest.raises(InvalidInput, match="at least 50"):
        fit_performance_estimator(proba[:20], y[:20], [0, 1])
    with pytest.raises(InvalidInput, match="match none of the classes"):
        fit_performance_estimator(proba, np.where(y == 1, 7, 0), [0, 1])
    with pytest.raises(InvalidInput, match="columns but there are 3 classes"):
        fit_performance_estimator(proba, y, [0, 1, 2])
    with pytest.raises(InvalidInput, match="source must be text"):
        fit_performance_estimator(proba, y, [0, 1], source=3)  # type: ignore[arg-type]
    # Labels missing for some rows: those rows are left out.
    partial = pd.Series(y, dtype=object).where(np.arange(200) % 2 == 0, None)
    assert fit_performance_estimator(proba, partial, [0, 1]).reference["rows"] == 100


# ----------------------------------------------------------------------------- DLE
def _regression(n: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Noise grows with |x1| and depends on the segment: the error is predictable."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(shift, 1, n)
    segment = rng.choice(["calm", "wild"], n, p=[0.7, 0.3])
    scale = 0.2 + np.abs(x1) + np.where(segment == "wild", 1.0, 0.0)
    y = 2 * x1 + rng.normal(0, 1, n) * scale
    return pd.DataFrame({"x1": x1, "segment": segment}), y


def test_direct_loss_estimation_follows_the_error_under_covariate_shift() -> None:
    reference, y = _regression(5_000, seed=11)
    prediction = 2 * reference["x1"].to_numpy()  # the model: right on average
    estimator = fit_loss_estimator(reference, prediction, y, source="holdout")
    assert isinstance(estimator, DLE) and estimator.categories == {"segment": ("calm", "wild")}
    on_reference = regression_metrics(y, prediction)
    live, live_y = _regression(5_000, seed=12, shift=1.5)  # larger |x1|: larger errors
    live_prediction = 2 * live["x1"].to_numpy()
    realized = regression_metrics(live_y, live_prediction)
    estimate = estimator.estimate(live, live_prediction)
    assert realized["mae"] > 1.5 * on_reference["mae"]  # the shift matters
    assert estimate["mae"] == pytest.approx(realized["mae"], rel=0.08)
    assert estimate["rmse"] == pytest.approx(realized["rmse"], rel=0.1)
    assert estimate["calibrated"] is True and "direct loss estimation" in estimate["note"]
    # Unseen categories and missing values are missing to the trees, not errors.
    odd = live.head(10).assign(segment=["new"] * 5 + [None] * 5)
    assert estimator.estimate(odd, live_prediction[:10])["n"] == 10
    with pytest.raises(InvalidInput, match=r"lack the column\(s\) \['segment'\]"):
        estimator.estimate(live[["x1"]], live_prediction)


def test_the_stored_trees_predict_what_scikit_learn_predicts() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(13)
    x = rng.normal(size=(3_000, 3))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take the learned side
    x[:300, 2] = np.nan  # and a feature missing often enough to split on alone
    target = np.nan_to_num(x[:, 0]) ** 2 + np.isnan(x[:, 2]) + rng.normal(0, 0.1, 3_000)
    model = HistGradientBoostingRegressor(random_state=0).fit(x, target)
    probe = np.vstack([x, rng.normal(size=(500, 3)) * 3])
    np.testing.assert_allclose(_boosted(model).predict(probe), model.predict(probe),
                               rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- storage
def _roundtrip(estimator: Any) -> Any:
    text = json.dumps(estimator.to_dict(), allow_nan=False)  # plain JSON, nothing else
    return estimator_from_dict(json.loads(text))


def test_estimators_round_trip_through_plain_json() -> None:
    proba, y, _ = _binary(3_000, seed=14)
    cbpe = fit_performance_estimator(proba, y, [0, 1], source="holdout")
    live, _, _ = _binary(1_000, seed=15)
    assert _roundtrip(cbpe).estimate(live) == cbpe.estimate(live)

    classes = [False, True, "x"]  # mixed label types survive
    three = np.column_stack([proba * 0.8, np.full(len(proba), 0.2)])
    labels = np.array(classes, dtype=object)[np.where(y == 1, 1, 0)]
    multi = fit_performance_estimator(three, labels, classes)
    again = _roundtrip(multi)
    assert list(again.classes) == classes and again.estimate(three) == multi.estimate(three)

    reference, target = _regression(2_000, seed=16)
    dle = fit_loss_estimator(reference, 2 * reference["x1"], target)
    live_frame, _ = _regression(500, seed=17)
    assert _roundtrip(dle).estimate(live_frame, 2 * live_frame["x1"]) == \
        dle.estimate(live_frame, 2 * live_frame["x1"])


@functools.cache
def _fitted_dicts() -> tuple[str, str]:
    """One CBPE and one DLE, fitted once for all the hostile-dict cases (as JSON text)."""
    proba, y, _ = _binary(2_000, seed=18)
    reference, target = _regression(1_000, seed=19)
    return (json.dumps(fit_performance_estimator(proba, y, [0, 1]).to_dict()),
            json.dumps(fit_loss_estimator(reference, 2 * reference["x1"], target).to_dict()))


def _cbpe_dict() -> dict[str, Any]:
    return dict(json.loads(_fitted_dicts()[0]))


def _dle_dict() -> dict[str, Any]:
    return dict(json.loads(_fitted_dicts()[1]))


def _set(path: str, value: Any) -> Any:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = d
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _first_split(d: dict[str, Any]) -> int:
    return next(i for i, leaf in enumerate(d["absolute"]["trees"][0]["leaf"]) if not leaf)


CBPE_HOSTILE = [
    (_set("format", "pickle"), r"estimator.format"),
    (_set("classes", [0]), r"estimator.classes"),
    (_set("classes", [0, 0]), r"estimator.classes.*distinct"),
    (_set("classes", [0, [1]]), r"estimator.classes"),
    (_set("calibrators", [None, None]), r"estimator.calibrators: expected a list of 1"),
    (_set("calibrators", "x"), r"estimator.calibrators"),
    (_set("calibrators/0", [1, 2]), r"estimator.calibrators\[0\]: expected an object"),
    (_set("calibrators/0/x", "0,1"), r"estimator.calibrators\[0\].x: expected a list"),
    (_set("calibrators/0/x/0", float("nan")), r"calibrators\[0\].x\[0\]: expected a finite"),
    (_set("calibrators/0/x/0", "0.1"), r"calibrators\[0\].x\[0\]: expected a finite"),
    (_set("calibrators/0/x/0", True), r"calibrators\[0\].x\[0\]: expected a finite"),
    (_set("calibrators/0/x/0", 5.0), r"calibrators\[0\].x: thresholds must be in increasing"),
    (_set("calibrators/0/y/0", 0.99), r"calibrators\[0\].y: an isotonic map must not"),
    (_set("calibrators/0/y", []), r"calibrators\[0\]: x and y must be non-empty"),
    (_set("calibrators/0/exec", "os.system"), r"calibrators\[0\]: unknown field"),
    (_set("reference", {"rows": -1}), r"estimator.reference.rows"),
    (_set("reference", "x"), r"estimator.reference: expected an object"),
    (_set("payload", 1), r"estimator: unknown field\(s\) \['payload'\]"),
]


@pytest.mark.parametrize(("mutate", "message"), CBPE_HOSTILE)
def test_hostile_cbpe_dicts_are_refused_naming_the_field(mutate: Any, message: str) -> None:
    data = _cbpe_dict()
    bad = copy.deepcopy(data)
    mutate(bad)
    with pytest.raises(InvalidInput, match=message):
        estimator_from_dict(bad)
    estimator_from_dict(data)  # the untouched one is fine


def _bad_y_range(d: dict[str, Any]) -> None:
    d["calibrators"][0]["y"][-1] = 1.5


def _cycle(d: dict[str, Any]) -> None:
    i = _first_split(d)
    d["absolute"]["trees"][0]["left"][i] = i  # a node its own child: would never end


def _backwards(d: dict[str, Any]) -> None:
    i = _first_split(d)
    d["absolute"]["trees"][0]["right"][i] = 0


def _feature_out_of_range(d: dict[str, Any]) -> None:
    d["squared"]["trees"][1]["feature"][_first_split(d)] = 99


def _short_array(d: dict[str, Any]) -> None:
    d["absolute"]["trees"][0]["value"].pop()


def _string_threshold(d: dict[str, Any]) -> None:
    d["absolute"]["trees"][0]["threshold"][_first_split(d)] = "inf"


def _too_many_trees(d: dict[str, Any]) -> None:
    d["absolute"]["trees"] = d["absolute"]["trees"] * 101


DLE_HOSTILE = [
    (_cycle, r"estimator.absolute.trees\[0\].left\[\d+\]: child \d+ must be a later node"),
    (_backwards, r"estimator.absolute.trees\[0\].right\[\d+\]: child 0 must be a later"),
    (_feature_out_of_range, r"estimator.squared.trees\[1\].feature\[\d+\]: 99 is not one"),
    (_short_array, r"estimator.absolute.trees\[0\]: node arrays must all have"),
    (_string_threshold, r"trees\[0\].threshold\[\d+\]: expected a finite number or null"),
    (_too_many_trees, r"estimator.absolute.trees: expected a list of at most"),
    (_set("absolute/baseline", None), r"estimator.absolute.baseline: expected a finite"),
    (_set("absolute/trees/0/leaf/0", 1), r"trees\[0\].leaf\[0\]: expected true or false"),
    (_set("features", ["x1", "x1"]), r"estimator.features"),
    (_set("categories", {"nope": ["a"]}), r"estimator.categories: 'nope' is not an input"),
    (_set("categories/segment", [{"a": 1}]), r"estimator.categories\['segment'\]"),
]


@pytest.mark.parametrize(("mutate", "message"), DLE_HOSTILE)
def test_hostile_dle_dicts_are_refused_naming_the_field(mutate: Any, message: str) -> None:
    data = _dle_dict()
    bad = copy.deepcopy(data)
    mutate(bad)
    with pytest.raises(InvalidInput, match=message):
        estimator_from_dict(bad)
    estimator_from_dict(data)


def test_non_dicts_and_out_of_range_probabilities_are_refused() -> None:
    values: list[Any] = [None, [], "x", 3]
    for value in values:
        with pytest.raises(InvalidInput, match="estimator: expected an object"):
            estimator_from_dict(value)
    bad = _cbpe_dict()
    _bad_y_range(bad)
    with pytest.raises(InvalidInput, match=r"calibrators\[0\].y: calibrated probabilities"):
        estimator_from_dict(bad)


# ----------------------------------------------------------------------------- registry
@pytest.fixture
def home(tmp_path: Path) -> Settings:
    root = tmp_path / "home"
    return Settings(home=root, db_url=f"sqlite:///{root / 'ratchet.db'}",
                    artifacts_uri=str(root / "artifacts"))


def _features(n: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Five noisy copies of one signal: naive Bayes counts it five times (over-confident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(shift, 1, n)
    y = (rng.random(n) < _sigmoid(1.5 * z)).astype(int)
    frame = pd.DataFrame({f"x{i}": z + rng.normal(0, 0.3, n) for i in range(5)})
    return frame, y


@pytest.fixture
def nb_registry(home: Settings) -> RegistryClient:
    """nb v1: GaussianNB trained in a run that logged its training data (role train)."""
    from sklearn.naive_bayes import GaussianNB

    from ratchet.data.catalog import DataClient

    registry = RegistryClient(Workspace(home))
    X, y = _features(4_000, seed=20)
    with registry.tracking.start_run(experiment="nb") as run:
        DataClient(registry.workspace).log(X.assign(label=y), name="nb-train", role="train")
        registry.log_model(run.id, GaussianNB().fit(X, y), name="nb", input_example=X)
    return registry


def test_save_and_load_keep_the_estimator_in_a_model_version_tag(
        nb_registry: RegistryClient) -> None:
    assert load_estimator(nb_registry, "nb", 1) is None
    model: Any = nb_registry.load("models:/nb/1").raw
    X, y = _features(4_000, seed=21)
    estimator = fit_performance_estimator(model.predict_proba(X), y, model.classes_)
    save_estimator(nb_registry, "nb", 1, estimator)
    tag = nb_registry.get_version("nb", 1).tags[CALIBRATION_TAG]
    assert json.loads(tag)["format"] == "ratchet.cbpe/1"
    loaded = load_estimator(nb_registry, "nb", 1)
    assert loaded == estimator
    nb_registry.set_tag("nb", CALIBRATION_TAG, '{"format": "ratchet.cbpe/1"}', version=1)
    with pytest.raises(InvalidInput, match=r"model nb v1 tag ratchet.calibration: "
                                           r"estimator.classes"):
        load_estimator(nb_registry, "nb", 1)
    nb_registry.set_tag("nb", CALIBRATION_TAG, "not json", version=1)
    with pytest.raises(InvalidInput, match=r"model nb v1 tag ratchet.calibration: not valid"):
        load_estimator(nb_registry, "nb", 1)
    with pytest.raises(InvalidInput, match="a fitted CBPE or DLE"):
        save_estimator(nb_registry, "nb", 1, {"format": "ratchet.cbpe/1"})  # type: ignore


def _logged(model: Any, X: pd.DataFrame, start: datetime) -> pd.DataFrame:
    """A prediction log of ``X`` as the server writes it (no feedback yet)."""
    proba = model.predict_proba(X)
    frame = pd.DataFrame({
        "timestamp": [start + timedelta(seconds=i) for i in range(len(X))],
        "variant": "primary", "status": "ok",
        **{f"input.{c}": X[c].to_numpy() for c in X.columns},
        "output.prediction": model.classes_[proba.argmax(axis=1)],
        **{f"output.proba_{c}": proba[:, j] for j, c in enumerate(model.classes_)},
        "feedback": None})
    return frame


def test_monitor_runs_use_the_stored_estimator(nb_registry: RegistryClient,
                                               home: Settings) -> None:
    from ratchet.monitoring.monitor import monitor_logged
    from ratchet.serving.deployments import DeploymentClient

    model: Any = nb_registry.load("models:/nb/1").raw
    live, live_y = _features(6_000, seed=22, shift=0.7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    logged = _logged(model, live, start)
    realized = classification_metrics(live_y, logged["output.prediction"],
                                      model.predict_proba(live), model.classes_)
    deployments = DeploymentClient(Workspace(home))
    memo: dict[Any, Any] = {}

    def monitor() -> dict[str, Any]:
        run = monitor_logged("nb-live", logged, start=start, end=start + timedelta(hours=2),
                             deployments=deployments, model=("nb", 1), store=False,
                             report=False, multivariate=False, references=memo)
        return dict(run.result["performance"]["estimated"])

    before = monitor()  # nothing stored: uncalibrated, and it says so
    assert before["calibrated"] is False and "uncalibrated" in before["note"]
    assert abs(before["accuracy"] - realized["accuracy"]) > 3 * TOLERANCE

    nb_registry.set_tag("nb", CALIBRATION_TAG, "[]", version=1)  # a broken tag: said why
    broken = monitor()
    assert broken["calibrated"] is False
    assert "Not calibrated because model nb v1 tag ratchet.calibration" in broken["note"]

    X, y = _features(4_000, seed=23)  # the holdout: what the CT controller does at gating
    loaded = nb_registry.load("models:/nb/1")
    save_estimator(nb_registry, "nb", 1,
                   fit_estimator(loaded, X.assign(label=y), y, source="holdout"))
    after = monitor()
    assert after["calibrated"] is True and "(holdout)" in after["note"]
    for metric in ("accuracy", "f1", "roc_auc"):
        assert abs(after[metric] - realized[metric]) < 2 * TOLERANCE, metric
    assert ("estimator", "nb", 1) in memo  # read once per version


def test_a_stored_estimator_for_other_classes_falls_back_and_says_why(
        nb_registry: RegistryClient, home: Settings) -> None:
    from ratchet.monitoring.monitor import monitor_logged
    from ratchet.serving.deployments import DeploymentClient

    model: Any = nb_registry.load("models:/nb/1").raw
    proba, y, _ = _binary(1_000, seed=24)
    save_estimator(nb_registry, "nb", 1,
                   fit_performance_estimator(proba, np.array(["a", "b"])[y], ["a", "b"]))
    live, _ = _features(300, seed=25)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    run = monitor_logged("nb-live", _logged(model, live, start), start=start,
                         end=start + timedelta(hours=1),
                         deployments=DeploymentClient(Workspace(home)), model=("nb", 1),
                         store=False, report=False, multivariate=False)
    estimated = run.result["performance"]["estimated"]
    assert estimated["calibrated"] is False
    assert "its classes ['a', 'b'] are not the model's [0, 1]" in estimated["note"]


def test_monitor_runs_of_a_regressor_use_its_stored_loss_estimator(home: Settings) -> None:
    from sklearn.linear_model import LinearRegression

    from ratchet.data.catalog import DataClient
    from ratchet.monitoring.monitor import monitor_logged
    from ratchet.serving.deployments import DeploymentClient

    registry = RegistryClient(Workspace(home))
    train, y = _regression(3_000, seed=26)
    X = train.assign(wild=(train["segment"] == "wild").astype(float))[["x1", "wild"]]
    with registry.tracking.start_run(experiment="reg") as training:
        DataClient(registry.workspace).log(X.assign(y=y), name="reg-train", role="train")
        registry.log_model(training.id, LinearRegression().fit(X, y), name="reg",
                           input_example=X)
    loaded = registry.load("models:/reg/1")
    holdout, holdout_y = _regression(3_000, seed=27)
    holdout = holdout.assign(wild=(holdout["segment"] == "wild").astype(float))
    estimator = fit_estimator(loaded, holdout, holdout_y, source="holdout")
    assert isinstance(estimator, DLE) and estimator.features == ("x1", "wild", "prediction")
    save_estimator(registry, "reg", 1, estimator)

    live, live_y = _regression(3_000, seed=28, shift=1.5)
    live = live.assign(wild=(live["segment"] == "wild").astype(float))[["x1", "wild"]]
    prediction = loaded.predict(live)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    logged = pd.DataFrame({
        "timestamp": [start + timedelta(seconds=i) for i in range(len(live))],
        "variant": "primary", "status": "ok",
        **{f"input.{c}": live[c].to_numpy() for c in live.columns},
        "output.prediction": prediction, "feedback": None})
    run = monitor_logged("reg-live", logged, start=start, end=start + timedelta(hours=1),
                         deployments=DeploymentClient(Workspace(home)), model=("reg", 1),
                         store=False, report=False, multivariate=False)
    performance = run.result["performance"]
    assert performance["task"] == "regression" and performance["metrics"] is None
    realized = regression_metrics(live_y, prediction)
    assert performance["estimated"]["mae"] == pytest.approx(realized["mae"], rel=0.1)
    assert performance["estimated"]["calibrated"] is True

    # Fitted on columns the log does not have: no estimate, and the result says why.
    wider = holdout.assign(extra=1.0)[["x1", "wild", "extra"]]
    save_estimator(registry, "reg", 1, fit_loss_estimator(
        wider, loaded.predict(wider[["x1", "wild"]]), holdout_y))
    run = monitor_logged("reg-live", logged, start=start, end=start + timedelta(hours=1),
                         deployments=DeploymentClient(Workspace(home)), model=("reg", 1),
                         store=False, report=False, multivariate=False)
    estimated = run.result["performance"]["estimated"]
    assert estimated["calibrated"] is False and "mae" not in estimated
    assert "lack the column(s) ['extra']" in estimated["note"]


def test_fit_estimator_refuses_a_classifier_without_probabilities() -> None:
    from sklearn.svm import LinearSVC

    X, y = _features(300, seed=29)
    with pytest.raises(InvalidInput, match="LinearSVC has no predict_proba"):
        fit_estimator(LinearSVC().fit(X, y), X, y)
