"""The ``loader_module`` MLflow calls for a model ratchet saved.

``mlflow.pyfunc.load_model(dir)`` reads the ``MLmodel`` ratchet wrote
(:func:`ratchet.packaging.mlflow_format.write_mlmodel`), imports this module and calls
``_load_pyfunc(dir)``. The directory is loaded with ratchet's own ``load_model``: skops
with its allow-list, native LightGBM / XGBoost files, signature checks on every predict.
Trust is never implied: a cloudpickle model is refused here (``Untrusted``); load it with
``ratchet.packaging.load_model(dir, trust=True)`` if you trust its source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ratchet.packaging.directory import LoadedModel, load_model


class RatchetPyfuncModel:
    """What MLflow's ``PyFuncModel`` wraps: ``predict(model_input, params=None)``."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        # ``params`` are MLflow inference parameters; ratchet models take none.
        return self.model.predict(model_input)

    def get_raw_model(self) -> object:
        """The underlying model (MLflow's ``PyFuncModel.get_raw_model`` calls this)."""
        return self.model.raw

    def __repr__(self) -> str:
        return f"RatchetPyfuncModel({self.model!r})"


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> RatchetPyfuncModel:
    """Load the ratchet model in ``path`` for MLflow (``model_config`` is accepted because
    MLflow passes one when the MLmodel or the caller sets it; ratchet models use none)."""
    return RatchetPyfuncModel(load_model(Path(path), trust=False))


__all__ = ["RatchetPyfuncModel", "_load_pyfunc"]
