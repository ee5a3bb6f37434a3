"""scikit-learn autologging.

Every estimator's ``fit`` is wrapped: the outermost fit in a call stack (not the inner
fits of a Pipeline or a search) logs ``get_params()``, training metrics, and the fitted
model with its input signature, into the active run or into a run of its own. Classes
imported after ``autolog()`` are wrapped when they are created (``__init_subclass__``),
so nothing has to import all of scikit-learn up front.

The user's ``fit`` always runs and its exceptions always propagate; a failure of the
logging itself becomes a warning, never a failed fit.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from ratchet.registry import fluent as registry_fluent
from ratchet.tracking import fluent as tracking_fluent

MAX_PARAM_CHARS = 500
INPUT_EXAMPLE_ROWS = 5
_ORIGINAL = "_ratchet_original_fit"
_in_fit: ContextVar[bool] = ContextVar("ratchet_sklearn_in_fit", default=False)


@dataclass
class _Config:
    enabled: bool = False
    log_models: bool = True
    registered_model_name: str | None = None
    original_init_subclass: Any = None


_config = _Config()


def autolog(*, log_models: bool = True, registered_model_name: str | None = None,
            disable: bool = False) -> None:
    from sklearn.base import BaseEstimator

    if disable:
        _uninstall(BaseEstimator)
        return
    _config.log_models = log_models
    _config.registered_model_name = registered_model_name
    if _config.enabled:
        return
    for cls in _subclasses(BaseEstimator):
        _patch(cls)
    _install_subclass_hook(BaseEstimator)
    _config.enabled = True


def _subclasses(root: type) -> list[type]:
    seen: list[type] = []
    stack = [root]
    while stack:
        subclasses: list[type] = stack.pop().__subclasses__()
        for sub in subclasses:
            if sub not in seen:
                seen.append(sub)
                stack.append(sub)
    return seen


def _patch(cls: type) -> None:
    fit = cls.__dict__.get("fit")
    if fit is None or not callable(fit) or hasattr(fit, _ORIGINAL):
        return

    @functools.wraps(fit)
    def logged_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Arguments pass through untouched: fit signatures differ (LabelEncoder.fit(y)).
        if _in_fit.get() or not _config.enabled:
            return fit(self, *args, **kwargs)
        token = _in_fit.set(True)
        try:
            return _fit_and_log(fit, self, args, kwargs)
        finally:
            _in_fit.reset(token)

    setattr(logged_fit, _ORIGINAL, fit)
    cls.fit = logged_fit  # type: ignore[attr-defined]


def _install_subclass_hook(base: type) -> None:
    own = base.__dict__.get("__init_subclass__")
    _config.original_init_subclass = own

    def hook(cls: type, **kwargs: Any) -> None:
        if own is not None:
            own.__func__(cls, **kwargs)
        else:
            super(cast(Any, base), cls).__init_subclass__(**kwargs)
        _patch(cls)

    base.__init_subclass__ = classmethod(hook)  # type: ignore[method-assign,assignment]


def _uninstall(base: type) -> None:
    if not _config.enabled:
        return
    for cls in _subclasses(base):
        fit = cls.__dict__.get("fit")
        if fit is not None and hasattr(fit, _ORIGINAL):
            cls.fit = getattr(fit, _ORIGINAL)  # type: ignore[attr-defined]
    if _config.original_init_subclass is not None:
        base.__init_subclass__ = _config.original_init_subclass  # type: ignore[method-assign]
    else:
        del base.__init_subclass__
    _config.enabled = False


def _fit_and_log(fit: Any, est: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    X = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    own_run = tracking_fluent.active_run_id() is None
    run = tracking_fluent.start_run(name=type(est).__name__) if own_run else None
    try:
        _safely("params", lambda: tracking_fluent.log_params(_params(est)))
        result = fit(est, *args, **kwargs)
        _safely("training metrics",
                lambda: tracking_fluent.log_metrics(training_metrics(est, X, y)))
        if _config.log_models:
            _safely("model", lambda: registry_fluent.log_model(
                est, name=_config.registered_model_name, input_example=_head(X)))
    except BaseException as exc:
        if run is not None:
            run.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if run is not None:
        run.end("finished")
    return result


def _safely(what: str, action: Any) -> None:
    from ratchet.errors import RatchetError

    try:
        action()
    except (RatchetError, ValueError, TypeError, AttributeError) as exc:
        warnings.warn(f"ratchet autolog could not log the {what}: {exc}", stacklevel=4)


def _params(est: Any) -> dict[str, str]:
    params = {}
    for key, value in est.get_params(deep=True).items():
        text = repr(value) if inspect.isclass(value) or hasattr(value, "get_params") else str(value)
        params[key] = text[:MAX_PARAM_CHARS]
    return params


def _head(X: Any) -> Any:
    if hasattr(X, "iloc"):
        return X.iloc[:INPUT_EXAMPLE_ROWS]
    try:
        return X[:INPUT_EXAMPLE_ROWS]
    except (TypeError, KeyError, IndexError):
        return None


def training_metrics(est: Any, X: Any, y: Any) -> dict[str, float]:
    """Metrics on the training data, by estimator kind, prefixed ``training_``."""
    from sklearn import metrics
    from sklearn.base import is_classifier, is_regressor

    if y is None or not hasattr(est, "predict"):
        return {}
    out: dict[str, float] = {}
    pred = est.predict(X)
    if is_classifier(est):
        out["accuracy"] = metrics.accuracy_score(y, pred)
        average = "binary" if len(getattr(est, "classes_", [])) == 2 else "weighted"
        pos = est.classes_[1] if average == "binary" else 1
        out["precision"] = metrics.precision_score(y, pred, average=average, pos_label=pos,
                                                   zero_division=0)
        out["recall"] = metrics.recall_score(y, pred, average=average, pos_label=pos,
                                             zero_division=0)
        out["f1"] = metrics.f1_score(y, pred, average=average, pos_label=pos, zero_division=0)
        if hasattr(est, "predict_proba"):
            proba = est.predict_proba(X)
            out["log_loss"] = metrics.log_loss(y, proba, labels=est.classes_)
            if average == "binary":
                out["roc_auc"] = metrics.roc_auc_score(y, proba[:, 1])
            else:
                out["roc_auc"] = metrics.roc_auc_score(y, proba, multi_class="ovr",
                                                       labels=est.classes_)
    elif is_regressor(est):
        mse = metrics.mean_squared_error(y, pred)
        out.update(mse=mse, rmse=mse ** 0.5, mae=metrics.mean_absolute_error(y, pred),
                   r2=metrics.r2_score(y, pred))
    return {f"training_{k}": float(v) for k, v in out.items()}
