"""One loaded model version, ready to answer: validated columns in, output columns out.

Classifiers answer with the predicted label and one ``proba_<class>`` column per class
(monitoring estimates performance from these before labels arrive). The model input is
built the way the model was trained: a float matrix for models fitted on arrays, a typed
DataFrame (categories, datetimes) for models fitted on frames. A model logged with
``features=[...]`` is validated by ``feature_lookup.FeatureRequestValidator``: its requests
carry entity keys, and the columns it predicts on are the features read for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput
from ratchet.packaging.signature import BOOL, CATEGORY, STRING
from ratchet.serving.request_validation import RequestValidator, ValidationPolicy

if TYPE_CHECKING:
    from ratchet.packaging import LoadedModel
    from ratchet.serving.feature_lookup import FeatureLookup, FeatureRequestValidator
    from ratchet.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelVersionRef:
    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"


class ServedModel:
    def __init__(self, ref: ModelVersionRef, model: LoadedModel, *,
                 policy: ValidationPolicy | None = None, allowed_extra: tuple[str, ...] = (),
                 probabilities: bool = True, workspace: Workspace | None = None) -> None:
        if model.signature is None:
            # Nothing says which columns, in which order, of which kinds: every request
            # would fail (or reach the model unchecked). Refuse to load, with the fix.
            raise InvalidInput(
                f"model {ref} has no input signature (it was logged without input_example "
                "or signature), so its requests cannot be checked or put in column order; "
                "log it again with input_example=<a few training rows> or "
                "signature=ratchet.packaging.infer_signature(X_train), then serve that version")
        self.ref = ref
        self.model = model
        self.signature = model.signature
        self.validator: RequestValidator | FeatureRequestValidator
        self.feature_lookup: FeatureLookup | None = None
        if model.features is None:
            self.validator = RequestValidator(model.signature, policy,
                                              allowed_extra=allowed_extra)
        else:  # called with entity keys: the features are fetched per request
            from ratchet.serving.feature_lookup import FeatureLookup, FeatureRequestValidator

            if workspace is None:
                raise InvalidInput(f"model {ref} reads features from the feature store; "
                                   "serve it with a workspace (its online store and "
                                   "feature definitions)")
            self.feature_lookup = FeatureLookup(str(ref), model.features, model.signature,
                                                workspace)
            self.validator = FeatureRequestValidator(self.feature_lookup, model.signature,
                                                     policy, allowed_extra=allowed_extra)
        self.load_seconds = 0.0
        raw = model.raw
        self._predict = raw.predict  # type: ignore[attr-defined]
        self._proba = raw.predict_proba if (  # type: ignore[attr-defined]
            probabilities and model.has_predict_proba) else None
        classes = getattr(raw, "classes_", None)
        self.classes: list[Any] | None = None if classes is None else list(classes.tolist())
        self._proba_names = None if self.classes is None else [
            f"proba_{c}" for c in self.classes]
        # One model call instead of two: for almost every classifier the label is the
        # class of highest probability. Not for SVMs (Platt scaling can disagree with the
        # decision function): they pay for both calls.
        self._labels_from_proba = self._proba is not None and not _final_is_svm(raw)
        self._classes_array: Any = None if classes is None else classes
        self._as_array = self._wants_array()
        self._input_names = model.signature.input_names

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    def _wants_array(self) -> bool:
        fmt = self.model.manifest.input_format
        if self.signature is None:
            return fmt == "ndarray"
        numeric = all(c.dtype.startswith(("int", "uint", "float")) for c in self.signature.inputs)
        return fmt == "ndarray" and numeric

    # ------------------------------------------------------------------ predicting
    def model_input(self, columns: Mapping[str, Any]) -> Any:
        import numpy as np

        if self._as_array:
            return np.array([columns[n] for n in self._input_names], dtype=np.float64).T
        return self._frame(columns)

    def _frame(self, columns: Mapping[str, Any]) -> Any:
        import pandas as pd

        if self.signature is None:
            return pd.DataFrame(dict(columns))
        data: dict[str, Any] = {}
        for spec in self.signature.inputs:
            values = columns[spec.name]
            if spec.dtype == CATEGORY and spec.categories is not None:
                data[spec.name] = pd.Categorical(values, categories=list(spec.categories))
            elif spec.dtype in (STRING, BOOL):
                data[spec.name] = pd.Series(values, dtype=object)
            elif spec.dtype.startswith("datetime64"):
                parsed = pd.to_datetime(pd.Series(values), utc=True, format="mixed")
                tz = getattr(pd.api.types.pandas_dtype(spec.dtype), "tz", None)
                data[spec.name] = (parsed.dt.tz_convert(tz) if tz is not None
                                   else parsed.dt.tz_convert("UTC").dt.tz_localize(None))
            elif spec.dtype.startswith(("int", "uint")):
                series = pd.Series(values, dtype="float64")
                data[spec.name] = series if series.isna().any() else series.astype(spec.dtype)
            elif spec.dtype.startswith("float"):
                data[spec.name] = pd.Series(values, dtype=spec.dtype)
            else:
                data[spec.name] = pd.Series(values, dtype=object)
        return pd.DataFrame(data)

    def predict(self, columns: Mapping[str, Any], *, as_lists: bool = True
                ) -> dict[str, Any]:
        """Output columns for validated input columns (one value per row): Python lists
        for JSON, or NumPy arrays (``as_lists=False``, batch scoring)."""
        import numpy as np

        X = self.model_input(columns)
        out: dict[str, Any]
        if self._proba is not None and self._proba_names is not None:
            proba = np.asarray(self._proba(X))
            labels = (self._classes_array[proba.argmax(axis=1)] if self._labels_from_proba
                      else np.asarray(self._predict(X)))
            out = {"prediction": labels}
            for j, name in enumerate(self._proba_names):
                out[name] = proba[:, j]
        else:
            pred = np.asarray(self._predict(X))
            out = ({f"prediction_{j}": pred[:, j] for j in range(pred.shape[1])}
                   if pred.ndim == 2 else {"prediction": pred})
        return {k: v.tolist() for k, v in out.items()} if as_lists else out

    # ------------------------------------------------------------------ warming
    def warm(self) -> None:
        """Run a few predictions so the first real request does not pay lazy setup."""
        example = self._example()
        if example is None:
            return
        try:
            for _ in range(3):
                self.predict(example)
        except Exception as exc:  # a model that cannot predict its own example still loads
            log.warning("warm-up of %s failed: %s", self.ref, exc)

    def _example(self) -> dict[str, list[Any]] | None:
        records = self.model.manifest.input_example  # dicts, checked by the manifest
        if records:
            return {n: [records[0].get(n)] for n in self._input_names}
        if self.signature is None:
            return None
        row: dict[str, list[Any]] = {}
        for spec in self.signature.inputs:
            if spec.categories:
                row[spec.name] = [spec.categories[0]]
            elif spec.dtype.startswith(("int", "uint", "float")):
                low = spec.min if spec.min is not None else 0.0
                high = spec.max if spec.max is not None else low
                mid = (low + high) / 2
                row[spec.name] = [round(mid) if spec.dtype.startswith(("int", "uint")) else mid]
            else:
                return None
        return row


def _final_is_svm(model: Any) -> bool:
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if steps else model
    return type(final).__name__ in ("SVC", "NuSVC")


def load_served_model(ref: ModelVersionRef, model: LoadedModel, **kwargs: Any) -> ServedModel:
    """Wrap and warm a loaded model, recording how long that took."""
    started = time.perf_counter()
    served = ServedModel(ref, model, **kwargs)
    served.warm()
    served.load_seconds = time.perf_counter() - started
    return served
