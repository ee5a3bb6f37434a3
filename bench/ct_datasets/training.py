"""One generic training pipeline, as a user would first write it for any table: one-hot
encode the text columns, scale the numeric ones, logistic regression. The continuous-
training controller runs it with ``data`` (a dataset version of labeled rows, the label
in column ``data.label``) and it registers a version of the policy's model -- exactly
as examples/rainfall/training.py does for the demo.

A step registers its model under the name its decorator gives, so each dataset of
bench/ct_generalize.py has its own two-line fit step and pipeline; everything else is
shared."""

from __future__ import annotations

from typing import Any

import pandas as pd

import ratchet


def generic_model(train: pd.DataFrame, label: str) -> Any:
    """The scikit-learn pipeline fitted on ``train`` (every column but ``label`` is an
    input): text/categorical/boolean columns one-hot (unseen values ignored), numbers
    standardized, then LogisticRegression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if label not in train.columns:
        raise ratchet.errors.InvalidInput(
            f"training data has no label column {label!r} (columns: {list(train.columns)})")
    inputs = train.drop(columns=label)
    categorical = [c for c in inputs.columns
                   if not pd.api.types.is_numeric_dtype(inputs[c])
                   or pd.api.types.is_bool_dtype(inputs[c])]
    numeric = [c for c in inputs.columns if c not in categorical]
    encode = ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ("numeric", StandardScaler(), numeric)])
    model = Pipeline([("encode", encode),
                      ("classify", LogisticRegression(max_iter=1000))])
    return model.fit(inputs, train[label])


def fit_and_log(train: pd.DataFrame, label: str) -> Any:
    """``generic_model`` inside a pipeline step: its run records what it learned from."""
    ratchet.log_params({"rows": len(train), "label": label})
    return generic_model(train, label)


@ratchet.step(dataset={"output": "ct-train"})
def training_window(data: str) -> pd.DataFrame:
    """The labeled window the controller prepared, recorded as the model's training data
    (lineage: monitoring compares live traffic with it)."""
    return ratchet.data.get_version(data).to_pandas()


@ratchet.step(model={"output": "weather"})
def fit_weather(train: pd.DataFrame) -> Any:
    return fit_and_log(train, "weathersit")


@ratchet.pipeline(experiment="weather-ct")
def weather(data: str) -> Any:
    return fit_weather(training_window(data))


@ratchet.step(model={"output": "weather-shuffled"})
def fit_weather_shuffled(train: pd.DataFrame) -> Any:
    return fit_and_log(train, "weathersit")


@ratchet.pipeline(experiment="weather-shuffled-ct")
def weather_shuffled(data: str) -> Any:
    return fit_weather_shuffled(training_window(data))


@ratchet.step(model={"output": "rain"})
def fit_rain(train: pd.DataFrame) -> Any:
    return fit_and_log(train, "rain")


@ratchet.pipeline(experiment="rain-ct")
def rain(data: str) -> Any:
    return fit_rain(training_window(data))


@ratchet.step(model={"output": "rain-shuffled"})
def fit_rain_shuffled(train: pd.DataFrame) -> Any:
    return fit_and_log(train, "rain")


@ratchet.pipeline(experiment="rain-shuffled-ct")
def rain_shuffled(data: str) -> Any:
    return fit_rain_shuffled(training_window(data))
