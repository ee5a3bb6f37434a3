"""Model performance: metrics from ground truth, per time window and segment, and estimated
from the model's own confidence while labels have not arrived.

Column names follow the prediction log (``ratchet.serving.prediction_query.predictions``
with ``with_feedback=True``): ``timestamp`` (UTC), ``output.prediction``, one
``output.proba_<class>`` per class of a classifier, and ``feedback``, the ground truth as
recorded (JSON-decoded: ints, floats, strings or booleans; missing until it arrives).

Labels are matched to the model's classes leniently, because feedback is typed by whoever
sent it: for classes ``[0, 1]`` the labels ``1``, ``1.0``, ``"1"`` and ``True`` are all the
class ``1``; for ``["no", "yes"]`` only the strings match; for ``[False, True]`` also
the boolean text of ``ratchet.columns.BOOL_TEXT`` (``"true"``/``"false"``, ``"1"``/``"0"``)
and 0/1. A label that matches no class stays in the metrics as a
wrong prediction (the model cannot predict it), is left out of ROC AUC and log loss, and is
counted in ``unknown_labels``. Matching works on the distinct values (``pd.factorize``),
never row by row.

Binary metrics take ``classes[-1]`` as the positive class (scikit-learn's order, and the
order of the logged ``proba_`` columns); multiclass precision, recall, F1 and ROC AUC
(one-vs-rest) are macro averages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput
from ratchet.packaging.labels import class_matcher, plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

CLASSIFICATION, REGRESSION = "classification", "regression"
TASKS = (CLASSIFICATION, REGRESSION)
PROBA_PREFIX = "output.proba_"
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")
CBPE_NOTE = ("estimated without labels from the predicted probabilities as they are "
             "(confidence-based performance estimation, uncalibrated: no labeled reference "
             "was fitted); valid only if the probabilities are calibrated and the relation "
             "between inputs and labels has not changed (no concept drift). A fitted "
             "estimator (ratchet.monitoring.fit_performance_estimator) calibrates them")
PROBA_SUM_TOLERANCE = 1e-3   # float32 probabilities do not sum to exactly 1
AUC_SAMPLES = 100            # label draws for the expected ROC AUC
AUC_WORK = 20_000_000        # at most this many sampled labels (rows x draws)
_CHUNK = 4_000_000           # sampled labels held in memory at once
UNKNOWN, MISSING = -1, -2    # class codes of a label no class matches, and of a null


# ----------------------------------------------------------------------------- windows
def parse_window(window: str | timedelta) -> pd.Timedelta:
    """A window length, at least one second, in the one duration grammar of
    ``ratchet.durations`` ("15min", "1h", "1h30min", "6h", "1d", "7d")."""
    import pandas as pd

    from ratchet.durations import parse_duration

    return pd.Timedelta(parse_duration(window, "window", at_least=timedelta(seconds=1)))


# ----------------------------------------------------------------------------- labels
def _series(values: Any, what: str) -> pd.Series:
    import numpy as np
    import pandas as pd

    if isinstance(values, pd.DataFrame):
        raise InvalidInput(f"{what} must be one column (a Series or 1-D array), "
                           "got a DataFrame")
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise InvalidInput(f"{what} must be 1-D, got an array of shape {values.shape}")
        return pd.Series(values)
    if isinstance(values, list | tuple):
        return pd.Series(list(values), dtype=object)
    raise InvalidInput(f"{what} must be a list, a 1-D NumPy array or a pandas Series, "
                       f"got {type(values).__name__}")


def _factorize(values: pd.Series, what: str) -> tuple[np.ndarray, list[Any]]:
    import pandas as pd

    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError as exc:
        raise InvalidInput(f"{what}: values must be numbers, strings or booleans "
                           f"({exc})") from exc
    return codes, [plain(u) for u in uniques]


def _class_codes(values: pd.Series, classes: Sequence[Any], what: str) -> np.ndarray:
    """Index of each value's class; UNKNOWN where none matches, MISSING where null."""
    import numpy as np

    codes, uniques = _factorize(values, what)
    match = class_matcher(classes)
    mapped = np.fromiter((UNKNOWN if (i := match(u)) is None else i for u in uniques),
                         dtype=np.intp, count=len(uniques))
    out = np.full(len(codes), MISSING, dtype=np.intp)
    present = codes >= 0
    out[present] = mapped[codes[present]]
    return out


