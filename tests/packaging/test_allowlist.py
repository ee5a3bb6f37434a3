"""The skops allow-list: complete for the supported models, and free of known gadgets."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ratchet.packaging import load_model, save_model
from ratchet.packaging.flavors.sklearn_types import ALLOWLIST, NATIVE_STATE_TYPES
from tests.packaging.supported_estimators import candidate_types, supported_models

# Tiny fits: convergence and deprecation warnings of the corpus are noise here.
pytestmark = pytest.mark.filterwarnings("ignore")


def test_every_type_of_the_supported_models_is_allowed(tmp_path: Path) -> None:
    # Fails when a new sklearn / skops / numpy version makes supported models name new
    # types: review each, add it to sklearn_types.ALLOWLIST and bump ALLOWLIST_VERSION.
    missing = {
        name: sorted(models)
        for name, models in candidate_types(tmp_path).items()
        if name not in ALLOWLIST
    }
    assert not missing, f"types to review for the allow-list: {missing}"


@pytest.mark.parametrize(
    "prefix",
    [
        "scipy.stats.",
        "scipy.io.",
        "numpy.lib.npyio",
        "numpy.memmap",
        "numpy.load",
        "sklearn.datasets.",
        "sklearn.utils._testing",
        "builtins.eval",
        "builtins.exec",
        "builtins.open",
        "builtins.getattr",
        "operator.",
        "os.",
        "posix.",
        "subprocess.",
        "importlib.",
        "joblib.",
        "pickle.",
    ],
)
def test_reviewed_out_names_stay_out(prefix: str) -> None:
    assert not [name for name in ALLOWLIST if name.startswith(prefix)]


def _resolve(name: str) -> Any:
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            found = getattr(found, attr)
        return found
    raise LookupError(name)


def test_every_allowed_name_is_a_real_class_or_pure_function() -> None:
    for name in sorted(ALLOWLIST):
        found = _resolve(name)
        if isinstance(found, type):
            assert not issubclass(found, np.memmap), name
            assert not issubclass(found, BaseException), name
        else:
            # Functions are called with arguments from the file: only ufuncs and the
            # reviewed score / validation functions.
            assert isinstance(found, np.ufunc) or inspect.isfunction(found), name
            module = getattr(found, "__module__", None) or "numpy"
            assert module.split(".")[0] in ("numpy", "sklearn", "scipy"), name
    assert NATIVE_STATE_TYPES <= ALLOWLIST


def test_a_sample_of_supported_models_loads_without_trust(tmp_path: Path) -> None:
    wanted = {
        "HistGradientBoostingClassifier-categorical",
        "ColumnTransformer-hgb",
        "KNeighborsClassifier(minkowski, ball_tree)",
        "CalibratedClassifierCV",
        "Pipeline(SplineTransformer)",
        "TransformedTargetRegressor",
        "LogisticRegression-sparsified",
    }
    seen = set()
    for i, (name, model, X) in enumerate(supported_models()):
        if name not in wanted:
            continue
        seen.add(name)
        directory = tmp_path / str(i)
        save_model(model, directory, input_example=X)
        np.testing.assert_allclose(
            np.asarray(load_model(directory).predict(X), dtype=float),
            np.asarray(model.predict(X), dtype=float),
        )
    assert seen == wanted
