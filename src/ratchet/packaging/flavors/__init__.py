"""Flavors: how each kind of model is written to and read from a directory.

Every flavor module exposes ``FLAVOR``, ``SAFE`` (loading runs no arbitrary code),
``can_save(model)``, ``save(model, directory)`` and ``load(directory, manifest, trust)``.
Detection walks ``DETECTION_ORDER``: LightGBM and XGBoost come before scikit-learn
because their sklearn wrappers subclass ``BaseEstimator``; ``python`` takes the rest.
``mlflow`` (a directory MLflow wrote) only loads: it is never detected nor saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ratchet.errors import InvalidInput
from ratchet.packaging.flavors import lightgbm, mlflow, python, sklearn, xgboost

if TYPE_CHECKING:
    from ratchet.packaging.manifest import Manifest


class Flavor(Protocol):
    FLAVOR: str
    SAFE: bool

    def can_save(self, model: object) -> bool: ...

    def save(self, model: object, directory: Path) -> tuple[str, dict[str, str]]: ...

    def load(self, directory: Path, manifest: Manifest, trust: bool) -> object: ...


FLAVORS: dict[str, Flavor] = {
    lightgbm.FLAVOR: lightgbm,
    xgboost.FLAVOR: xgboost,
    sklearn.FLAVOR: sklearn,
    python.FLAVOR: python,
    mlflow.FLAVOR: mlflow,
}
DETECTION_ORDER = ("lightgbm", "xgboost", "sklearn", "python")


def get_flavor(name: str) -> Flavor:
    """The flavor a caller named for saving; the message lists those that save."""
    try:
        return FLAVORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTION_ORDER))
        raise InvalidInput(f"unknown model flavor {name!r}; known flavors: {known}") from None


__all__ = ["DETECTION_ORDER", "FLAVORS", "Flavor", "get_flavor"]
