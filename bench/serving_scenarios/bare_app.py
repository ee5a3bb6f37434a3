"""The two bare FastAPI endpoints ``bench/serving_bench.py`` compares ratchet with.

    uvicorn --app-dir bench/serving_scenarios bare_app:constant_app   # the HTTP floor
    BENCH_MODEL_PATH=model.pkl uvicorn ... bare_app:model_app         # the "bare endpoint"

``constant_app``: ``POST /predict`` answers a constant and never reads the body.
``model_app``: ``POST /predict`` takes the same ``{"inputs": [{"f0": ..., ...}]}`` body as
ratchet, builds a NumPy array in column order and calls ``model.predict`` on it: what a
user writes by hand in a few lines (no validation, no logging, no metrics). Both are plain
``async def`` routes returning a dict, as FastAPI's tutorial writes them.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np
from fastapi import FastAPI, Request

COLUMNS = [f"f{i}" for i in range(int(os.environ.get("BENCH_FEATURES", "10")))]

constant_app = FastAPI()


@constant_app.post("/predict")
async def predict_constant() -> dict[str, Any]:
    return {"predictions": [0]}


@constant_app.get("/health")
async def health_constant() -> dict[str, bool]:
    return {"ready": True}


model_app = FastAPI()
_model: Any = None


def _load() -> Any:
    global _model
    if _model is None:
        with open(os.environ["BENCH_MODEL_PATH"], "rb") as f:
            _model = pickle.load(f)  # our own file, written by serving_bench.py
    return _model


if "BENCH_MODEL_PATH" in os.environ:
    _load()  # at import, so the server is ready when it answers /health


@model_app.post("/predict")
async def predict_model(request: Request) -> dict[str, Any]:
    body = await request.json()
    X = np.array([[row[c] for c in COLUMNS] for row in body["inputs"]], dtype=np.float64)
    return {"predictions": _load().predict(X).tolist()}


@model_app.get("/health")
async def health_model() -> dict[str, bool]:
    return {"ready": True}
