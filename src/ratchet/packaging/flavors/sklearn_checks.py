"""Structural checks of the native tree arrays in a loaded scikit-learn model.

scikit-learn predicts with trees by following child and feature indices held in plain
arrays, in compiled code without bounds checks: a hostile file whose ``Tree`` or
HistGradientBoosting ``TreePredictor`` points outside its arrays (or into a cycle)
segfaults or hangs the process at the first prediction, not at load. skops can only
check the types in a file, so ratchet checks the arrays after loading:

- every internal node's children come after it and inside the array (no cycle);
- every split feature is below the feature count of every estimator above the tree
  (the count the input is validated against before the tree sees it);
- categorical splits point inside their bitset arrays; known categories fit a bitset.
"""

from __future__ import annotations

from typing import Any

from ratchet.errors import InvalidInput

_MAX_CATEGORY = 256  # HistGradientBoosting bitsets: 8 x 32 bits


def check_tree_arrays(model: object, where: str) -> None:
    """Raise InvalidInput if a tree inside ``model`` could index outside its arrays."""
    import numpy as np
    from sklearn.ensemble._base import BaseEnsemble, _BaseHeterogeneousEnsemble
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    # (object, bound of the nearest estimator, bound an enclosing ensemble imposes):
    # an estimator validates its input against its own n_features_in_, but ensembles
    # (forests, bagging, boosting) hand the validated input to their trees unchecked.
    best_bound: dict[int, int | None] = {}
    stack: list[tuple[Any, int | None, int | None]] = [(model, None, None)]
    while stack:
        obj, bound, imposed = stack.pop()
        own = getattr(obj, "n_features_in_", None) if hasattr(obj, "__dict__") else None
        if isinstance(own, int | np.integer) and not isinstance(own, bool):
            bound = int(own) if imposed is None else min(int(own), imposed)
            ensemble = isinstance(obj, BaseEnsemble) and not isinstance(
                obj, _BaseHeterogeneousEnsemble
            )
            imposed = bound if ensemble else None
        key = id(obj)
        if key in best_bound:
            seen = best_bound[key]
            if bound is None or (seen is not None and bound >= seen):
                continue  # already checked with a bound at least as strict
        best_bound[key] = bound
        children: Any = ()
        if isinstance(getattr(obj, "_bin_mapper", None), _BinMapper):
            _check_hgb_categories(obj, where)
        if isinstance(obj, Tree):
            _check_tree(obj, bound, where)
        elif isinstance(obj, TreePredictor):
            _check_predictor(obj, bound, where)
        elif isinstance(obj, _BinMapper):
            _check_bin_mapper(obj, bound, where)
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                children = obj.ravel()
        elif isinstance(obj, list | tuple | set | frozenset):
            children = obj
        elif isinstance(obj, dict):
            children = obj.values()
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            children = vars(obj).values()
        stack.extend((child, bound, imposed) for child in children)


def _refuse(where: str, what: str) -> InvalidInput:
    return InvalidInput(
        f"{where}: {what}; the model file is malformed or hostile (predicting with it "
        "could crash the process). Re-save the model from its training run."
    )


def _check_children(left: Any, right: Any, is_leaf: Any, what: str, where: str) -> None:
    import numpy as np

    n = len(left)
    index = np.arange(n)
    internal = ~is_leaf
    for name, child in (("left", left), ("right", right)):
        bad = internal & ((child <= index) | (child >= n))
        if bad.any():
            node = int(np.flatnonzero(bad)[0])
            raise _refuse(where, f"{what} node {node} has {name} child {int(child[node])}")


def _check_features(feature: Any, internal: Any, limit: int, what: str, where: str) -> None:
    import numpy as np

    bad = internal & ((feature < 0) | (feature >= limit))
    if bad.any():
        node = int(np.flatnonzero(bad)[0])
        raise _refuse(
            where, f"{what} node {node} splits on feature {int(feature[node])} of {limit}"
        )


def _check_tree(tree: Any, bound: int | None, where: str) -> None:
    nodes = tree.__getstate__()["nodes"]
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    is_leaf = (left == -1) & (right == -1)
    if len(nodes) != tree.node_count:
        raise _refuse(where, f"a tree has {len(nodes)} nodes but says {tree.node_count}")
    _check_children(left, right, is_leaf, "a tree", where)
    limit = tree.n_features if bound is None else min(tree.n_features, bound)
    _check_features(feature, ~is_leaf, limit, "a tree", where)


def _check_predictor(predictor: Any, bound: int | None, where: str) -> None:
    import numpy as np

    nodes = predictor.nodes
    is_leaf = nodes["is_leaf"].astype(bool)
    what = "a histogram gradient boosting tree"
    _check_children(nodes["left"], nodes["right"], is_leaf, what, where)
    if bound is None:
        raise _refuse(where, f"{what} is not inside an estimator with n_features_in_")
    _check_features(nodes["feature_idx"].astype(np.int64), ~is_leaf, bound, what, where)
    categorical = ~is_leaf & nodes["is_categorical"].astype(bool)
    bitsets = nodes["bitset_idx"].astype(np.int64)
    for name in ("raw_left_cat_bitsets", "binned_left_cat_bitsets"):
        size = len(getattr(predictor, name))
        if (categorical & ((bitsets < 0) | (bitsets >= size))).any():
            raise _refuse(where, f"{what} has a categorical split outside its {name}")


def _check_bin_mapper(mapper: Any, bound: int | None, where: str) -> None:
    import numpy as np

    what = "a histogram gradient boosting binner"
    is_categorical = np.asarray(getattr(mapper, "is_categorical_", ()))
    thresholds = getattr(mapper, "bin_thresholds_", None) or ()
    if bound is not None and (is_categorical.size != bound or len(thresholds) != bound):
        raise _refuse(where, f"{what} does not describe {bound} features")
    for f in np.flatnonzero(is_categorical):
        values = np.asarray(thresholds[f])
        if values.size and ((values < 0) | (values >= _MAX_CATEGORY)).any():
            raise _refuse(where, f"{what} has a category outside [0, {_MAX_CATEGORY})")


def _check_hgb_categories(estimator: Any, where: str) -> None:
    """A categorical split must be on a feature the binner knows as categorical."""
    import numpy as np

    categorical = set(np.flatnonzero(getattr(estimator._bin_mapper, "is_categorical_", ())))
    for predictor in np.asarray(getattr(estimator, "_predictors", []), dtype=object).ravel():
        nodes = getattr(predictor, "nodes", None)
        if nodes is None:
            continue
        split = ~nodes["is_leaf"].astype(bool) & nodes["is_categorical"].astype(bool)
        if not set(nodes["feature_idx"][split].tolist()) <= categorical:
            raise _refuse(
                where, "a histogram gradient boosting tree splits a numeric feature as categorical"
            )


__all__ = ["check_tree_arrays"]
