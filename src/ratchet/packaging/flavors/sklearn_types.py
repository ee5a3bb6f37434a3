"""The reviewed allow-list of types a scikit-learn model file (skops) may contain.

Loading a skops file resolves every type and function it names and calls them with
arguments read from the file (``__new__`` + ``__setstate__``, a constructor, a
``FunctionTransformer``'s function): any name allowed here is reachable by whoever
wrote the file. So the list is explicit, never a package prefix, and it is checked
against every type the file names, including those skops trusts by default.

Provenance: generated with ``python -m tests.packaging.supported_estimators`` (every
type referenced by the skops files of ~120 fitted models: linear models, trees, forests,
(hist) gradient boosting with each loss, AdaBoost, bagging, voting, stacking, SVMs,
kNN with each tree/metric, naive Bayes, discriminant analysis, MLPs, calibration,
preprocessing, imputers, encoders, feature selection, ColumnTransformer / Pipeline /
FeatureUnion, the LightGBM and XGBoost sklearn wrappers) with scikit-learn 1.9.1,
skops 0.16.0, numpy 2.4.6, scipy 1.17.1, lightgbm 4.7.0, xgboost 3.2.0; then reviewed by
hand. Added on review: primitive and numpy scalar types, the CSC/array sparse formats,
the 32-bit distance metrics, the rankers and the ufuncs that invert ``log1p``/``log``.

Reviewed out (never add): scipy.stats distributions (``__setstate__`` execs code held in
an attribute), anything from scipy.io / numpy.lib.npyio / sklearn.datasets (files),
``numpy.memmap``, ``numpy.load``, test helpers, builtins functions (``eval``,
``exec``, ``open``, ``getattr``), ``operator.*getter`` / ``methodcaller``, os,
subprocess, importlib, and any function outside the score/validation functions below.

Types whose state is parsed by native code (the LightGBM / XGBoost Boosters, kNN trees)
are also in ``NATIVE_STATE_TYPES``: a file containing one is loaded in a child process
first.

``tests/packaging/test_allowlist.py`` regenerates the candidate list and fails on any
type missing here: review it, then add it and bump ``ALLOWLIST_VERSION``.
"""

from __future__ import annotations

ALLOWLIST_VERSION = 1

