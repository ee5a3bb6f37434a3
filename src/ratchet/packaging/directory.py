"""Save a model to a directory with its manifest, and load it back.

Pure domain code: a local directory in, a local directory out. The registry stores the
directory as artifacts and records the manifest; serving loads it with ``load_model``.
Every saved directory also holds an ``MLmodel`` (``mlflow_format``), so
``mlflow.pyfunc.load_model`` loads it through ratchet, under the same trust rules.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, NotFound, Untrusted
from ratchet.packaging.flavors import DETECTION_ORDER, FLAVORS, get_flavor
from ratchet.packaging.manifest import (
    MANIFEST_FILENAME,
    Manifest,
    example_records,
    write_json_atomic,
)
from ratchet.packaging.mlflow_format import FLAVOR as MLFLOW_FLAVOR
from ratchet.packaging.mlflow_format import write_mlmodel
from ratchet.packaging.model_features import ModelFeatures
from ratchet.packaging.signature import Signature, as_frame, infer_signature

if TYPE_CHECKING:
    import numpy as np

# Libraries whose version drift can change predictions: distribution -> module.
_VERSIONED_MODULES = {
    "scikit-learn": "sklearn",
    "skops": "skops",
    "lightgbm": "lightgbm",
    "xgboost": "xgboost",
    "cloudpickle": "cloudpickle",
}


class LoadedModel:
    """A loaded model: ``predict`` (and ``predict_proba``) with signature checks."""

    def __init__(self, manifest: Manifest, raw: object, directory: Path | None = None) -> None:
        self.manifest = manifest
        self.raw = raw
        self.directory = directory
        where = f"{directory / MANIFEST_FILENAME}: signature" if directory else "signature"
        self.signature: Signature | None = (
            None if manifest.signature is None else Signature.from_dict(manifest.signature, where)
        )
        self.features: ModelFeatures | None = (
            None if manifest.features is None
            else ModelFeatures.from_dict(manifest.features,
                                         str(directory / MANIFEST_FILENAME) if directory
                                         else "model manifest")
        )

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def has_predict_proba(self) -> bool:
        return self.manifest.has_predict_proba and callable(
            getattr(self.raw, "predict_proba", None)
        )

    def prepare(self, X: Any) -> Any:
        """The input as the model expects it: validated against the signature, then
        given as a frame or an array depending on what the model was trained on."""
        import numpy as np
        import pandas as pd

        fmt = self.manifest.input_format
        if self.signature is not None:
            frame = self.signature.validate(X)
            as_array = fmt == "ndarray" or (fmt is None and isinstance(X, np.ndarray))
            return frame.to_numpy() if as_array else frame
        if fmt == "ndarray":
            return X if isinstance(X, np.ndarray) else as_frame(X).to_numpy()
        return X if isinstance(X, pd.DataFrame | np.ndarray) else as_frame(X)

    def predict(self, X: Any) -> np.ndarray:
        import numpy as np

        return np.asarray(self.raw.predict(self.prepare(X)))  # type: ignore[attr-defined]

    def predict_proba(self, X: Any) -> np.ndarray:
        import numpy as np

        if not self.has_predict_proba:
            raise InvalidInput(
                f"model {self._name()} ({self.flavor}) has no predict_proba; use predict"
            )
        return np.asarray(self.raw.predict_proba(self.prepare(X)))  # type: ignore[attr-defined]

    def _name(self) -> str:
        return str(self.directory) if self.directory is not None else type(self.raw).__name__

    def __repr__(self) -> str:
        return f"LoadedModel(flavor={self.flavor!r}, raw={type(self.raw).__name__}, directory={self.directory})"


def detect_flavor(model: object) -> str:
    """The flavor that would save ``model``: lightgbm/xgboost before sklearn, else python."""
    for name in DETECTION_ORDER:
        if FLAVORS[name].can_save(model):
            return name
    return "python"


def save_model(
    model: object,
    directory: Path | str,
    *,
    flavor: str | None = None,
    input_example: Any = None,
    signature: Signature | None = None,
    metrics: Mapping[str, float] | None = None,
    features: ModelFeatures | None = None,
) -> Manifest:
    """Write ``model`` and its manifest into ``directory`` (new or empty).

    Without a ``signature`` one is inferred from ``input_example`` and the model's
    predictions on it; pass the training frame as the example for a fuller signature
    (only its first rows are stored as the example). The manifest is written last, so
    a directory without one is an incomplete save. ``features``: the feature-store
    inputs (``ratchet.packaging.model_features``): a server then takes entity keys and
    fetches the features; such a model needs a signature (the columns it is given).
    """
    directory = Path(directory)
    if not callable(getattr(model, "predict", None)):
        raise InvalidInput(f"cannot save a {type(model).__name__}: it has no predict method")
    name = flavor if flavor is not None else detect_flavor(model)
    module = get_flavor(name)
    if not module.can_save(model):
        raise InvalidInput(
            f"flavor {name!r} cannot save a {type(model).__name__}; "
            f"its detected flavor is {detect_flavor(model)!r}"
        )
    clean_metrics = _check_metrics(metrics)
    if features is not None and not isinstance(features, ModelFeatures):
        raise InvalidInput(f"features must be a ModelFeatures, got {type(features).__name__}")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InvalidInput(
            f"{directory} is not an empty directory; save each model into a fresh one"
        )

    names = _feature_names(model)
    example = None
    if input_example is not None:
        example = example_records(input_example, names)
        if signature is None:
            signature = _infer_from_example(model, input_example, names)
    if features is not None and signature is None:
        raise InvalidInput(
            "a model logged with features needs a signature: the columns it takes, in "
            "order. Pass input_example=<a few rows of the training set's feature columns> "
            "or signature=ratchet.packaging.infer_signature(X_train)")
    manifest_signature = None if signature is None else signature.to_dict()
    json.dumps([manifest_signature, example], allow_nan=False)  # fail before writing files

    directory.mkdir(parents=True, exist_ok=True)
    model_file, versions = module.save(model, directory)
    manifest = Manifest(
        flavor=name,
        model_file=model_file,
        library_versions={"python": platform.python_version(), **versions},
        signature=manifest_signature,
        input_example=example,
        metrics=clean_metrics,
        safe=module.SAFE,
        has_predict_proba=callable(getattr(model, "predict_proba", None)),
        input_format=_input_format(model, name, input_example, names),
        features=None if features is None else features.to_dict(),
    )
    write_mlmodel(directory, manifest)  # so mlflow.pyfunc.load_model loads it via ratchet
    write_json_atomic(directory / MANIFEST_FILENAME, manifest.to_json())
    return manifest


def load_model(directory: Path | str, *, trust: bool = False) -> LoadedModel:
    """Load a model saved by :func:`save_model`.

    Unsafe flavors (cloudpickle) and skops files holding types outside the allow-list
    raise :class:`~ratchet.errors.Untrusted` unless ``trust=True``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotFound(f"model directory {directory} does not exist")
    path = directory / MANIFEST_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(
            f"{directory} has no {MANIFEST_FILENAME}; it is not a model saved by ratchet "
            "(or the save did not finish)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{path}: cannot read the model manifest ({e})") from e
    manifest = Manifest.from_json(text, where=str(path))
    if manifest.flavor not in FLAVORS:
        raise InvalidInput(
            f"{path}: unknown model flavor {manifest.flavor!r}; known: {', '.join(sorted(FLAVORS))}"
        )
    if not (directory / manifest.model_file).is_file():
        raise InvalidInput(f"{directory}: model file {manifest.model_file!r} is missing")
    module = FLAVORS[manifest.flavor]
    if module.SAFE and not manifest.safe and not trust:
        # Unsafe flavors refuse in their own load; this catches a manifest marked unsafe.
        if manifest.flavor == MLFLOW_FLAVOR:
            from ratchet.packaging.flavors.mlflow import refusal

            raise Untrusted(refusal(directory))  # names the MLflow model's own risk
        raise Untrusted(
            f"model {directory} ({manifest.flavor} flavor) is marked unsafe: loading it runs "
            "arbitrary code. Pass trust=True only if you trust its source."
        )
    raw = module.load(directory, manifest, trust)
    _warn_on_version_drift(directory, manifest)
    return LoadedModel(manifest, raw, directory)


