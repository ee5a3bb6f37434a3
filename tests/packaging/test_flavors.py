from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ratchet.errors import Untrusted
from ratchet.packaging import detect_flavor, load_model, save_model
from ratchet.packaging.flavors.sklearn import is_allowed_type


def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X = X.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    X["size"] = np.where(X["sepal_length"] > 5.8, "big", "small")
    return X, y


class Doubler:
    """A plain Python model: no library, just ``predict``."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float).sum(axis=1) * self.factor


class HomeMade(BaseEstimator):
    """An sklearn-style estimator whose class skops does not know: needs trust."""

    def __init__(self, offset: float = 1.0) -> None:
        self.offset = offset

    def fit(self, X: Any, y: Any) -> HomeMade:
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.mean_ + self.offset)


def logistic() -> tuple[Any, Any, str, bool]:
    X, y = load_iris(return_X_y=True)  # a plain array: no feature names
    return LogisticRegression(max_iter=1000).fit(X, y), X, "sklearn", True


def pipeline() -> tuple[Any, Any, str, bool]:
    X, y = iris_frame()
    numeric = [c for c in X.columns if c != "size"]
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["size"]),
        ]
    )
    model = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=1000))]).fit(X, y)
    return model, X, "sklearn", True


def tree_ensembles() -> tuple[Any, Any, str, bool]:
    # Their fitted trees are types skops distrusts by default; ratchet's allow-list takes them.
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y), X, "sklearn", False


def hist_gradient_boosting() -> tuple[Any, Any, str, bool]:
    X, y = load_iris(return_X_y=True)
    model = HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    return model, X, "sklearn", True


def lgbm_classifier() -> tuple[Any, Any, str, bool]:
    X, y = iris_frame()
    X["size"] = X["size"].astype("category")
    labels = np.array(["setosa", "versicolor", "virginica"])[y]  # string labels
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, labels)
    return model, X, "lightgbm", True


def lgbm_binary() -> tuple[Any, Any, str, bool]:
    X, y = load_breast_cancer(return_X_y=True)
    return lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y), X, "lightgbm", True


def lgbm_regressor() -> tuple[Any, Any, str, bool]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, y), X, "lightgbm", False


def lgbm_booster() -> tuple[Any, Any, str, bool]:
    X, y = load_diabetes(return_X_y=True)
    params = {"objective": "regression", "verbose": -1}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=10), X, "lightgbm", False


def xgb_classifier() -> tuple[Any, Any, str, bool]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return xgb.XGBClassifier(n_estimators=10).fit(X, y), X, "xgboost", True


def xgb_regressor() -> tuple[Any, Any, str, bool]:
    X, y = load_diabetes(return_X_y=True)
    return xgb.XGBRegressor(n_estimators=10).fit(X, y), X, "xgboost", False


def xgb_booster() -> tuple[Any, Any, str, bool]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    booster = xgb.train({"max_depth": 3}, xgb.DMatrix(X, y), num_boost_round=10)
    return booster, X, "xgboost", False


def python_model() -> tuple[Any, Any, str, bool]:
    X, _ = load_iris(return_X_y=True)
    return Doubler(2.0), X, "python", False


MODELS: dict[str, Callable[[], tuple[Any, Any, str, bool]]] = {
    f.__name__: f
    for f in (
        logistic,
        pipeline,
        tree_ensembles,
        hist_gradient_boosting,
        lgbm_classifier,
        lgbm_binary,
        lgbm_regressor,
        lgbm_booster,
        xgb_classifier,
        xgb_regressor,
        xgb_booster,
        python_model,
    )
}


def original_predict(model: Any, X: Any) -> np.ndarray:
    if isinstance(model, xgb.Booster):
        return model.predict(xgb.DMatrix(X))
    return np.asarray(model.predict(X))


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_predicts_identically(name: str, tmp_path: Path) -> None:
    model, X, flavor, has_proba = MODELS[name]()
    assert detect_flavor(model) == flavor
    manifest = save_model(model, tmp_path / "m", input_example=X)
    assert manifest.flavor == flavor
    assert manifest.has_predict_proba is has_proba

    loaded = load_model(tmp_path / "m", trust=flavor == "python")
    assert loaded.has_predict_proba is has_proba
    expected = original_predict(model, X)
    got = loaded.predict(X)
    if expected.dtype.kind in "fc":
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    else:
        np.testing.assert_array_equal(got, expected)
    if has_proba:
        np.testing.assert_allclose(
            loaded.predict_proba(X), model.predict_proba(X), rtol=1e-6, atol=1e-9
        )


def test_lightgbm_categorical_from_json_records(tmp_path: Path) -> None:
    model, X, _, _ = lgbm_classifier()
    save_model(model, tmp_path / "m", input_example=X)
    loaded = load_model(tmp_path / "m")
    # What a REST request carries: plain JSON values, keys in any order.
    records = [dict(reversed(list(r.items()))) for r in X.astype({"size": str}).to_dict("records")]
    np.testing.assert_array_equal(loaded.predict(records), model.predict(X))
    assert loaded.signature is not None
    size = next(c for c in loaded.signature.inputs if c.name == "size")
    assert size.categories == ("big", "small")


def test_sklearn_model_file_is_skops_not_pickle(tmp_path: Path) -> None:
    model, X, _, _ = logistic()
    manifest = save_model(model, tmp_path / "m", input_example=X)
    path = tmp_path / "m" / manifest.model_file
    assert manifest.model_file.endswith(".skops")
    assert zipfile.is_zipfile(path)
    assert "schema.json" in zipfile.ZipFile(path).namelist()
    with open(path, "rb") as f, pytest.raises(pickle.UnpicklingError):
        pickle.load(f)
    assert set(manifest.library_versions) >= {"scikit-learn", "skops", "numpy", "python"}


def test_native_formats_for_boosters(tmp_path: Path) -> None:
    lgbm, X, _, _ = lgbm_regressor()
    m = save_model(lgbm, tmp_path / "lgb", input_example=X)
    assert (tmp_path / "lgb" / m.model_file).read_text().startswith("tree")
    booster, X2, _, _ = xgb_booster()
    m2 = save_model(booster, tmp_path / "xgb", input_example=X2)
    assert m2.model_file.endswith(".ubj")
    assert "xgboost" in m2.library_versions


def test_python_flavor_needs_trust(tmp_path: Path) -> None:
    model, X, _, _ = python_model()
    manifest = save_model(model, tmp_path / "m", input_example=X)
    assert manifest.safe is False
    with pytest.raises(Untrusted, match=r"cloudpickle.*trust=True"):
        load_model(tmp_path / "m")
    np.testing.assert_allclose(load_model(tmp_path / "m", trust=True).predict(X), model.predict(X))


def test_skops_file_with_unknown_type_needs_trust(tmp_path: Path) -> None:
    X, y = load_diabetes(return_X_y=True)
    model = HomeMade().fit(X, y)
    save_model(model, tmp_path / "m", input_example=X)
    with pytest.raises(Untrusted, match=r"HomeMade.*trust=True"):
        load_model(tmp_path / "m")
    loaded = load_model(tmp_path / "m", trust=True)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))


def test_lightgbm_inside_an_sklearn_pipeline_loads_without_trust(tmp_path: Path) -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = Pipeline(
        [("scale", StandardScaler()), ("lgb", lgb.LGBMClassifier(n_estimators=5, verbose=-1))]
    ).fit(X, y)
    assert detect_flavor(model) == "sklearn"
    save_model(model, tmp_path / "m", input_example=X)
    np.testing.assert_allclose(
        load_model(tmp_path / "m").predict_proba(X), model.predict_proba(X), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
        ("numpy.dtype", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("collections.OrderedDict", True),
        ("lightgbm.sklearn.LGBMClassifier", True),
        ("sklearn.feature_selection._univariate_selection.f_classif", True),
        ("builtins.eval", False),
        ("os.system", False),
        ("numpy.memmap", False),
        ("numpy.load", False),
        ("sklearn.datasets._svmlight_format_io.dump_svmlight_file", False),
        ("sklearn.utils._testing.assert_run_python_script_without_output", False),
        ("sklearn.utils._joblib.Memory", False),
        ("sklearn.does.not.Exist", False),
        ("tests.models.test_flavors.HomeMade", False),
    ],
)
def test_skops_allow_list(name: str, allowed: bool) -> None:
    assert is_allowed_type(name) is allowed
