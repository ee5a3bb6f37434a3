"""scikit-learn models, saved with skops (a zip of JSON + arrays, not a pickle).

Loading a skops file imports every type and function it names and calls them with
arguments from the file, so without ``trust=True`` every name must be on the reviewed
allow-list in ``sklearn_types`` (explicit names, never a package prefix). The check
covers all names in the file, including those skops trusts by default, and skops' own
untrusted-type report; skops is then told to trust only allowed names. A file holding a
LightGBM / XGBoost Booster (state parsed by native code) is loaded in a child process
first (``ratchet.packaging.probe``), so a malformed one cannot crash the caller.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, Untrusted
from ratchet.packaging.flavors.sklearn_checks import check_tree_arrays
from ratchet.packaging.flavors.sklearn_types import ALLOWLIST, ALLOWLIST_VERSION, NATIVE_STATE_TYPES

if TYPE_CHECKING:
    from ratchet.packaging.manifest import Manifest

FLAVOR = "sklearn"
SAFE = True
MODEL_FILE = "model.skops"


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

    from ratchet.packaging import probe

    path = directory / manifest.model_file
    try:
        named = referenced_types(path)
        untrusted = set(skops.io.get_untrusted_types(file=path))
    except Exception as e:
        raise InvalidInput(f"{path} is not a readable skops file ({e})") from e
    refused = sorted((named | untrusted) - ALLOWLIST)
    if refused and not trust:
        raise Untrusted(
            f"model {directory} names types and functions outside ratchet's allow-list "
            f"(version {ALLOWLIST_VERSION}): {', '.join(refused)}. Loading them can run "
            "arbitrary code; pass trust=True only for a model from a trusted source."
        )
    if named & NATIVE_STATE_TYPES:
        probe.probe_in_child(directory, manifest, trust=trust)
    # Every name in the file is allowed here (or trusted): skops is told exactly those.
    # Not only its own untrusted list: skops versions differ in what they trust by default
    # and whether a given list replaces those defaults, and a name its audit leaves out
    # (a function inside a partial: HistGradientBoosting's check_array) would then be
    # refused by skops itself, as an untrusted type, though the allow-list has it.
    model = skops.io.load(path, trusted=sorted(named | untrusted))
    check_tree_arrays(model, str(path))
    return model


def referenced_types(path: Path) -> set[str]:
    """Every type and function a skops file names, including those skops trusts by default.

    skops builds its node tree without importing or constructing anything; with every
    node's default trust emptied, its own audit lists everything it would resolve.
    """
    from zipfile import ZipFile

    from skops.io._audit import Node, get_tree
    from skops.io._utils import read_schema

    with ZipFile(path, "r") as zf:
        schema, context = read_schema(zf)
        tree = get_tree(schema, load_context=context, trusted=None)
    seen: set[int] = set()
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, Node) and id(node) not in seen:
            seen.add(id(node))
            node.trusted = []
            stack.extend(node.children.values())
    return set(tree.get_unsafe_set())


def is_allowed_type(name: str) -> bool:
    """Whether a type or function named in a skops file loads without ``trust=True``."""
    return name in ALLOWLIST


__all__ = ["FLAVOR", "SAFE", "can_save", "is_allowed_type", "load", "referenced_types", "save"]
