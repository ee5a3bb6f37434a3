"""Steps and pipelines for the pipeline tests (importable, so runs can be resumed)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

import ratchet

CALLS: dict[str, int] = {}


def _count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


@ratchet.step
def load(n: int) -> pd.DataFrame:
    _count("load")
    print(f"loading {n} rows")
    return pd.DataFrame({"x": np.arange(n, dtype="float64"), "y": np.arange(n) % 2})


@ratchet.step(outputs=("train", "test"))
def split(df: pd.DataFrame, fraction: float = 0.5):
    _count("split")
    cut = int(len(df) * fraction)
    return df.iloc[:cut].reset_index(drop=True), df.iloc[cut:].reset_index(drop=True)


@ratchet.step
def fit(train: pd.DataFrame, C: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    _count("fit")
    ratchet.log_metric("train_rows", len(train))
    return LogisticRegression(C=C).fit(train[["x"]], train["y"])


@ratchet.step
def evaluate(model, test: pd.DataFrame) -> dict:
    _count("evaluate")
    return {"accuracy": float(model.score(test[["x"]], test["y"])), "rows": len(test)}


@ratchet.pipeline
def training(n: int = 40, C: float = 1.0):
    df = load(n)
    train, test = split(df)
    model = fit(train, C=C)
    return {"report": evaluate(model, test), "rows": n}


def flag_path() -> Path:
    return Path(os.environ["RATCHET_TEST_FLAG"])


@ratchet.step(cache=False)
def first(x: int) -> int:
    _count("first")
    return x + 1


@ratchet.step
def fragile(x: int) -> int:
    _count("fragile")
    if flag_path().exists():
        raise RuntimeError("the flag file says fail")
    return x * 10


@ratchet.step
def last(x: int) -> int:
    _count("last")
    return x + 5


@ratchet.pipeline
def resumable(x: int = 1):
    return last(fragile(first(x)))


@ratchet.step
def slow(seconds: float) -> float:
    Path(os.environ["RATCHET_TEST_FLAG"]).write_text("started")
    time.sleep(seconds)
    return seconds


@ratchet.pipeline
def sleeper(seconds: float = 30.0):
    return slow(seconds)
