"""Any Python object with ``predict``, saved with cloudpickle.

Unpickling runs arbitrary code, so this flavor is marked unsafe and refuses to load
unless the caller passes ``trust=True``. The reader needs the same Python minor version
and the model's own code importable (cloudpickle stores importable classes by name).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING

from ratchet.errors import InvalidInput, Untrusted

if TYPE_CHECKING:
    from ratchet.packaging.manifest import Manifest

FLAVOR = "python"
SAFE = False
MODEL_FILE = "model.pkl"


def can_save(model: object) -> bool:
    return callable(getattr(model, "predict", None))


def save(model: object, directory: Path) -> tuple[str, dict[str, str]]:
    import cloudpickle

    try:
        with open(directory / MODEL_FILE, "wb") as f:
            cloudpickle.dump(model, f)
    except Exception as e:
        raise InvalidInput(f"cloudpickle cannot save this {type(model).__name__} ({e})") from e
    return MODEL_FILE, {"cloudpickle": cloudpickle.__version__, "python": platform.python_version()}


def load(directory: Path, manifest: Manifest, trust: bool) -> object:
    if not trust:
        raise Untrusted(
            f"model {directory} was saved with cloudpickle; loading it runs arbitrary code. "
            "Pass trust=True only if you trust its source."
        )
    import pickle

    with open(directory / manifest.model_file, "rb") as f:
        return pickle.load(f)  # cloudpickle output is plain pickle; the caller trusts it


__all__ = ["FLAVOR", "SAFE", "can_save", "load", "save"]
