"""Models on pandas categorical columns, as a first policy's pipeline fits them, round-trip
through ratchet (logged, registered, loaded from the registry) without trust and predict
exactly as before: HistGradientBoosting with ``categorical_features="from_dtype"`` (it
holds ``partial(check_array, ...)`` inside a FunctionTransformer) and the usual
OrdinalEncoder / OneHotEncoder + ColumnTransformer pipelines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import ratchet
from ratchet.packaging.flavors.sklearn import referenced_types
from ratchet.packaging.flavors.sklearn_types import ALLOWLIST

pytestmark = pytest.mark.filterwarnings("ignore")  # tiny fits: convergence noise

N = 400


def frame(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Categorical (text and integer categories, one with missing values, one rare
    level), numeric and boolean columns; a label that depends on the categories."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue", "violet"], N, p=[0.4, 0.3, 0.28, 0.02])
    size = rng.choice([1, 2, 3], N)
    plan = rng.choice(np.array(["basic", "pro", None], dtype=object), N)
    x = rng.normal(size=N)
    X = pd.DataFrame({"colour": pd.Categorical(colour), "size": pd.Categorical(size),
                      "plan": pd.Categorical(plan), "x": x, "flag": rng.random(N) > 0.5})
    y = np.where((colour == "red") ^ (x > 0.3) | (size == 3), "yes", "no")
    return X, y


def hgb_from_dtype() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=15, categorical_features="from_dtype")


def hgb_regressor_from_dtype() -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=15, categorical_features="from_dtype")


def ordinal_then_hgb() -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encode = make_column_transformer(
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
         ["colour", "size", "plan"]), remainder="passthrough")
    return make_pipeline(encode, HistGradientBoostingClassifier(
        max_iter=15, categorical_features=[0, 1, 2]))


def onehot_then_logistic() -> Any:
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    encode = ColumnTransformer([
        ("categories", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                     OneHotEncoder(handle_unknown="infrequent_if_exist",
                                                   min_frequency=20)),
         make_column_selector(dtype_include="category")),
        ("numbers", StandardScaler(), ["x"])], remainder="passthrough")
    return make_pipeline(encode, LogisticRegression(max_iter=500))


def onehot_dense_then_forest() -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False, drop="if_binary"),
         ["colour", "size", "plan"]), remainder="passthrough", verbose_feature_names_out=False)
    return make_pipeline(encode.set_output(transform="pandas"),
                         RandomForestClassifier(n_estimators=10, random_state=0))


MODELS: dict[str, Callable[[], Any]] = {
    "hgb-from-dtype": hgb_from_dtype, "hgb-regressor-from-dtype": hgb_regressor_from_dtype,
    "ordinal-hgb": ordinal_then_hgb, "onehot-logistic": onehot_then_logistic,
    "onehot-forest": onehot_dense_then_forest}


@pytest.mark.parametrize("name", list(MODELS))
def test_logged_registered_and_loaded_without_trust(name: str, workspace: Path) -> None:
    X, y = frame()
    target: Any = (y == "yes").astype(float) if "regressor" in name else y
    model = MODELS[name]().fit(X, target)
    with ratchet.start_run(experiment="categorical"):
        ratchet.log_model(model, name=name, input_example=X)
    loaded = ratchet.models.load(f"models:/{name}/1")            # trust=False
    assert loaded.flavor == "sklearn"
    fresh, _ = frame(seed=1)                                    # rows it never saw
    for rows in (X, fresh):
        np.testing.assert_array_equal(np.asarray(loaded.predict(rows)), model.predict(rows))


def test_the_hgb_needs_only_reviewed_names(tmp_path: Path) -> None:
    """What the categorical HGB file names, and why each non-estimator entry is safe: the
    partial and check_array are on the list on purpose (see sklearn_types.py)."""
    from ratchet.packaging import save_model

    X, y = frame()
    save_model(hgb_from_dtype().fit(X, y), tmp_path / "m", input_example=X)
    named = referenced_types(tmp_path / "m" / "model.skops")
    assert {"functools.partial", "sklearn.utils.validation.check_array",
            "sklearn.preprocessing._function_transformer.FunctionTransformer"} <= named
    assert named <= ALLOWLIST
    functions = {n for n in named if not isinstance(resolve(n), type)}
    assert functions == {"sklearn.utils.validation.check_array"}  # the only function


def resolve(name: str) -> Any:
    import importlib

    module, attribute = name.rsplit(".", 1)
    return getattr(importlib.import_module(module), attribute)


def test_skops_is_told_every_allowed_name_the_file_holds(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """skops versions differ in what their own audit reports as untrusted: a version that
    leaves out the partial and its check_array must not refuse the model once ratchet's
    allow-list has accepted every name in the file."""
    import skops.io

    from ratchet.errors import Untrusted
    from ratchet.packaging import load_model, save_model

    X, y = frame()
    model = hgb_from_dtype().fit(X, y)
    save_model(model, tmp_path / "m", input_example=X)
    monkeypatch.setattr(skops.io, "get_untrusted_types", lambda **_: [])
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(np.asarray(loaded.predict(X)), model.predict(X))
    # The allow-list still decides: a name outside it is refused whatever skops reports.
    from tests.packaging.test_gadgets import obj, write_gadget

    write_gadget(tmp_path / "n", obj("sklearn.manifold._t_sne", "TSNE"))
    with pytest.raises(Untrusted, match="TSNE"):
        load_model(tmp_path / "n")
