"""The rainfall model's training pipeline, as the continuous-training controller runs it:
it receives ``data`` (a dataset version of labeled rows: the readings and ``rain``) and
registers a new version of ``rainfall``."""

from __future__ import annotations

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ratchet

MODEL, LABEL = "rainfall", "rain"


@ratchet.step(dataset={"output": "rainfall-train"})
def training_window(data: str) -> pd.DataFrame:
    """The labeled window the controller prepared, recorded as this model's training
    data (lineage: monitoring compares live traffic with it)."""
    return ratchet.data.get_version(data).to_pandas()


@ratchet.step(model={"output": MODEL})
def fit(train: pd.DataFrame, C: float = 1.0):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    model.fit(train.drop(columns=LABEL), train[LABEL].astype(int))
    ratchet.log_params({"C": C, "rows": len(train)})
    return model


@ratchet.pipeline(experiment="rainfall-ct")
def training(data: str, C: float = 1.0):
    return fit(training_window(data), C)