def _infer_classes(*columns: pd.Series) -> list[Any]:
    """The distinct non-null values of ``columns``, sorted (as text if types are mixed)."""
    distinct: dict[Any, None] = {}
    for column in columns:
        distinct.update(dict.fromkeys(_factorize(column, "labels")[1]))
    try:
        return sorted(distinct)
    except TypeError:
        return sorted(distinct, key=str)


def _unknown_predictions(codes: np.ndarray, values: pd.Series, classes: Sequence[Any]) -> None:
    import numpy as np

    bad = np.flatnonzero(codes == UNKNOWN)
    if bad.size:
        shown = ", ".join(repr(plain(v)) for v in values.iloc[bad].unique()[:5])
        raise InvalidInput(f"{bad.size} prediction(s) are not among the classes "
                           f"{list(classes)!r}: {shown}; pass the model's classes")


def _proba_matrix(proba: Any, n: int | None, k: int | None, *,
                  renormalize: bool = True) -> np.ndarray:
    """A float (rows, classes) matrix; rows may be all NaN (no prediction), others must be
    probabilities summing to 1. Rows are renormalized to remove float32 rounding, unless
    ``renormalize`` is False (calibration keeps the model's values: rescaling by 1e-16
    splits tied scores, and NannyML's calibration rule is sensitive to ties)."""
    import numpy as np
    import pandas as pd

    try:
        matrix = (proba.to_numpy(dtype=np.float64, na_value=np.nan)
                  if isinstance(proba, pd.DataFrame) else np.asarray(proba, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"proba must be numbers, shape (rows, classes): {exc}") from exc
    if matrix.ndim != 2:
        raise InvalidInput(f"proba must be 2-D (rows, classes), got shape {matrix.shape}")
    if n is not None and matrix.shape[0] != n:
        raise InvalidInput(f"proba has {matrix.shape[0]} rows, the labels have {n}")
    if k is not None and matrix.shape[1] != k:
        raise InvalidInput(f"proba has {matrix.shape[1]} columns but there are {k} classes; "
                           "give one probability column per class, in the classes' order")
    nan_rows = np.isnan(matrix).any(axis=1)
    rows = matrix[~nan_rows]
    if rows.size:
        sums = rows.sum(axis=1)
        if (rows < 0).any() or (rows > 1).any() or np.abs(sums - 1).max() > PROBA_SUM_TOLERANCE:
            raise InvalidInput("proba must hold probabilities: each row in [0, 1] and "
                               "summing to 1 (give predict_proba's output, not scores)")
        if renormalize:
            matrix = matrix.copy()
            matrix[~nan_rows] = rows / sums[:, None]
    return matrix


# ----------------------------------------------------------------------------- metrics
def classification_metrics(y_true: Any, y_pred: Any, proba: Any = None,
                           classes: Sequence[Any] | None = None) -> dict[str, Any]:
    """accuracy, precision, recall, f1 (binary: positive = ``classes[-1]``; multiclass:
    macro over the classes present in labels or predictions, as scikit-learn does),
    roc_auc (needs ``proba``; binary on the positive class, multiclass one-vs-rest macro;
    None when the labels hold one class), log_loss (needs ``proba``), n (rows used),
    unknown_labels (labels matching no class; see the module docstring).

    ``proba``: (rows, classes) in the order of ``classes``. Without ``classes``, they are
    the sorted distinct labels and predictions. Rows without a label or a prediction are
    skipped; with no rows left every metric is None.
    """
    import numpy as np

    truth, pred = _series(y_true, "y_true"), _series(y_pred, "y_pred")
    if len(truth) != len(pred):
        raise InvalidInput(f"y_true has {len(truth)} values, y_pred has {len(pred)}")
    if classes is None:
        classes = _infer_classes(truth, pred)
        if proba is not None and _proba_matrix(proba, len(truth), None).shape[1] != len(classes):
            raise InvalidInput("proba is given without classes and the labels do not name "
                               "one class per column; pass classes (the proba column order)")
    else:
        classes = _check_classes(classes)
    matrix = None if proba is None else _proba_matrix(proba, len(truth), len(classes))
    true_codes = _class_codes(truth, classes, "y_true")
    pred_codes = _class_codes(pred, classes, "y_pred")
    _unknown_predictions(pred_codes, pred, classes)
    keep = (true_codes != MISSING) & (pred_codes != MISSING)
    if matrix is not None:
        if np.isnan(matrix[keep]).any():
            raise InvalidInput("proba is missing (NaN) for rows that have a prediction")
        matrix = matrix[keep]
    return _classification(true_codes[keep], pred_codes[keep], matrix, len(classes))


def _check_classes(classes: Sequence[Any]) -> list[Any]:
    if type(classes).__module__ == "numpy" or hasattr(classes, "to_list"):  # array, Index
        classes = list(classes)
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise InvalidInput(f"classes must be a non-empty list, got {classes!r}")
    values = [plain(c) for c in classes]
    if len(set(map(repr, values))) != len(values):
        raise InvalidInput(f"classes must be distinct, got {values!r}")
    return values


def _classification(true: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
                    k: int) -> dict[str, Any]:
    """Metrics on class codes (true may hold UNKNOWN); proba rows aligned, finite.
    NumPy only (a bincount for the confusion counts, ranks for ROC AUC): it runs once per
    window and segment; the tests hold it to scikit-learn's results."""
    import numpy as np

    n = len(true)
    result: dict[str, Any] = dict.fromkeys(CLASSIFICATION_METRICS)
    result.update(n=n, unknown_labels=int((true == UNKNOWN).sum()))
    if n == 0:
        return result
    result["accuracy"] = float(np.mean(true == pred))
    if k <= 2:
        labels = [k - 1]
    else:
        present = np.zeros(k, dtype=bool)
        present[true[true >= 0]] = True
        present[pred] = True
        labels = np.flatnonzero(present).tolist()
    # Confusion counts in one bincount; an unknown label is an extra row (never predicted).
    rows = np.where(true >= 0, true, k)
    cm = np.bincount(rows * k + pred, minlength=(k + 1) * k).reshape(k + 1, k)
    tp = np.diagonal(cm[:k]).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm[:k].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # zero_division=0, as sklearn's
        precision = np.where(predicted > 0, tp / predicted, 0.0)[labels]
        recall = np.where(actual > 0, tp / actual, 0.0)[labels]
        f1 = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)[labels]
    result.update(precision=float(precision.mean()), recall=float(recall.mean()),
                  f1=float(f1.mean()))
    if proba is None or k < 2:
        return result
    known = true >= 0
    t, p = true[known], proba[known]
    if len(t):  # as sklearn's log_loss: probabilities clipped to [eps, 1 - eps]
        eps = np.finfo(np.float64).eps
        result["log_loss"] = float(-np.mean(np.log(np.clip(p[np.arange(len(t)), t],
                                                           eps, 1 - eps))))
    present = np.unique(t)
    if len(present) >= 2:  # binary: the positive class; else one-vs-rest over those present
        scored = [1] if k == 2 else present.tolist()
        result["roc_auc"] = float(np.mean([_auc(t == j, p[:, j]) for j in scored]))
    return result


