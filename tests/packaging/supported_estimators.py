"""The fitted sklearn-flavor models ratchet supports: the source of the skops allow-list.

``ratchet.packaging.flavors.sklearn_types.ALLOWLIST`` was generated from these models
(every type their skops files reference) and then reviewed by hand. The test in
``test_allowlist.py`` regenerates the candidate list and fails on a type that is not on
the allow-list, so a new sklearn / skops version surfaces new types for review.

Run ``python -m tests.packaging.supported_estimators`` to print the candidate list.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse


def _data() -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 120
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.uniform(1, 5, size=n),
            "c": rng.integers(0, 4, size=n).astype(float),
        }
    )
    y_bin = (X["a"] + rng.normal(scale=0.5, size=n) > 0).to_numpy().astype(int)
    y_multi = np.digitize(X["a"].to_numpy(), [-0.5, 0.5])
    y_reg = (2 * X["a"] + X["b"] + rng.normal(scale=0.1, size=n)).to_numpy() + 5.0
    return X, y_bin, y_multi, y_reg


def supported_models() -> Iterator[tuple[str, Any, Any]]:
    """(name, fitted model, input) for every supported kind of sklearn-flavor model."""
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn import (
        calibration,
        cluster,
        compose,
        decomposition,
        discriminant_analysis,
        ensemble,
        feature_selection,
        impute,
        linear_model,
        naive_bayes,
        neighbors,
        neural_network,
        pipeline,
        preprocessing,
        svm,
        tree,
    )
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401

    X, y_bin, y_multi, y_reg = _data()
    Xa = X.to_numpy()
    X_counts = np.abs(np.round(Xa * 3))
    X_nan = X.copy()
    X_nan.iloc[::7, 0] = np.nan
    frame = X.assign(colour=np.where(X["a"] > 0, "red", "blue"), size=X["c"].astype(int))

    classifiers: list[Callable[[], Any]] = [
        lambda: linear_model.LogisticRegression(max_iter=500),
        lambda: linear_model.RidgeClassifier(),
        lambda: linear_model.SGDClassifier(loss="log_loss", random_state=0),
        lambda: linear_model.Perceptron(),
        lambda: tree.DecisionTreeClassifier(max_depth=3, random_state=0),
        lambda: tree.ExtraTreeClassifier(random_state=0),
        lambda: ensemble.RandomForestClassifier(n_estimators=3, random_state=0),
        lambda: ensemble.ExtraTreesClassifier(n_estimators=3, random_state=0),
        lambda: ensemble.GradientBoostingClassifier(n_estimators=3, random_state=0),
        lambda: ensemble.HistGradientBoostingClassifier(max_iter=3),
        lambda: ensemble.AdaBoostClassifier(n_estimators=3, random_state=0),
        lambda: ensemble.BaggingClassifier(n_estimators=2, random_state=0),
        lambda: ensemble.VotingClassifier(
            [("lr", linear_model.LogisticRegression()), ("nb", naive_bayes.GaussianNB())],
            voting="soft",
        ),
        lambda: ensemble.StackingClassifier(
            [("dt", tree.DecisionTreeClassifier(max_depth=2))],
            final_estimator=linear_model.LogisticRegression(),
            cv=2,
        ),
        lambda: svm.SVC(probability=True, random_state=0),
        lambda: svm.LinearSVC(),
        lambda: svm.NuSVC(),
        lambda: neighbors.KNeighborsClassifier(n_neighbors=3),
        lambda: neighbors.RadiusNeighborsClassifier(radius=5.0),
        lambda: naive_bayes.GaussianNB(),
        lambda: discriminant_analysis.LinearDiscriminantAnalysis(),
        lambda: discriminant_analysis.QuadraticDiscriminantAnalysis(),
        lambda: neural_network.MLPClassifier(hidden_layer_sizes=(4,), max_iter=20),
        lambda: calibration.CalibratedClassifierCV(
            linear_model.LogisticRegression(), method="sigmoid", cv=2
        ),
        lambda: calibration.CalibratedClassifierCV(
            tree.DecisionTreeClassifier(max_depth=2), method="isotonic", cv=2
        ),
        lambda: lgb.LGBMClassifier(n_estimators=3, verbose=-1),
        lambda: xgb.XGBClassifier(n_estimators=3),
        lambda: xgb.XGBRFClassifier(n_estimators=3),
    ]
    regressors: list[Callable[[], Any]] = [
        lambda: linear_model.LinearRegression(),
        lambda: linear_model.Ridge(),
        lambda: linear_model.Lasso(alpha=0.01),
        lambda: linear_model.ElasticNet(alpha=0.01),
        lambda: linear_model.SGDRegressor(random_state=0),
        lambda: linear_model.HuberRegressor(),
        lambda: linear_model.BayesianRidge(),
        lambda: linear_model.PoissonRegressor(),
        lambda: linear_model.GammaRegressor(),
        lambda: linear_model.TweedieRegressor(power=1.5),
        lambda: linear_model.QuantileRegressor(alpha=0.0),
        lambda: tree.DecisionTreeRegressor(max_depth=3, random_state=0),
        lambda: ensemble.RandomForestRegressor(n_estimators=3, random_state=0),
        lambda: ensemble.ExtraTreesRegressor(n_estimators=3, random_state=0),
        lambda: ensemble.IsolationForest(n_estimators=3, random_state=0),
        *[
            (lambda loss=loss: ensemble.GradientBoostingRegressor(n_estimators=3, loss=loss))
            for loss in ("squared_error", "absolute_error", "huber", "quantile")
        ],
        *[
            (lambda loss=loss: ensemble.HistGradientBoostingRegressor(max_iter=3, **loss))
            for loss in (
                {"loss": "squared_error"},
                {"loss": "absolute_error"},
                {"loss": "poisson"},
                {"loss": "gamma"},
                {"loss": "quantile", "quantile": 0.9},
            )
        ],
        lambda: ensemble.AdaBoostRegressor(n_estimators=3, random_state=0),
        lambda: ensemble.BaggingRegressor(n_estimators=2, random_state=0),
        lambda: svm.SVR(),
        lambda: svm.LinearSVR(),
        lambda: neighbors.KNeighborsRegressor(n_neighbors=3),
        lambda: neural_network.MLPRegressor(hidden_layer_sizes=(4,), max_iter=20),
        lambda: compose.TransformedTargetRegressor(
            regressor=linear_model.Ridge(), func=np.log, inverse_func=np.exp
        ),
        lambda: cluster.KMeans(n_clusters=2, n_init=1, random_state=0),
        lambda: lgb.LGBMRegressor(n_estimators=3, verbose=-1),
        lambda: xgb.XGBRegressor(n_estimators=3),
        lambda: xgb.XGBRFRegressor(n_estimators=3),
    ]
    for make in classifiers:
        binary, multi = make().fit(X, y_bin), make().fit(X, y_multi)
        yield type(binary).__name__, binary, X
        yield type(multi).__name__ + "-multiclass", multi, X
    for make in regressors:
        model = make().fit(X, y_reg)
        yield type(model).__name__, model, X
    yield (
        "HistGradientBoostingClassifier-categorical",
        ensemble.HistGradientBoostingClassifier(max_iter=3, categorical_features=[2]).fit(
            Xa, y_multi
        ),
        Xa,
    )
    yield (
        "GradientBoostingClassifier-exponential",
        ensemble.GradientBoostingClassifier(n_estimators=3, loss="exponential").fit(X, y_bin),
        X,
    )
    yield "MultinomialNB", naive_bayes.MultinomialNB().fit(X_counts, y_multi), X_counts
    for knn in (
        neighbors.KNeighborsClassifier(n_neighbors=3, metric="manhattan"),
        neighbors.KNeighborsClassifier(n_neighbors=3, metric="minkowski", p=3),
        neighbors.KNeighborsClassifier(n_neighbors=3, metric="chebyshev"),
        neighbors.KNeighborsClassifier(n_neighbors=3, algorithm="ball_tree"),
        neighbors.KNeighborsClassifier(n_neighbors=3, algorithm="brute", metric="cosine"),
    ):
        yield f"KNeighborsClassifier({knn.metric}, {knn.algorithm})", knn.fit(X, y_bin), X
    X_sparse = scipy.sparse.csr_matrix(X_counts)
    yield "SVC-sparse", svm.SVC().fit(X_sparse, y_bin), X_sparse
    yield (
        "LogisticRegression-sparsified",
        linear_model.LogisticRegression().fit(X, y_bin).sparsify(),
        X,
    )
    yield "BernoulliNB", naive_bayes.BernoulliNB().fit(X_counts, y_multi), X_counts
    yield "ComplementNB", naive_bayes.ComplementNB().fit(X_counts, y_multi), X_counts
    yield "CategoricalNB", naive_bayes.CategoricalNB().fit(X_counts, y_multi), X_counts

    transformers: list[Any] = [
        preprocessing.StandardScaler(),
        preprocessing.MinMaxScaler(),
        preprocessing.MaxAbsScaler(),
        preprocessing.RobustScaler(),
        preprocessing.Normalizer(),
        preprocessing.Binarizer(),
        preprocessing.PolynomialFeatures(2),
        preprocessing.SplineTransformer(n_knots=3),
        preprocessing.KBinsDiscretizer(n_bins=3, quantile_method="averaged_inverted_cdf"),
        preprocessing.QuantileTransformer(n_quantiles=20),
        preprocessing.PowerTransformer(),
        preprocessing.FunctionTransformer(np.log1p),
        decomposition.PCA(n_components=2),
        decomposition.TruncatedSVD(n_components=2),
        feature_selection.VarianceThreshold(),
        feature_selection.SelectKBest(feature_selection.f_classif, k=2),
        feature_selection.SelectKBest(feature_selection.chi2, k=2),
        feature_selection.SelectPercentile(feature_selection.mutual_info_classif),
        feature_selection.SelectKBest(feature_selection.f_regression, k=2),
        feature_selection.SelectFromModel(linear_model.LogisticRegression()),
        feature_selection.RFE(linear_model.LogisticRegression(), n_features_to_select=2),
    ]
    for step in transformers:
        model = pipeline.make_pipeline(step, linear_model.LogisticRegression())
        data = X_counts if "chi2" in repr(step) or "log1p" in repr(step) else X
        yield f"Pipeline({type(step).__name__})", model.fit(data, y_multi), data

    for imputer in (
        impute.SimpleImputer(),
        impute.SimpleImputer(strategy="most_frequent", add_indicator=True),
        impute.KNNImputer(n_neighbors=3),
        impute.IterativeImputer(max_iter=2, random_state=0),
    ):
        model = pipeline.make_pipeline(imputer, linear_model.LogisticRegression())
        yield f"Pipeline({type(imputer).__name__})", model.fit(X_nan, y_bin), X_nan

    prep = compose.ColumnTransformer(
        [
            ("num", preprocessing.StandardScaler(), ["a", "b", "c"]),
            ("onehot", preprocessing.OneHotEncoder(handle_unknown="ignore"), ["colour"]),
            ("ordinal", preprocessing.OrdinalEncoder(), ["size"]),
            ("target", preprocessing.TargetEncoder(random_state=0), ["colour"]),
        ],
        remainder="drop",
    )
    union = pipeline.FeatureUnion(
        [("pca", decomposition.PCA(n_components=1)), ("scale", preprocessing.MinMaxScaler())]
    )
    column_models: list[tuple[str, Any]] = [
        ("ColumnTransformer-logistic", linear_model.LogisticRegression(max_iter=500)),
        ("ColumnTransformer-hgb", ensemble.HistGradientBoostingClassifier(max_iter=3)),
        ("ColumnTransformer-lgbm", lgb.LGBMClassifier(n_estimators=3, verbose=-1)),
        ("ColumnTransformer-xgb", xgb.XGBClassifier(n_estimators=3)),
    ]
    for name, final in column_models:
        model = pipeline.Pipeline([("prep", prep), ("union", union), ("model", final)])
        yield name, model.fit(frame, y_multi), frame
    ct = compose.make_column_transformer(
        (preprocessing.OneHotEncoder(sparse_output=True), ["colour"]),
        remainder="passthrough",
    )
    yield (
        "ColumnTransformer-sparse",
        pipeline.make_pipeline(ct, linear_model.LogisticRegression()).fit(frame, y_bin),
        frame,
    )
    selector = compose.make_column_selector(dtype_include="number")
    yield (
        "ColumnTransformer-selector",
        pipeline.make_pipeline(
            compose.ColumnTransformer([("num", preprocessing.StandardScaler(), selector)]),
            linear_model.Ridge(),
        ).fit(frame, y_reg),
        frame,
    )


def candidate_types(directory: Path | None = None) -> dict[str, set[str]]:
    """Every type a skops file of a supported model references -> the models needing it."""
    import skops.io

    from ratchet.packaging.flavors.sklearn import referenced_types

    found: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = directory or Path(tmp)
        for i, (name, model, _X) in enumerate(supported_models()):
            path = root / f"{i}.skops"
            skops.io.dump(model, path)
            for type_name in referenced_types(path) | set(skops.io.get_untrusted_types(file=path)):
                found.setdefault(type_name, set()).add(name)
    return found


if __name__ == "__main__":
    for type_name, models in sorted(candidate_types().items()):
        print(f"{type_name}  # {sorted(models)[0]}")
