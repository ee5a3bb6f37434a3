"""Where a model version keeps what MLflow knows of it and ratchet's record has no field
for: hidden version tags under ``ratchet.mlflow.``. Written by the MLflow API
(``ratchet.server.mlflow``) and by ``ratchet import mlflow``, read by the MLflow API."""

from __future__ import annotations

HIDDEN_TAG_PREFIX = "ratchet.mlflow."
SOURCE_TAG = HIDDEN_TAG_PREFIX + "source"        # the source URI MLflow's client sent
MODEL_ID_TAG = HIDDEN_TAG_PREFIX + "model_id"    # MLflow 3's logged model
RUN_ID_TAG = HIDDEN_TAG_PREFIX + "run_id"  # MLflow's run_id, when a logged model's holder
# run is not it (a model logged outside a run has none)

__all__ = ["HIDDEN_TAG_PREFIX", "MODEL_ID_TAG", "RUN_ID_TAG", "SOURCE_TAG"]
