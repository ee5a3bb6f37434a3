"""XGBoost models in XGBoost's native UBJSON format (never pickle).

The sklearn wrappers are re-created by class name and filled with ``load_model``
(native: it also restores ``classes_`` and feature names). A bare ``Booster`` is loaded
into a small adapter whose ``predict`` builds the ``DMatrix`` a booster needs.
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

FLAVOR = "xgboost"
SAFE = True
MODEL_FILE = "model.ubj"
_WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")


class NativeXGBBooster:
    """A loaded ``xgboost.Booster`` with a ``predict`` that accepts frames and arrays."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, X: Any) -> np.ndarray:
        import xgboost as xgb

        return self.booster.predict(xgb.DMatrix(X, enable_categorical=True))

    def __repr__(self) -> str:
        return "NativeXGBBooster()"


def can_save(model: object) -> bool:
    xgb = sys.modules.get("xgboost")
    return xgb is not None and isinstance(model, xgb.XGBModel | xgb.Booster)


def save(model: object, directory: Path) -> tuple[str, dict[str, str]]:
    import numpy
    import xgboost as xgb

    if isinstance(model, xgb.Booster):
        kind = "Booster"
    elif isinstance(model, xgb.XGBModel):
        kind = type(model).__name__
        if kind not in _WRAPPERS or getattr(xgb, kind) is not type(model):
            raise InvalidInput(
                f"the xgboost flavor saves {', '.join(_WRAPPERS)} and Booster, not a "
                f"subclass {kind}; save it with flavor='python' (or flavor='sklearn')"
            )
    else:
        raise InvalidInput(f"the xgboost flavor cannot save a {type(model).__name__}")
    model.save_model(str(directory / MODEL_FILE))
    write_flavor_metadata(directory, {"kind": kind})
    return MODEL_FILE, {"xgboost": xgb.__version__, "numpy": numpy.__version__}


def load(directory: Path, manifest: Manifest, trust: bool) -> object:
    from ratchet.packaging.probe import probe_in_child

    probe_in_child(directory, manifest, trust=trust)  # native parser: a bad file may crash
    import xgboost as xgb

    path = directory / manifest.model_file
    kind = read_flavor_metadata(directory).get("kind")
    if kind != "Booster" and kind not in _WRAPPERS:
        raise InvalidInput(f"{directory}: flavor.json names an unknown XGBoost model kind {kind!r}")
    model: Any = xgb.Booster() if kind == "Booster" else getattr(xgb, kind)()
    try:
        model.load_model(str(path))
    except xgb.core.XGBoostError as e:
        raise InvalidInput(f"{path} is not a readable XGBoost model ({e})") from e
    return NativeXGBBooster(model) if kind == "Booster" else model


__all__ = ["FLAVOR", "SAFE", "NativeXGBBooster", "can_save", "load", "save"]