ALLOWLIST: frozenset[str] = frozenset(
    {
        # Plain data containers.
        "builtins.bool",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.dict",
        "builtins.float",
        "builtins.int",
        "builtins.list",
        "builtins.set",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        # Containers (defaultdict's factory is a separate, checked node).
        "collections.Counter",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        # partial: its function and arguments are separate nodes, each checked against this
        # list, so it can only wrap an allowed function or class, never an arbitrary
        # callable (tests/packaging/test_gadgets.py). HistGradientBoosting fitted on
        # categorical features holds partial(check_array, ...) (see below).
        "functools.partial",
        # Native state, parsed in a child process first (NATIVE_STATE_TYPES).
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRanker",
        "lightgbm.sklearn.LGBMRegressor",
        # Arrays, dtypes, scalar types, random state, pure ufuncs (FunctionTransformer etc.).
        "numpy.bool",
        "numpy.bytes_",
        "numpy.dtype",
        "numpy.exp",
        "numpy.expm1",
        "numpy.float16",
        "numpy.float32",
        "numpy.float64",
        "numpy.int16",
        "numpy.int32",
        "numpy.int64",
        "numpy.int8",
        "numpy.log",
        "numpy.log1p",
        "numpy.ndarray",
        "numpy.object_",
        "numpy.random._generator.Generator",
        "numpy.random.mtrand.RandomState",
        "numpy.sqrt",
        "numpy.square",
        "numpy.str_",
        "numpy.uint16",
        "numpy.uint32",
        "numpy.uint64",
        "numpy.uint8",
        # Sparse matrices (read with allow_pickle=False) and SplineTransformer's BSpline.
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
        "scipy.interpolate._bsplines.BSpline",
        "scipy.sparse._csc.csc_array",
        "scipy.sparse._csc.csc_matrix",
        "scipy.sparse._csr.csr_array",
        "scipy.sparse._csr.csr_matrix",
        # Losses and links of GLMs and gradient boosting.
        "sklearn._loss._loss.CyAbsoluteError",
        "sklearn._loss._loss.CyExponentialLoss",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfGammaLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfPoissonLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss._loss.CyHalfTweedieLoss",
        "sklearn._loss._loss.CyHuberLoss",
        "sklearn._loss._loss.CyPinballLoss",
        "sklearn._loss.link.HalfLogitLink",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogLink",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.AbsoluteError",
        "sklearn._loss.loss.ExponentialLoss",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfGammaLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfPoissonLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.HalfTweedieLoss",
        "sklearn._loss.loss.HuberLoss",
        "sklearn._loss.loss.PinballLoss",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.cluster._kmeans.KMeans",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.compose._column_transformer.make_column_selector",
        "sklearn.compose._target.TransformedTargetRegressor",
        "sklearn.decomposition._pca.PCA",
        "sklearn.decomposition._truncated_svd.TruncatedSVD",
        "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
        "sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis",
        "sklearn.dummy.DummyClassifier",
        "sklearn.dummy.DummyRegressor",
        "sklearn.ensemble._bagging.BaggingClassifier",
        "sklearn.ensemble._bagging.BaggingRegressor",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.ensemble._gb.GradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._iforest.IsolationForest",
        "sklearn.ensemble._stacking.StackingClassifier",
        "sklearn.ensemble._voting.VotingClassifier",
        "sklearn.ensemble._weight_boosting.AdaBoostClassifier",
        "sklearn.ensemble._weight_boosting.AdaBoostRegressor",
        # Selectors and the score functions they hold (pure computations).
        "sklearn.feature_selection._from_model.SelectFromModel",
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.feature_selection._mutual_info.mutual_info_regression",
        "sklearn.feature_selection._rfe.RFE",
        "sklearn.feature_selection._univariate_selection.SelectKBest",
        "sklearn.feature_selection._univariate_selection.SelectPercentile",
        "sklearn.feature_selection._univariate_selection.chi2",
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.f_regression",
        "sklearn.feature_selection._variance_threshold.VarianceThreshold",
        "sklearn.impute._base.MissingIndicator",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.impute._iterative.IterativeImputer",
        "sklearn.impute._iterative._ImputerTriplet",
        "sklearn.impute._knn.KNNImputer",
        "sklearn.isotonic.IsotonicRegression",
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._bayes.BayesianRidge",
        "sklearn.linear_model._coordinate_descent.ElasticNet",
        "sklearn.linear_model._coordinate_descent.Lasso",
        "sklearn.linear_model._glm.glm.GammaRegressor",
        "sklearn.linear_model._glm.glm.PoissonRegressor",
        "sklearn.linear_model._glm.glm.TweedieRegressor",
        "sklearn.linear_model._huber.HuberRegressor",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._perceptron.Perceptron",
        "sklearn.linear_model._quantile.QuantileRegressor",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.linear_model._ridge.RidgeClassifier",
        "sklearn.linear_model._sgd_fast.Hinge",
        "sklearn.linear_model._stochastic_gradient.SGDClassifier",
        "sklearn.linear_model._stochastic_gradient.SGDRegressor",
        # Distance metrics held by kNN trees.
        "sklearn.metrics._dist_metrics.ChebyshevDistance32",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.metrics._dist_metrics.EuclideanDistance32",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance32",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance32",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.naive_bayes.BernoulliNB",
        "sklearn.naive_bayes.CategoricalNB",
        "sklearn.naive_bayes.ComplementNB",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.naive_bayes.MultinomialNB",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._classification.RadiusNeighborsClassifier",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._regression.KNeighborsRegressor",
        "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
        "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.pipeline.FeatureUnion",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.Binarizer",
        "sklearn.preprocessing._data.MaxAbsScaler",
        "sklearn.preprocessing._data.MinMaxScaler",
        "sklearn.preprocessing._data.Normalizer",
        "sklearn.preprocessing._data.PowerTransformer",
        "sklearn.preprocessing._data.QuantileTransformer",
        "sklearn.preprocessing._data.RobustScaler",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._discretization.KBinsDiscretizer",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "sklearn.preprocessing._label.LabelBinarizer",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.preprocessing._polynomial.PolynomialFeatures",
        "sklearn.preprocessing._polynomial.SplineTransformer",
        "sklearn.preprocessing._target_encoder.TargetEncoder",
        "sklearn.svm._classes.LinearSVC",
        "sklearn.svm._classes.LinearSVR",
        "sklearn.svm._classes.NuSVC",
        "sklearn.svm._classes.SVC",
        "sklearn.svm._classes.SVR",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._tree.Tree",
        # Bunch: a dict. check_array: pure input validation (converts an array to a dtype,
        # checks shape and finiteness); it opens no file, imports nothing and calls
        # nothing it is given: its keyword arguments are data (a dtype, flags, a name). A
        # HistGradientBoosting model fitted on categorical columns (categorical_features=
        # "from_dtype" on pandas categoricals, or indices) keeps FunctionTransformer(
        # partial(check_array, dtype=..., ensure_all_finite=False)) as the numeric branch
        # of its preprocessing ColumnTransformer: without it such a model, which
        # scikit-learn round-trips, would need trust
        # (tests/packaging/test_sklearn_categorical.py).
        "sklearn.utils._bunch.Bunch",
        "sklearn.utils.validation.check_array",
        # Native state, parsed in a child process first (NATIVE_STATE_TYPES).
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRFClassifier",
        "xgboost.sklearn.XGBRFRegressor",
        "xgboost.sklearn.XGBRanker",
        "xgboost.sklearn.XGBRegressor",
    }
)

# Types whose file state is parsed or walked by native code without bounds checks (a
# malformed one can crash the process, not just raise): files holding one are loaded
# and run on their input example in a child process first. sklearn's Tree and
# TreePredictor arrays are instead checked exactly (sklearn_checks.py).
NATIVE_STATE_TYPES: frozenset[str] = frozenset(
    {
        "lightgbm.basic.Booster",
        "xgboost.core.Booster",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._kd_tree.KDTree",
    }
)

__all__ = ["ALLOWLIST", "ALLOWLIST_VERSION", "NATIVE_STATE_TYPES"]
