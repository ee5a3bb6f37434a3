"""Model packaging: flavors, manifests and signatures.

``save_model`` writes a model into a directory with a ``ratchet-model.json`` manifest;
``load_model`` reads it back as a :class:`LoadedModel`. Heavy libraries (sklearn,
skops, lightgbm, xgboost, cloudpickle, pandas) are imported only when used.
"""

from __future__ import annotations

from ratchet.packaging.directory import LoadedModel, detect_flavor, load_model, save_model
from ratchet.packaging.manifest import Manifest
from ratchet.packaging.signature import ColumnSpec, Signature, infer_signature

__all__ = [
    "ColumnSpec",
    "LoadedModel",
    "Manifest",
    "Signature",
    "detect_flavor",
    "infer_signature",
    "load_model",
    "save_model",
]
