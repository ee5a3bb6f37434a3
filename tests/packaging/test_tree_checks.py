"""Hostile tree arrays in a skops file are refused at load, before a prediction can
crash the process; every supported model passes the same checks."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from ratchet.errors import InvalidInput
from ratchet.packaging import load_model, save_model
from ratchet.packaging.flavors.sklearn_checks import check_tree_arrays
from tests.packaging.supported_estimators import supported_models

X = pd.DataFrame(np.random.default_rng(0).normal(size=(120, 3)), columns=["a", "b", "c"])
Y = (X["a"] > 0).astype(int)


def _set_tree_nodes(tree: Any, field: str, node: int, value: int) -> None:
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][node] = value
    state["nodes"] = nodes
    tree.__setstate__(state)


def tree_child_out_of_range() -> Any:
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
    _set_tree_nodes(model.tree_, "left_child", 0, 10**9)
    return model


def tree_cycle() -> Any:
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
    _set_tree_nodes(model.tree_, "right_child", 0, 0)  # the root is its own child
    return model


def tree_feature_out_of_range() -> Any:
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
    _set_tree_nodes(model.tree_, "feature", 0, 10**6)
    return model


def forest_tree_feature_beyond_the_forest() -> Any:
    # Forests call their trees without re-validating the input: the bound is the forest's.
    model = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=2)).fit(X, Y)
    tree = model[-1].estimators_[1]
    tree.n_features_in_ = 50
    state = tree.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["feature"][0] = 40
    state["nodes"] = nodes
    from sklearn.tree._tree import Tree

    bigger = Tree(50, tree.tree_.n_classes, tree.tree_.n_outputs)
    bigger.__setstate__(state)
    tree.tree_ = bigger
    return model


def hgb_child_out_of_range() -> Any:
    model = HistGradientBoostingClassifier(max_iter=2).fit(X, Y)
    model._predictors[0][0].nodes["left"][0] = 10**9
    return model


def hgb_feature_out_of_range() -> Any:
    model = HistGradientBoostingClassifier(max_iter=2).fit(X, Y)
    model._predictors[1][0].nodes["feature_idx"][0] = 10**6
    return model


def hgb_category_out_of_range() -> Any:
    Xc = X.assign(c=(X["c"].abs() * 3).round())
    model = HistGradientBoostingClassifier(max_iter=2, categorical_features=[2]).fit(Xc, Y)
    mapper = model._bin_mapper  # categorical features come first in the binner
    mapper.bin_thresholds_[int(np.flatnonzero(mapper.is_categorical_)[0])] = np.array([0.0, 1e5])
    return model


def hgb_numeric_split_marked_categorical() -> Any:
    model = HistGradientBoostingClassifier(max_iter=2).fit(X, Y)
    model._predictors[0][0].nodes["is_categorical"][0] = 1
    return model


HOSTILE: dict[str, Callable[[], Any]] = {
    f.__name__: f
    for f in (
        tree_child_out_of_range,
        tree_cycle,
        tree_feature_out_of_range,
        forest_tree_feature_beyond_the_forest,
        hgb_child_out_of_range,
        hgb_feature_out_of_range,
        hgb_category_out_of_range,
        hgb_numeric_split_marked_categorical,
    )
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_tree_arrays_are_refused_at_load(name: str, tmp_path: Path) -> None:
    save_model(HOSTILE[name](), tmp_path / "m")
    with pytest.raises(InvalidInput, match=r"model\.skops: .*malformed or hostile"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("name", ["tree_child_out_of_range", "hgb_child_out_of_range"])
def test_unchecked_prediction_with_them_crashes(name: str, tmp_path: Path) -> None:
    # The control: without the check the file loads and the first prediction kills
    # the process (in a child here).
    save_model(HOSTILE[name](), tmp_path / "m")
    code = (
        "import skops.io, numpy; p = sys.argv[1]; "
        "m = skops.io.load(p, trusted=skops.io.get_untrusted_types(file=p)); "
        "m.predict(numpy.random.default_rng(1).normal(size=(50, 3)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import sys; " + code, str(tmp_path / "m" / "model.skops")],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode < 0, done.stderr[-500:]


def test_every_supported_model_passes_the_tree_checks() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, model, _X in supported_models():
            check_tree_arrays(model, name)
