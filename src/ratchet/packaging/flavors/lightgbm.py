"""LightGBM models in LightGBM's native text format (never pickle).

A ``Booster`` is saved and loaded as is. For the sklearn wrappers the booster is saved
natively and ``flavor.json`` records the wrapper kind and the class labels; loading
gives an adapter whose ``predict`` / ``predict_proba`` behave like the wrapper's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput
from ratchet.packaging.manifest import read_flavor_metadata, write_flavor_metadata

if TYPE_CHECKING:
    import numpy as np

    from ratchet.packaging.manifest import Manifest

FLAVOR = "lightgbm"
SAFE = True
MODEL_FILE = "model.txt"
_WRAPPERS = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker")


class NativeLGBMModel:
    """A loaded LGBMRegressor / LGBMRanker: ``predict`` on the native booster."""

    def __init__(self, booster: Any, kind: str) -> None:
        self.booster = booster
        self.kind = kind

    def predict(self, X: Any) -> np.ndarray:
        return self.booster.predict(X)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r})"


class NativeLGBMClassifier(NativeLGBMModel):
    """A loaded LGBMClassifier: probabilities from the booster, labels from ``classes_``."""

    def __init__(self, booster: Any, kind: str, classes: list[Any]) -> None:
        import numpy as np

        super().__init__(booster, kind)
        self.classes_ = np.asarray(classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        import numpy as np

        proba = np.asarray(self.booster.predict(X))
        if proba.ndim == 1:  # binary objectives give P(class 1) only
            proba = np.column_stack([1.0 - proba, proba])
        return proba

    def predict(self, X: Any) -> np.ndarray:
        import numpy as np

        # Same rule as LGBMClassifier.predict: argmax of the probabilities.
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def can_save(model: object) -> bool:
    lgb = sys.modules.get("lightgbm")
    return lgb is not None and isinstance(model, lgb.LGBMModel | lgb.Booster)


def save(model: object, directory: Path) -> tuple[str, dict[str, str]]:
    import lightgbm as lgb
    import numpy

    booster: Any
    if isinstance(model, lgb.Booster):
        booster, meta = model, {"kind": "Booster"}
    elif isinstance(model, lgb.LGBMModel):
        kind = type(model).__name__
        if kind not in _WRAPPERS or getattr(lgb, kind) is not type(model):
            raise InvalidInput(
                f"the lightgbm flavor saves {', '.join(_WRAPPERS)} and Booster, not a "
                f"subclass {kind}; save it with flavor='python' (or flavor='sklearn')"
            )
        if callable(getattr(model, "objective_", None)):
            raise InvalidInput(
                "a LightGBM model with a custom objective function cannot be saved natively; "
                "save it with flavor='python'"
            )
        booster = model.booster_
        meta = {"kind": kind}
        if isinstance(model, lgb.LGBMClassifier):
            meta["classes"] = numpy.asarray(model.classes_).tolist()
    else:
        raise InvalidInput(f"the lightgbm flavor cannot save a {type(model).__name__}")
    booster.save_model(str(directory / MODEL_FILE))
    write_flavor_metadata(directory, meta)
    return MODEL_FILE, {"lightgbm": lgb.__version__, "numpy": numpy.__version__}


def load(directory: Path, manifest: Manifest, trust: bool) -> object:
    from ratchet.packaging.probe import probe_in_child

    probe_in_child(directory, manifest, trust=trust)  # native parser: a bad file may crash
    import lightgbm as lgb

    path = directory / manifest.model_file
    meta = read_flavor_metadata(directory)
    try:
        booster = lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as e:
        raise InvalidInput(f"{path} is not a readable LightGBM model ({e})") from e
    kind = meta.get("kind")
    if kind == "Booster":
        return booster
    if kind == "LGBMClassifier":
        classes = meta.get("classes")
        if not isinstance(classes, list) or not classes:
            raise InvalidInput(f"{directory}: flavor.json has no class labels for {kind}")
        return NativeLGBMClassifier(booster, kind, classes)
    if kind in _WRAPPERS:
        return NativeLGBMModel(booster, kind)
    raise InvalidInput(f"{directory}: flavor.json names an unknown LightGBM model kind {kind!r}")


__all__ = ["FLAVOR", "SAFE", "NativeLGBMClassifier", "NativeLGBMModel", "can_save", "load", "save"]
