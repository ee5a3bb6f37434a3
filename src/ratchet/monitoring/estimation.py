"""Label-free performance estimation, fitted on a labeled reference: what the model's
metrics are likely to be on rows whose labels have not arrived.

Classification: confidence-based performance estimation (CBPE, as NannyML does it). On the
reference (the model's holdout predictions, with labels) each class's probability gets an
isotonic calibration map, one-vs-rest; a class is calibrated only when that lowers the
expected calibration error on held-out folds (NannyML's rule: ten stratified 90/10 splits,
ECE over ten equal-count bins). Binary models calibrate the positive class (``classes[-1]``);
multiclass rows are renormalized to sum 1. On new rows the calibrated probabilities give the
expected confusion matrix (accuracy, precision, recall, F1), the expected log loss of the
model's own probabilities, and ROC AUC from expected true and false positive counts along
the model's score order (NannyML's ``estimate_roc_auc``).

Regression: direct loss estimation (DLE, as NannyML does it): two gradient boosting
regressors learn, on the reference's inputs and the model's prediction, the absolute and
the squared error; their mean predictions estimate MAE and RMSE.

Both estimators serialize to a plain JSON-safe dict (``to_dict`` / ``estimator_from_dict``):
isotonic maps as lists of thresholds, DLE's trees as node arrays evaluated here with NumPy.
Nothing is pickled; ``estimator_from_dict`` validates every field of untrusted input.
``save_estimator`` / ``load_estimator`` keep that dict in a model version's tag
``ratchet.calibration``, where monitor runs find it.

Estimates assume the relation between inputs and labels is the reference's (no concept
drift); under covariate shift alone they stay valid, which is what they are for.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput
from ratchet.monitoring.performance import (
    CLASSIFICATION_METRICS,
    MISSING,
    UNKNOWN,
    _check_classes,
    _class_codes,
    _expected_metrics,
    _numbers,
    _proba_matrix,
    _rows_and_predictions,
    _series,
)
from ratchet.packaging.labels import plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ratchet.registry import RegistryClient

CALIBRATION_TAG = "ratchet.calibration"
CBPE_FORMAT, DLE_FORMAT = "ratchet.cbpe/1", "ratchet.dle/1"
MIN_REFERENCE_ROWS = 50
ECE_BINS, ECE_SPLITS, ECE_TEST_SIZE, ECE_SEED = 10, 10, 0.1, 42  # NannyML's
MAX_THRESHOLDS = 1_000_000   # isotonic points per class in a stored estimator
MAX_TREES, MAX_NODES = 10_000, 100_000
REGRESSION_ESTIMATES = ("mae", "rmse")


# ----------------------------------------------------------------------------- isotonic
@dataclass(frozen=True)
class IsotonicMap:
    """A fitted isotonic regression as its thresholds: linear between points, clipped
    outside (scikit-learn's ``IsotonicRegression(out_of_bounds="clip").predict``)."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.interp(scores, np.asarray(self.x), np.asarray(self.y))

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": list(self.x), "y": list(self.y)}


def _fit_isotonic(scores: np.ndarray, positive: np.ndarray) -> IsotonicMap:
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(scores, positive)
    return IsotonicMap(tuple(map(float, fitted.X_thresholds_)),
                       tuple(map(float, fitted.y_thresholds_)))


def _calibration_helps(scores: np.ndarray, positive: np.ndarray) -> bool:
    """NannyML's ``needs_calibration``: isotonic maps fitted on 90 % and applied to 10 %,
    ten times; True when the pooled held-out ECE is lower after calibration."""
    import numpy as np
    from sklearn.model_selection import StratifiedShuffleSplit

    count = int(positive.sum())
    if count < 2 or len(positive) - count < 2:  # one class (or too few to split): nothing
        return False
    from ratchet.monitoring.performance import _auc

    if _auc(positive > 0, scores) > 0.999:
        return False
    splits = StratifiedShuffleSplit(n_splits=ECE_SPLITS, test_size=ECE_TEST_SIZE,
                                    random_state=ECE_SEED)
    truth, before, after = [], [], []
    for train, test in splits.split(scores, positive):
        fitted = _fit_isotonic(scores[train], positive[train])
        truth.append(positive[test])
        before.append(scores[test])
        after.append(fitted(scores[test]))
    y = np.concatenate(truth).astype(np.float64)
    return bool(_ece(y, np.concatenate(before)) > _ece(y, np.concatenate(after)))


def _ece(truth: np.ndarray, scores: np.ndarray) -> float:
    """Expected calibration error over equal-count bins of the sorted scores (NannyML's
    bin edges: width n // bins, the last bin takes the rest)."""
    import numpy as np

    order = scores.argsort()
    scores, truth = scores[order], truth[order]
    n = len(scores)
    bins = ECE_BINS if n > 2 * ECE_BINS else max(n // 2, 1)
    edges = np.asarray(range(0, n + 1, n // bins))
    edges[-1] = n
    return float(sum((right - left) / n * abs(scores[left:right].mean()
                                              - truth[left:right].mean())
                     for left, right in itertools.pairwise(edges)))


# ----------------------------------------------------------------------------- CBPE
@dataclass(frozen=True)
class CBPE:
    """A fitted confidence-based performance estimator (see the module docstring).

    ``calibrators``: binary, one map for ``classes[-1]``; multiclass, one per class. None
    where calibration did not help on the reference (the probabilities are used as
    given). ``reference``: what it was fitted on (rows, an optional source description)."""

    classes: tuple[Any, ...]
    calibrators: tuple[IsotonicMap | None, ...]
    reference: dict[str, Any] = field(default_factory=dict)

    @property
    def note(self) -> str:
        rows, source = self.reference.get("rows"), self.reference.get("source")
        calibrated = [c for c, m in zip(self._calibrated_classes(), self.calibrators,
                                        strict=True) if m is not None]
        which = (f"isotonic calibration of class(es) {calibrated!r}" if calibrated else
                 "no class needed calibration")
        return (f"estimated without labels (CBPE) from probabilities calibrated on {rows} "
                f"labeled reference rows{f' ({source})' if source else ''}: {which}; valid "
                "while the relation between inputs and labels is the reference's (no "
                "concept drift)")

    def _calibrated_classes(self) -> list[Any]:
        return [self.classes[-1]] if len(self.classes) == 2 else list(self.classes)

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of finite (rows, classes) rows."""
        import numpy as np

        if len(self.classes) == 2:
            positive = proba[:, 1] if self.calibrators[0] is None else \
                self.calibrators[0](proba[:, 1])
            return np.column_stack([1 - positive, positive])
        out = np.column_stack([proba[:, j] if m is None else m(proba[:, j])
                               for j, m in enumerate(self.calibrators)])
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1 / out.shape[1])
        return np.divide(out, total, out=uniform, where=total != 0)

    def estimate(self, proba: Any, y_pred: Any = None) -> dict[str, Any]:
        """Estimated metrics of ``proba`` (rows, classes in ``classes`` order; rows with
        NaN skipped) and the model's predictions ``y_pred`` (default: the argmax): the
        shape of :func:`~ratchet.monitoring.performance.estimate_classification_performance`
        with ``calibrated: True``."""
        import numpy as np

        q, pred = _rows_and_predictions(proba, y_pred, self.classes, renormalize=False)
        result: dict[str, Any] = dict.fromkeys(CLASSIFICATION_METRICS)
        result.update(n=len(q), estimated=True, calibrated=True, note=self.note)
        if len(q) == 0:
            return result
        p = self.calibrate(q)
        result.update(_expected_metrics(p, q, pred))
        k = len(self.classes)
        scored = [1] if k == 2 else range(k)
        aucs = [_expected_auc(p[:, j], q[:, j]) for j in scored]
        result["roc_auc"] = None if any(a is None for a in aucs) else \
            float(np.mean([a for a in aucs if a is not None]))
        return result

    def to_dict(self) -> dict[str, Any]:
        return {"format": CBPE_FORMAT, "classes": list(self.classes),
                "calibrators": [None if m is None else m.to_dict() for m in self.calibrators],
                "reference": dict(self.reference)}


def fit_performance_estimator(proba: Any, y_true: Any, classes: Sequence[Any], *,
                              source: str | None = None) -> CBPE:
    """Fit CBPE on a labeled reference: the model's ``predict_proba`` on rows it was not
    trained on (a holdout), columns in ``classes`` order, and their labels ``y_true``
    (matched to classes as :mod:`ratchet.monitoring.performance` does; rows without a
    label or probabilities are skipped). ``source``: a few words on what the reference
    is, repeated in every estimate's note. Needs at least 50 labeled rows."""
    import numpy as np

    class_list = _check_classes(classes)
    k = len(class_list)
    if k < 2:
        raise InvalidInput(f"need at least two classes, got {class_list!r}")
    if source is not None and not isinstance(source, str):
        raise InvalidInput(f"source must be text, got {type(source).__name__}")
    truth = _series(y_true, "y_true")
    matrix = _proba_matrix(proba, len(truth), k, renormalize=False)
    codes = _class_codes(truth, class_list, "y_true")
    unknown = codes == UNKNOWN
    if unknown.any():
        shown = ", ".join(repr(plain(v)) for v in truth[unknown].unique()[:5])
        raise InvalidInput(f"y_true: {int(unknown.sum())} label(s) match none of the classes "
                           f"{class_list!r}: {shown}")
    keep = (codes != MISSING) & ~np.isnan(matrix).any(axis=1)
    matrix, codes = matrix[keep], codes[keep]
    if len(codes) < MIN_REFERENCE_ROWS:
        raise InvalidInput(f"the reference has {len(codes)} labeled rows with "
                           f"probabilities; calibration needs at least {MIN_REFERENCE_ROWS}")
    calibrators: list[IsotonicMap | None] = []
    for j in ([1] if k == 2 else range(k)):
        positive = (codes == j).astype(np.float64)
        scores = matrix[:, j]
        calibrators.append(_fit_isotonic(scores, positive)
                           if _calibration_helps(scores, positive) else None)
    reference: dict[str, Any] = {"rows": len(codes)}
    if source is not None:
        reference["source"] = source
    return CBPE(tuple(class_list), tuple(calibrators), reference)


def _expected_auc(p_positive: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC from expected counts (NannyML's ``estimate_roc_auc``): walking the model's
    scores from the highest, each row adds p to the expected true positives and 1 - p to
    the false positives; the area under that curve. Tied scores are one step (a diagonal
    segment), as scikit-learn's ROC curve treats them. None without expected positives
    or negatives."""
    import numpy as np

    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], p_positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tps = np.r_[0.0, np.cumsum(p)[last_of_tie]]
    fps = np.r_[0.0, np.cumsum(1 - p)[last_of_tie]]
    if tps[-1] <= 0 or fps[-1] <= 0:
        return None
    tpr, fpr = tps / tps[-1], fps / fps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


# ----------------------------------------------------------------------------- DLE
@dataclass(frozen=True)
class Tree:
    """One regression tree as node arrays (scikit-learn's HGB predictor nodes, numeric
    splits): a row goes left when its value is <= threshold (NaN: ``missing_left``)."""

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    missing_left: tuple[bool, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    leaf: tuple[bool, ...]
    value: tuple[float, ...]

    def predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        feature, threshold = np.asarray(self.feature), np.asarray(self.threshold)
        missing_left, leaf = np.asarray(self.missing_left), np.asarray(self.leaf)
        left, right = np.asarray(self.left), np.asarray(self.right)
        node = np.zeros(len(x), dtype=np.intp)
        rows = np.arange(len(x))
        active = ~leaf[node]
        while active.any():  # children follow their parent: this ends
            at, where = node[active], rows[active]
            values = x[where, feature[at]]
            go_left = np.where(np.isnan(values), missing_left[at], values <= threshold[at])
            node[active] = np.where(go_left, left[at], right[at])
            active = ~leaf[node]
        return np.asarray(self.value)[node]

    def to_dict(self) -> dict[str, Any]:
        return {"feature": list(self.feature),
                "threshold": [None if math.isinf(t) else t for t in self.threshold],
                "missing_left": list(self.missing_left), "left": list(self.left),
                "right": list(self.right), "leaf": list(self.leaf), "value": list(self.value)}


@dataclass(frozen=True)
class Boosted:
    """A boosted sum of trees: ``baseline + sum(tree(x))`` (squared-error loss)."""

    baseline: float
    trees: tuple[Tree, ...]

    def predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        out = np.full(len(x), self.baseline)
        for tree in self.trees:
            out += tree.predict(x)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "trees": [t.to_dict() for t in self.trees]}


@dataclass(frozen=True)
class DLE:
    """A fitted direct loss estimator (see the module docstring). ``features``: the model's
    input columns (the last feature is the model's prediction); ``categories``: for text
    columns, the values seen on the reference, in code order (unseen values are missing)."""

    features: tuple[str, ...]
    categories: dict[str, tuple[Any, ...]]
    absolute: Boosted
    squared: Boosted
    reference: dict[str, Any] = field(default_factory=dict)

    @property
    def note(self) -> str:
        rows, source = self.reference.get("rows"), self.reference.get("source")
        return (f"estimated without labels (direct loss estimation): gradient boosting "
                f"models of the absolute and squared error, fitted on {rows} labeled "
                f"reference rows{f' ({source})' if source else ''}; valid while the relation "
                "between inputs and labels is the reference's (no concept drift)")

    def estimate(self, inputs: pd.DataFrame, y_pred: Any) -> dict[str, Any]:
        """Estimated ``mae`` and ``rmse`` of the predictions ``y_pred`` on ``inputs`` (a
        frame holding the model's input columns); rows without a prediction skipped."""
        import numpy as np

        x = _design(inputs, y_pred, self.features[:-1], self.categories)
        x = x[~np.isnan(x[:, -1])]
        result: dict[str, Any] = dict.fromkeys(REGRESSION_ESTIMATES)
        result.update(n=len(x), estimated=True, calibrated=True, note=self.note)
        if len(x):
            absolute = np.clip(self.absolute.predict(x), 0, None)
            squared = np.clip(self.squared.predict(x), 0, None)
            result.update(mae=float(absolute.mean()), rmse=float(np.sqrt(squared.mean())))
        return result

    def to_dict(self) -> dict[str, Any]:
        return {"format": DLE_FORMAT, "features": list(self.features),
                "categories": {c: list(v) for c, v in self.categories.items()},
                "absolute": self.absolute.to_dict(), "squared": self.squared.to_dict(),
                "reference": dict(self.reference)}


def fit_loss_estimator(inputs: pd.DataFrame, y_pred: Any, y_true: Any, *,
                       source: str | None = None, seed: int = 0) -> DLE:
    """Fit DLE on a labeled reference: the model's inputs (a frame), its predictions and
    the true values, on rows it was not trained on. Numeric and boolean columns are used
    as they are; text or categorical columns as codes of the values seen here. Needs at
    least 50 labeled rows."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor

    if not isinstance(inputs, pd.DataFrame):
        raise InvalidInput(f"inputs must be a pandas DataFrame, got {type(inputs).__name__}")
    if source is not None and not isinstance(source, str):
        raise InvalidInput(f"source must be text, got {type(source).__name__}")
    names = [str(c) for c in inputs.columns]
    if len(set(names)) != len(names):
        raise InvalidInput("inputs have duplicate column names")
    categories = {c: tuple(_plain_categories(inputs[col])) for c, col in
                  zip(names, inputs.columns, strict=True) if not _is_numeric(inputs[col])}
    x = _design(inputs.set_axis(names, axis=1), y_pred, tuple(names), categories)
    truth = _numbers(_series(y_true, "y_true"), "y_true")
    if len(truth) != len(x):
        raise InvalidInput(f"y_true has {len(truth)} values, inputs have {len(x)} rows")
    keep = ~np.isnan(truth) & ~np.isnan(x[:, -1])
    x, error = x[keep], x[keep, -1] - truth[keep]
    if len(x) < MIN_REFERENCE_ROWS:
        raise InvalidInput(f"the reference has {len(x)} labeled rows with predictions; "
                           f"loss estimation needs at least {MIN_REFERENCE_ROWS}")
    from threadpoolctl import threadpool_limits

    fitted = []
    # One OpenMP thread: a holdout-sized fit takes 0.25 s so, and 4.7 s when its threads
    # spin against a busy host's (a gate, a backtest, a test worker) — measured.
    with threadpool_limits(1, user_api="openmp"):
        for target in (np.abs(error), error ** 2):
            model = HistGradientBoostingRegressor(random_state=seed).fit(x, target)
            fitted.append(_boosted(model))
    reference: dict[str, Any] = {"rows": len(x)}
    if source is not None:
        reference["source"] = source
    return DLE((*names, "prediction"), categories, fitted[0], fitted[1], reference)


def _is_numeric(column: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column.dtype)
                or pd.api.types.is_bool_dtype(column.dtype))


def _plain_categories(column: pd.Series) -> list[Any]:

    values = [plain(v) for v in column.dropna().unique()]
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _design(inputs: pd.DataFrame, y_pred: Any, names: Sequence[str],
            categories: dict[str, tuple[Any, ...]]) -> np.ndarray:
    """The float matrix DLE sees: the inputs (text as category codes, unseen: NaN) and
    the prediction last."""
    import numpy as np
    import pandas as pd

    if not isinstance(inputs, pd.DataFrame):
        raise InvalidInput(f"inputs must be a pandas DataFrame, got {type(inputs).__name__}")
    missing = [c for c in names if c not in inputs.columns]
    if missing:
        raise InvalidInput(f"inputs lack the column(s) {missing} the estimator was fitted on")
    prediction = _numbers(_series(y_pred, "y_pred"), "y_pred")
    if len(prediction) != len(inputs):
        raise InvalidInput(f"y_pred has {len(prediction)} values, inputs have "
                           f"{len(inputs)} rows")
    columns = []
    for name in names:
        column = inputs[name]
        if name in categories:
            index = {repr(v): i for i, v in enumerate(categories[name])}
            codes, uniques = pd.factorize(column, use_na_sentinel=True)
            # one lookup per distinct value; the extra last entry is a missing value's
            lookup = np.array([index.get(repr(plain(u)), math.nan) for u in uniques]
                              + [math.nan], dtype=np.float64)
            columns.append(lookup[codes])
        else:
            try:
                values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"inputs: column {name!r} is not numeric as on the "
                                   f"reference ({exc})") from None
            columns.append(np.where(np.isinf(values), np.nan, values))
    columns.append(prediction)
    return np.column_stack(columns) if columns else np.empty((len(inputs), 0))


def _boosted(model: Any) -> Boosted:
    """The trees of a fitted HistGradientBoostingRegressor (numeric splits only: the
    design matrix has no categorical features)."""
    trees = []
    for (predictor,) in model._predictors:  # one tree per iteration (regression)
        nodes = predictor.nodes
        trees.append(Tree(tuple(int(v) for v in nodes["feature_idx"]),
                          tuple(float(v) for v in nodes["num_threshold"]),
                          tuple(bool(v) for v in nodes["missing_go_to_left"]),
                          tuple(int(v) for v in nodes["left"]),
                          tuple(int(v) for v in nodes["right"]),
                          tuple(bool(v) for v in nodes["is_leaf"]),
                          tuple(float(v) for v in nodes["value"])))
    return Boosted(float(model._baseline_prediction.ravel()[0]), tuple(trees))


# ----------------------------------------------------------------------------- storage
Estimator = CBPE | DLE


def fit_estimator(model: Any, inputs: pd.DataFrame, y_true: Any, *,
                  source: str | None = None) -> Estimator:
    """The estimator for ``model`` (a loaded model, ``ratchet.models.load(...)``, or a
    fitted scikit-learn-style model) from its answers on a labeled holdout ``inputs`` /
    ``y_true``: CBPE for a classifier with ``predict_proba``, DLE for a regressor. With a
    signature, only the model's input columns are used (as monitor runs log them)."""
    import pandas as pd

    if not isinstance(inputs, pd.DataFrame):
        raise InvalidInput(f"inputs must be a pandas DataFrame, got {type(inputs).__name__}")
    raw = getattr(model, "raw", model)
    signature = getattr(model, "signature", None)
    if signature is not None:
        missing = [c for c in signature.input_names if c not in inputs.columns]
        if missing:
            raise InvalidInput(f"inputs lack the model's input column(s) {missing}")
        inputs = inputs[list(signature.input_names)]
    classes = getattr(raw, "classes_", None)
    if classes is not None:
        if getattr(raw, "predict_proba", None) is None:
            raise InvalidInput(f"{type(raw).__name__} has no predict_proba: a classifier's "
                               "performance is estimated from its probabilities")
        return fit_performance_estimator(model.predict_proba(inputs), y_true, list(classes),
                                         source=source)
    return fit_loss_estimator(inputs, model.predict(inputs), y_true, source=source)


def estimator_from_dict(data: Any) -> Estimator:
    """An estimator from ``to_dict``'s output, checked field by field (the dict may come
    from anywhere): an InvalidInput names the first field that is wrong."""
    if not isinstance(data, dict):
        raise InvalidInput(f"estimator: expected an object, got {type(data).__name__}")
    kind = data.get("format")
    if kind == CBPE_FORMAT:
        return _cbpe_from_dict(data)
    if kind == DLE_FORMAT:
        return _dle_from_dict(data)
    raise InvalidInput(f"estimator.format: expected {CBPE_FORMAT!r} or {DLE_FORMAT!r}, "
                       f"got {kind!r}")


def _cbpe_from_dict(data: dict[str, Any]) -> CBPE:
    _only_keys(data, "estimator", {"format", "classes", "calibrators", "reference"})
    classes = data.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(
            isinstance(c, str | int | float | bool) and not (isinstance(c, float)
                                                             and not math.isfinite(c))
            for c in classes):
        raise InvalidInput("estimator.classes: expected a list of at least two class labels "
                           "(text, numbers or booleans)")
    try:
        class_list = _check_classes(classes)
    except InvalidInput as exc:
        raise InvalidInput(f"estimator.classes: {exc}") from None
    maps = data.get("calibrators")
    expected = 1 if len(class_list) == 2 else len(class_list)
    if not isinstance(maps, list) or len(maps) != expected:
        raise InvalidInput(f"estimator.calibrators: expected a list of {expected} (one per "
                           f"calibrated class), got {_describe(maps)}")
    calibrators = [None if m is None else _isotonic_from_dict(m, f"estimator.calibrators[{i}]")
                   for i, m in enumerate(maps)]
    return CBPE(tuple(class_list), tuple(calibrators), _reference_from(data))


def _isotonic_from_dict(data: Any, where: str) -> IsotonicMap:
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: expected an object with x and y, or null")
    _only_keys(data, where, {"x", "y"})
    x = _floats(data.get("x"), f"{where}.x", MAX_THRESHOLDS)
    y = _floats(data.get("y"), f"{where}.y", MAX_THRESHOLDS)
    if not x or len(x) != len(y):
        raise InvalidInput(f"{where}: x and y must be non-empty and of one length "
                           f"(got {len(x)} and {len(y)})")
    if any(b < a for a, b in itertools.pairwise(x)):
        raise InvalidInput(f"{where}.x: thresholds must be in increasing order")
    if any(b < a for a, b in itertools.pairwise(y)):
        raise InvalidInput(f"{where}.y: an isotonic map must not decrease")
    if y[0] < 0 or y[-1] > 1:
        raise InvalidInput(f"{where}.y: calibrated probabilities must be in [0, 1]")
    return IsotonicMap(tuple(x), tuple(y))


def _dle_from_dict(data: dict[str, Any]) -> DLE:
    _only_keys(data, "estimator", {"format", "features", "categories", "absolute",
                                   "squared", "reference"})
    features = data.get("features")
    if not isinstance(features, list) or not features or not all(
            isinstance(f, str) for f in features) or len(set(features)) != len(features):
        raise InvalidInput("estimator.features: expected a non-empty list of distinct names")
    raw = data.get("categories")
    if not isinstance(raw, dict):
        raise InvalidInput(f"estimator.categories: expected an object, got {_describe(raw)}")
    categories: dict[str, tuple[Any, ...]] = {}
    for name, values in raw.items():
        if name not in features[:-1]:
            raise InvalidInput(f"estimator.categories: {name!r} is not an input feature")
        if not isinstance(values, list) or not all(
                isinstance(v, str | int | bool) or (isinstance(v, float) and math.isfinite(v))
                for v in values):
            raise InvalidInput(f"estimator.categories[{name!r}]: expected a list of values")
        categories[name] = tuple(values)
    boosted = [_boosted_from_dict(data.get(k), f"estimator.{k}", len(features))
               for k in ("absolute", "squared")]
    return DLE(tuple(features), categories, boosted[0], boosted[1], _reference_from(data))


def _boosted_from_dict(data: Any, where: str, n_features: int) -> Boosted:
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: expected an object, got {_describe(data)}")
    _only_keys(data, where, {"baseline", "trees"})
    baseline: Any = data.get("baseline")
    if not _finite_number(baseline):
        raise InvalidInput(f"{where}.baseline: expected a finite number")
    trees = data.get("trees")
    if not isinstance(trees, list) or len(trees) > MAX_TREES:
        raise InvalidInput(f"{where}.trees: expected a list of at most {MAX_TREES} trees")
    return Boosted(float(baseline), tuple(_tree_from_dict(t, f"{where}.trees[{i}]", n_features)
                                          for i, t in enumerate(trees)))


def _tree_from_dict(data: Any, where: str, n_features: int) -> Tree:
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: expected an object, got {_describe(data)}")
    keys = ("feature", "threshold", "missing_left", "left", "right", "leaf", "value")
    _only_keys(data, where, set(keys))
    arrays: dict[str, Any] = {k: data.get(k) for k in keys}
    for key, values in arrays.items():
        if not isinstance(values, list) or not values or len(values) > MAX_NODES:
            raise InvalidInput(f"{where}.{key}: expected a non-empty list of at most "
                               f"{MAX_NODES} entries")
    n = len(arrays["value"])
    if any(len(v) != n for v in arrays.values()):
        raise InvalidInput(f"{where}: node arrays must all have {n} entries")
    leaf = _bools(arrays["leaf"], f"{where}.leaf")
    missing_left = _bools(arrays["missing_left"], f"{where}.missing_left")
    value = _floats(arrays["value"], f"{where}.value", MAX_NODES)
    threshold = []
    for i, t in enumerate(arrays["threshold"]):
        if t is None:
            threshold.append(math.inf)   # a split of missing values from all others
        elif _finite_number(t):
            threshold.append(float(t))
        else:
            raise InvalidInput(f"{where}.threshold[{i}]: expected a finite number or null")
    ints: dict[str, list[Any]] = {k: arrays[k] for k in ("feature", "left", "right")}
    for key, values in ints.items():
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise InvalidInput(f"{where}.{key}: expected integers")
    for i in range(n):
        if leaf[i]:
            continue
        if not 0 <= ints["feature"][i] < n_features:
            raise InvalidInput(f"{where}.feature[{i}]: {ints['feature'][i]} is not one of "
                               f"the {n_features} features")
        for key in ("left", "right"):  # children after their parent: no cycles
            if not i < ints[key][i] < n:
                raise InvalidInput(f"{where}.{key}[{i}]: child {ints[key][i]} must be a "
                                   f"later node (< {n})")
    return Tree(tuple(ints["feature"]), tuple(threshold), tuple(missing_left),
                tuple(ints["left"]), tuple(ints["right"]), tuple(leaf), tuple(value))


def _reference_from(data: dict[str, Any]) -> dict[str, Any]:
    reference = data.get("reference", {})
    if not isinstance(reference, dict):
        raise InvalidInput(f"estimator.reference: expected an object, got "
                           f"{_describe(reference)}")
    _only_keys(reference, "estimator.reference", {"rows", "source"})
    rows = reference.get("rows")
    if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 0):
        raise InvalidInput("estimator.reference.rows: expected a count")
    source = reference.get("source")
    if source is not None and (not isinstance(source, str) or len(source) > 1000):
        raise InvalidInput("estimator.reference.source: expected text (at most 1000 "
                           "characters)")
    return dict(reference)


def _only_keys(data: dict[str, Any], where: str, allowed: set[str]) -> None:
    extra = sorted(map(str, set(data) - allowed))
    if extra:
        raise InvalidInput(f"{where}: unknown field(s) {extra}")


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value)


def _floats(values: Any, where: str, limit: int) -> list[float]:
    if not isinstance(values, list) or len(values) > limit:
        raise InvalidInput(f"{where}: expected a list of at most {limit} numbers, got "
                           f"{_describe(values)}")
    for i, v in enumerate(values):
        if not _finite_number(v):
            raise InvalidInput(f"{where}[{i}]: expected a finite number, got {v!r:.40}")
    return [float(v) for v in values]


def _bools(values: list[Any], where: str) -> list[bool]:
    for i, v in enumerate(values):
        if not isinstance(v, bool):
            raise InvalidInput(f"{where}[{i}]: expected true or false, got {v!r:.40}")
    return list(values)


def _describe(value: Any) -> str:
    return f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__


def save_estimator(registry: RegistryClient, name: str, version: int,
                   estimator: Estimator) -> None:
    """Keep ``estimator`` with model version ``name``/``version`` (its tag
    ``ratchet.calibration``, as JSON), where monitor runs of that version find it."""
    if not isinstance(estimator, CBPE | DLE):
        raise InvalidInput(f"estimator must be a fitted CBPE or DLE, got "
                           f"{type(estimator).__name__}")
    text = json.dumps(estimator.to_dict(), allow_nan=False, separators=(",", ":"))
    registry.set_tag(name, CALIBRATION_TAG, text, version=version)


def load_estimator(registry: RegistryClient, name: str, version: int) -> Estimator | None:
    """The estimator kept with ``name``/``version`` (None if it has none); InvalidInput
    if the tag holds something that is not a valid estimator."""
    from ratchet.safe_load import load_json

    text = registry.get_version(name, version).tags.get(CALIBRATION_TAG)
    if text is None:
        return None
    where = f"model {name} v{version} tag {CALIBRATION_TAG}"
    try:
        return estimator_from_dict(load_json(text, where))
    except InvalidInput as exc:
        message = str(exc)
        raise InvalidInput(message if message.startswith(where) else
                           f"{where}: {message}") from None


__all__ = [
    "CALIBRATION_TAG",
    "CBPE",
    "DLE",
    "estimator_from_dict",
    "fit_estimator",
    "fit_loss_estimator",
    "fit_performance_estimator",
    "load_estimator",
    "save_estimator",
]