def _check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    clean: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str) or isinstance(value, bool):
            raise InvalidInput(f"metric {key!r}: names must be strings and values numbers")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"metric {key!r} is {value!r}, not a number") from None
        if not math.isfinite(number):
            raise InvalidInput(f"metric {key!r} is {number}; metrics must be finite numbers")
        clean[key] = number
    return clean


def _feature_names(model: object) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _infer_from_example(model: object, example: Any, names: list[str] | None) -> Signature:
    import numpy as np
    import pandas as pd

    prepared = example if isinstance(example, pd.DataFrame | np.ndarray) else as_frame(example)
    predictor: Any = model
    xgb = sys.modules.get("xgboost")
    if xgb is not None and isinstance(model, xgb.Booster):
        from ratchet.packaging.flavors.xgboost import NativeXGBBooster

        predictor = NativeXGBBooster(model)  # a bare Booster only predicts on a DMatrix
    try:
        y_pred = predictor.predict(prepared)
    except Exception as e:
        raise InvalidInput(
            f"model.predict failed on the input example ({type(e).__name__}: {e}); "
            "pass an example the model accepts, or a signature"
        ) from e
    return infer_signature(example, y_pred, feature_names=names)


def _input_format(model: object, flavor: str, example: Any, names: list[str] | None) -> str | None:
    import pandas as pd

    if names is not None:
        return "dataframe"  # fitted on named columns (ColumnTransformer may select by name)
    if example is not None:
        frame_like = (
            isinstance(example, pd.DataFrame | Mapping)
            or (
                isinstance(example, list | tuple)
                and bool(example)
                and isinstance(example[0], Mapping)
            )
            or type(example).__module__.startswith("pyarrow")
        )
        return "dataframe" if frame_like else "ndarray"
    if flavor in ("sklearn", "xgboost") and callable(getattr(model, "get_params", None)):
        return "ndarray"  # a fitted sklearn-style model without feature names saw an array
    return None


def _warn_on_version_drift(directory: Path, manifest: Manifest) -> None:
    saved = manifest.library_versions
    for dist, module_name in _VERSIONED_MODULES.items():
        module = sys.modules.get(module_name)
        current = getattr(module, "__version__", None)
        if dist in saved and current is not None and saved[dist] != current:
            warnings.warn(
                f"model {directory} was saved with {dist} {saved[dist]} and is loaded with "
                f"{current}; predictions may differ. Pin {dist}=={saved[dist]} or re-save it.",
                stacklevel=3,
            )


__all__ = ["LoadedModel", "detect_flavor", "load_model", "save_model"]