def _auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (tied scores count one half), which is what
    roc_auc_score computes; needs positives and negatives."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """mae, rmse, mape (a fraction, over the rows whose label is not 0; None if all are),
    r2 (None below two rows), n. Rows without a label or a prediction are skipped."""
    truth, pred = _series(y_true, "y_true"), _series(y_pred, "y_pred")
    if len(truth) != len(pred):
        raise InvalidInput(f"y_true has {len(truth)} values, y_pred has {len(pred)}")
    t, p = _numbers(truth, "y_true"), _numbers(pred, "y_pred")
    import numpy as np

    keep = ~np.isnan(t) & ~np.isnan(p)
    return _regression(t[keep], p[keep])


def _numbers(values: pd.Series, what: str) -> np.ndarray:
    import numpy as np
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64,
                                                              na_value=np.nan)
    bad = np.flatnonzero(np.isnan(numbers) & values.notna().to_numpy())
    if bad.size:
        shown = ", ".join(repr(plain(v)) for v in values.iloc[bad].unique()[:5])
        raise InvalidInput(f"{what}: {bad.size} value(s) are not numbers: {shown}")
    if np.isinf(numbers).any():
        raise InvalidInput(f"{what}: infinite values cannot be scored")
    return numbers


def _regression(t: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    import numpy as np
    from sklearn.metrics import r2_score

    n = len(t)
    result: dict[str, Any] = dict.fromkeys(REGRESSION_METRICS)
    result["n"] = n
    if n == 0:
        return result
    error = p - t
    nonzero = t != 0
    result.update(mae=float(np.mean(np.abs(error))), rmse=float(np.sqrt(np.mean(error ** 2))),
                  mape=float(np.mean(np.abs(error[nonzero]) / np.abs(t[nonzero])))
                  if nonzero.any() else None,
                  r2=float(r2_score(t, p)) if n >= 2 else None)
    return result


# ----------------------------------------------------------------------------- windows
def performance_by_window(frame: pd.DataFrame, *, time_column: str = "timestamp",
                          window: str | timedelta, task: str,
                          label_column: str = "feedback",
                          prediction_column: str = "output.prediction",
                          proba_columns: Sequence[str] | None = None,
                          classes: Sequence[Any] | None = None,
                          segment_column: str | None = None) -> list[dict[str, Any]]:
    """Metrics per time window (and per value of ``segment_column``) of a prediction log.

    Windows are fixed lengths aligned on the Unix epoch in UTC ("1h": on the hour, "1d":
    at midnight UTC, "7d": every seventh day from 1970-01-01, a Thursday). Naive
    timestamps are taken as UTC. One row per (window, segment) holding any rows, ordered
    by window then segment:

        {"window_start": ISO 8601, "window_end": ISO 8601, "segment": value or None,
         "n_rows": rows, "n_labeled": rows with a label and a prediction, **metrics}

    Rows without a label (or without a prediction: failed requests) are left out of the
    metrics; a window without labels has every metric None. Metrics are those of
    :func:`classification_metrics` / :func:`regression_metrics` (without ``n``).
    Classification: ``proba_columns`` default to ``output.proba_<class>`` for each of
    ``classes``, or every ``output.proba_*`` column of the frame; ``classes`` default to
    the names after ``proba_`` (labels of another type, e.g. 1 for "1", still match), or,
    with no probability columns, to the sorted distinct labels and predictions. With a
    segment column, null segments are the segment None; there is no overall row (call
    again without ``segment_column``).
    """
    import numpy as np
    import pandas as pd

    if task not in TASKS:
        raise InvalidInput(f"task must be {CLASSIFICATION!r} or {REGRESSION!r}, got {task!r}")
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    step = parse_window(window)
    needed = [time_column, label_column, prediction_column]
    if segment_column is not None:
        needed.append(segment_column)
    if task == REGRESSION and (proba_columns or classes):
        raise InvalidInput("proba_columns and classes apply to classification only")
    if task == CLASSIFICATION:
        proba_columns, classes = _proba_columns(frame, proba_columns, classes)
        needed += proba_columns
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise InvalidInput(f"column(s) {', '.join(map(repr, missing))} are not in the frame "
                           f"(it has {', '.join(map(repr, list(frame.columns)[:20]))}); "
                           "for the prediction log read it with with_feedback=True")

    starts = _window_starts(frame[time_column], step, time_column)
    truth = frame[label_column].reset_index(drop=True)
    pred = frame[prediction_column].reset_index(drop=True)
    matrix: np.ndarray | None = None
    if task == CLASSIFICATION:
        if classes is None:
            classes = _infer_classes(truth, pred)
        true_codes = _class_codes(truth, classes, label_column)
        pred_codes = _class_codes(pred, classes, prediction_column)
        _unknown_predictions(pred_codes, pred, classes)
        labeled = (true_codes != MISSING) & (pred_codes != MISSING)
        if proba_columns:
            matrix = _proba_matrix(frame[list(proba_columns)], len(frame), len(classes))
            if np.isnan(matrix[labeled]).any():
                raise InvalidInput("probability columns are missing (NaN) for rows that "
                                   "have a prediction and a label")
    else:
        t_values, p_values = _numbers(truth, label_column), _numbers(pred, prediction_column)
        labeled = ~np.isnan(t_values) & ~np.isnan(p_values)

    if segment_column is not None:
        seg_codes, seg_values = _segments(frame[segment_column])
    else:
        seg_codes, seg_values = np.zeros(len(frame), dtype=np.intp), [None]
    groups = pd.DataFrame({"w": starts, "s": seg_codes}).groupby(["w", "s"], sort=True).indices
    k = 0 if classes is None else len(classes)
    rows = []
    for (start, segment), index in groups.items():
        idx = index[labeled[index]]
        if task == CLASSIFICATION:
            metrics = _classification(true_codes[idx], pred_codes[idx],
                                      None if matrix is None else matrix[idx], k)
        else:
            metrics = _regression(t_values[idx], p_values[idx])
        metrics.pop("n")
        begin = pd.Timestamp(int(start), unit="ns", tz="UTC")
        rows.append({"window_start": begin.isoformat(),
                     "window_end": (begin + step).isoformat(),
                     "segment": seg_values[segment], "n_rows": len(index),
                     "n_labeled": len(idx), **metrics})
    return rows


def _proba_columns(frame: pd.DataFrame, proba_columns: Sequence[str] | None,
                   classes: Sequence[Any] | None) -> tuple[list[str], list[Any] | None]:
    if classes is not None:
        classes = _check_classes(classes)
    if proba_columns is not None:
        if isinstance(proba_columns, str):
            raise InvalidInput("proba_columns must be a list of column names")
        columns = list(proba_columns)
        if classes is None and columns:
            if not all(str(c).startswith(PROBA_PREFIX) for c in columns):
                raise InvalidInput("pass classes: the proba_columns are not named "
                                   f"{PROBA_PREFIX}<class>, so their classes are unknown")
            classes = [str(c)[len(PROBA_PREFIX):] for c in columns]
        if classes is not None and columns and len(columns) != len(classes):
            raise InvalidInput(f"{len(columns)} proba_columns for {len(classes)} classes")
        return columns, classes
    if classes is not None:
        named = [f"{PROBA_PREFIX}{c}" for c in classes]
        present = [c for c in named if c in frame.columns]
        if present and len(present) != len(named):
            absent = [c for c in named if c not in frame.columns]
            raise InvalidInput(f"probability column(s) {absent} are missing; pass "
                               "proba_columns=[] to score without probabilities")
        return present, classes
    columns = [str(c) for c in frame.columns if str(c).startswith(PROBA_PREFIX)]
    return columns, [c[len(PROBA_PREFIX):] for c in columns] if columns else None


def _window_starts(times: pd.Series, step: pd.Timedelta, column: str) -> np.ndarray:
    import numpy as np
    import pandas as pd

    if not pd.api.types.is_datetime64_any_dtype(times.dtype):
        raise InvalidInput(f"column {column!r} must hold datetimes, got {times.dtype}")
    if times.isna().any():
        raise InvalidInput(f"column {column!r} has {int(times.isna().sum())} missing "
                           "timestamps")
    utc = times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")
    naive = utc.dt.tz_localize(None).dt.as_unit("ns")
    ns = np.asarray(naive, dtype="datetime64[ns]").view(np.int64)  # epoch nanoseconds
    width = step.value
    return np.asarray(ns // width * width, dtype=np.int64)


def _segments(values: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Codes in sorted order of the segment values, with nulls last (the segment None)."""
    import numpy as np
    import pandas as pd

    try:
        codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    except TypeError:  # mixed types cannot be sorted
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    labels: list[Any] = [plain(u) for u in uniques]
    codes = np.where(codes < 0, len(labels), codes)
    return codes, [*labels, None]


