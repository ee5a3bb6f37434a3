"""scikit-learn models, saved with skops (a zip of JSON + arrays, not a pickle).

skops lists every type in a file it does not trust by default (it distrusts even some
sklearn internals, e.g. ``sklearn.tree._tree.Tree``). ratchet accepts the ones on its
allow-list and refuses the rest unless the caller passes ``trust=True``:

- classes from scikit-learn, NumPy and SciPy, plus the LightGBM / XGBoost sklearn
  wrappers and their Boosters (whose state is restored natively, not by pickle);
- functions only from ``sklearn.metrics`` and ``sklearn.feature_selection`` (score
  functions such as ``f_classif``).

Other functions are refused even from trusted libraries: a ``FunctionTransformer``
calls its function with keyword arguments read from the file, so a function that
writes files (``sklearn.datasets.dump_svmlight_file``) or unpickles (``numpy.load``)
is a code- or file-execution primitive. Test helpers and ``numpy.memmap`` are refused.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, Untrusted

if TYPE_CHECKING:
    from ratchet.packaging.manifest import Manifest

FLAVOR = "sklearn"
SAFE = True
MODEL_FILE = "model.skops"

_CLASS_PACKAGES = ("sklearn", "numpy", "scipy")
_WRAPPER_CLASSES = frozenset(
    {
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.sklearn.LGBMRanker",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.sklearn.XGBRanker",
        "xgboost.sklearn.XGBRFClassifier",
        "xgboost.sklearn.XGBRFRegressor",
    }
)
_STDLIB_CLASSES = frozenset(
    {
        "collections.Counter",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        # partial's wrapped function is listed (and checked) separately by skops.
        "functools.partial",
    }
)
_FUNCTION_MODULES = ("sklearn.metrics", "sklearn.feature_selection")
_DENIED_PARTS = frozenset({"__main__", "conftest", "tests", "testing", "_testing"})


def can_save(model: object) -> bool:
    base = sys.modules.get("sklearn.base")  # no sklearn imported -> not an sklearn model
    return base is not None and isinstance(model, base.BaseEstimator)


def save(model: object, directory: Path) -> tuple[str, dict[str, str]]:
    import numpy
    import scipy
    import sklearn
    import skops
    import skops.io

    try:
        skops.io.dump(model, directory / MODEL_FILE)
    except Exception as e:
        raise InvalidInput(
            f"skops cannot save this {type(model).__name__} ({e}); if it holds objects "
            "skops does not support (e.g. lambdas), save it with flavor='python'"
        ) from e
    return MODEL_FILE, {
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }


def load(directory: Path, manifest: Manifest, trust: bool) -> object:
    import skops.io

    path = directory / manifest.model_file
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as e:
        raise InvalidInput(f"{path} is not a readable skops file ({e})") from e
    refused = sorted(t for t in untrusted if not is_allowed_type(t))
    if refused and not trust:
        raise Untrusted(
            f"model {directory} contains types outside ratchet's allow-list: "
            f"{', '.join(refused)}. Loading them can run arbitrary code; pass trust=True "
            "only for a model from a trusted source."
        )
    return skops.io.load(path, trusted=list(untrusted))


def is_allowed_type(name: str) -> bool:
    """Whether a type name reported by skops is safe to load without ``trust=True``."""
    if name in _STDLIB_CLASSES or name in _WRAPPER_CLASSES:
        return True
    parts = name.split(".")
    if parts[0] not in _CLASS_PACKAGES or _DENIED_PARTS.intersection(parts):
        return False
    # Resolve the name: a re-export of a foreign object (joblib.Memory via sklearn)
    # must be judged by where it really lives.
    obj = _resolve(parts)
    if obj is None:
        return False
    module = getattr(obj, "__module__", None) or ""
    if isinstance(obj, type):
        import numpy

        return module.split(".")[0] in _CLASS_PACKAGES and not issubclass(obj, numpy.memmap)
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return module.startswith(_FUNCTION_MODULES) and not _DENIED_PARTS.intersection(
            module.split(".")
        )
    return False


def _resolve(parts: list[str]) -> Any:
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        except Exception:
            return None
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


__all__ = ["FLAVOR", "SAFE", "can_save", "is_allowed_type", "load", "save"]