# ----------------------------------------------------------------------------- estimation
def estimate_classification_performance(proba: Any, classes: Sequence[Any], *,
                                        y_pred: Any = None, samples: int = AUC_SAMPLES,
                                        seed: int = 0) -> dict[str, Any]:
    """Expected performance without labels, **uncalibrated** (CBPE without its fit step:
    the probabilities are taken as they are). Over- or under-confident models make it
    biased; :func:`ratchet.monitoring.estimation.fit_performance_estimator` calibrates
    them on a labeled reference first (what monitor runs use when the model version has
    one). If the probabilities are calibrated, row i's label is class j with probability
    ``proba[i, j]``, so

    - accuracy = mean probability of the predicted class (``mean(max proba)`` when the
      prediction is the argmax, the default without ``y_pred``);
    - per class j: expected TP = sum of p_j over rows predicted j, FP = rows predicted j
      minus TP, FN = sum of p_j over the other rows; precision, recall and F1 follow
      (binary: of ``classes[-1]``; multiclass: macro over classes);
    - log_loss = mean entropy of the rows;
    - roc_auc = the mean ROC AUC over ``samples`` label vectors drawn from the
      probabilities (seeded; vectorized by ranking the scores once, AUC as the
      Mann-Whitney statistic of the drawn labels). Fewer draws are made on large inputs
      (at most 20M sampled labels): AUC varies less between draws as rows grow.

    The result says ``"estimated": True, "calibrated": False`` and carries a ``note`` on
    the assumptions: with over- or under-confident probabilities, or concept drift, the
    estimate is wrong. Rows whose probabilities are missing (failed requests) are skipped.
    """
    classes = _check_classes(classes)
    k = len(classes)
    if k < 2:
        raise InvalidInput(f"need at least two classes, got {classes!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InvalidInput(f"samples must be a positive integer, got {samples!r}")
    p, pred = _rows_and_predictions(proba, y_pred, classes)
    n = len(p)
    result: dict[str, Any] = dict.fromkeys(CLASSIFICATION_METRICS)
    result.update(n=n, estimated=True, calibrated=False, note=CBPE_NOTE)
    if n == 0:
        return result
    result.update(_expected_metrics(p, p, pred))  # uncalibrated: the labels' law is p
    result["roc_auc"] = _expected_auc(p, samples, seed)
    return result


def _rows_and_predictions(proba: Any, y_pred: Any, classes: Sequence[Any], *,
                          renormalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The finite probability rows and their predicted class codes (argmax by default)."""
    import numpy as np

    matrix = _proba_matrix(proba, None, len(classes), renormalize=renormalize)
    keep = ~np.isnan(matrix).any(axis=1)
    if y_pred is None:
        pred = np.argmax(np.nan_to_num(matrix), axis=1)
    else:
        pred_series = _series(y_pred, "y_pred")
        if len(pred_series) != len(matrix):
            raise InvalidInput(f"y_pred has {len(pred_series)} values, proba has "
                               f"{len(matrix)} rows")
        pred = _class_codes(pred_series, classes, "y_pred")
        _unknown_predictions(pred, pred_series, classes)
        keep &= pred != MISSING
    return matrix[keep], pred[keep]


def _expected_metrics(p: np.ndarray, q: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The expected confusion matrix when row i's label is class j with probability
    ``p[i, j]``: accuracy, precision, recall, F1 (binary: of the last class; multiclass:
    macro over all classes), and the expected log loss of the model's probabilities
    ``q`` (the cross-entropy of p and q; p = q without calibration: the mean entropy)."""
    import numpy as np

    n, k = p.shape
    p_pred = p[np.arange(n), pred]
    tp = np.bincount(pred, weights=p_pred, minlength=k)
    fp = np.bincount(pred, minlength=k) - tp
    fn = p.sum(axis=0) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    pick = slice(k - 1, k) if k == 2 else slice(None)
    cross_entropy = -np.sum(p * np.log(np.clip(q, 1e-15, 1)), axis=1)
    return {"accuracy": float(p_pred.mean()), "precision": float(precision[pick].mean()),
            "recall": float(recall[pick].mean()), "f1": float(f1[pick].mean()),
            "log_loss": float(cross_entropy.mean())}


def _expected_auc(p: np.ndarray, samples: int, seed: int) -> float | None:
    """Mean ROC AUC (binary: of the last class; else one-vs-rest macro) over label
    vectors drawn from the rows' probabilities."""
    import numpy as np
    from scipy.stats import rankdata

    n, k = p.shape
    if n < 2:
        return None
    draws = max(1, min(samples, AUC_WORK // n))
    scored = [k - 1] if k == 2 else list(range(k))
    ranks = np.column_stack([rankdata(p[:, j]) for j in scored])  # ties share a rank
    bounds = np.cumsum(p, axis=1)[:, :-1]
    rng = np.random.default_rng(seed)
    per_draw: list[np.ndarray] = []
    chunk = max(1, _CHUNK // n)
    for first in range(0, draws, chunk):
        u = rng.random((min(chunk, draws - first), n))
        labels = np.zeros(u.shape, dtype=np.int8 if k < 128 else np.int32)
        for j in range(k - 1):  # class = how many cumulative bounds u passes
            labels += u >= bounds[:, j]
        aucs = np.empty((u.shape[0], len(scored)))
        for column, j in enumerate(scored):
            positive = labels == j
            n_pos = positive.sum(axis=1).astype(np.float64)
            rank_sum = positive.astype(np.float64) @ ranks[:, column]
            with np.errstate(invalid="ignore", divide="ignore"):
                aucs[:, column] = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * (n - n_pos))
        aucs[~np.isfinite(aucs)] = np.nan  # a class absent from a draw has no AUC
        per_draw.append(aucs)
    values = np.vstack(per_draw)
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(values).all(axis=1)
    if not valid.any():
        return None
    return float(np.mean(np.nanmean(values[valid], axis=1)))


__all__ = [
    "classification_metrics",
    "estimate_classification_performance",
    "parse_window",
    "performance_by_window",
    "regression_metrics",
]
