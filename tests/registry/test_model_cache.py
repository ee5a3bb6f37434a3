"""The local model cache is verified on every load, not trusted after the first."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ratchet
from ratchet.errors import IntegrityError
from ratchet.packaging import save_model


@pytest.fixture
def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def _register(iris: tuple[pd.DataFrame, pd.Series]) -> LogisticRegression:
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    with ratchet.start_run():
        ratchet.log_model(model, name="iris", input_example=X.head(5))
    return model


def _other_model_file(iris: tuple[pd.DataFrame, pd.Series], tmp: Path) -> Path:
    """A different, perfectly valid model: predicts class 0 for everything."""
    X, y = iris
    model = LogisticRegression().fit(X, np.where(np.arange(len(y)) % 50 == 0, 1, 0))
    save_model(model, tmp / "other", input_example=X.head(5))
    return tmp / "other" / "model.skops"


def test_an_edited_cached_model_file_is_not_loaded(
    workspace: Path, iris: tuple, tmp_path: Path
) -> None:
    X, _ = iris
    original = _register(iris)
    cache = ratchet.models.client().download("models:/iris/1")
    assert np.array_equal(ratchet.models.load("models:/iris/1").predict(X), original.predict(X))

    # Someone with write access to the cache swaps in another model file.
    target = cache / "model.skops"
    target.chmod(0o644)
    shutil.copyfile(_other_model_file(iris, tmp_path), target)

    loaded = ratchet.models.load("models:/iris/1")
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    assert target.read_bytes() != (tmp_path / "other" / "model.skops").read_bytes()


@pytest.mark.parametrize("change", ["extra file", "symlink", "deleted file"])
def test_other_cache_changes_are_repaired(
    workspace: Path, iris: tuple, tmp_path: Path, change: str
) -> None:
    X, _ = iris
    original = _register(iris)
    client = ratchet.models.client()
    cache = client.download("models:/iris/1")
    manifest = cache / "ratchet-model.json"
    if change == "extra file":
        (cache / "sitecustomize.py").write_text("raise SystemExit('ran')\n")
    elif change == "symlink":
        other = _other_model_file(iris, tmp_path)
        (cache / "model.skops").unlink()
        os.symlink(other, cache / "model.skops")
    else:
        manifest.unlink()
    again = client.download("models:/iris/1")
    assert again == cache
    assert not (cache / "sitecustomize.py").exists()
    assert not (cache / "model.skops").is_symlink()
    assert manifest.is_file()
    np.testing.assert_array_equal(
        ratchet.models.load("models:/iris/1").predict(X), original.predict(X)
    )


def test_cached_files_are_read_only(workspace: Path, iris: tuple) -> None:
    _register(iris)
    cache = ratchet.models.client().download("models:/iris/1")
    modes = {p.name: p.stat().st_mode & 0o777 for p in cache.iterdir() if p.is_file()}
    assert modes and set(modes.values()) == {0o444}


def test_tampered_cache_and_damaged_store_raise_integrity_error(
    workspace: Path, iris: tuple, tmp_path: Path
) -> None:
    _register(iris)
    client = ratchet.models.client()
    cache = client.download("models:/iris/1")
    mv = client.get_version("iris", 1)
    assert mv.run_id is not None
    entries = client.tracking.list_artifacts(mv.run_id, mv.artifact_path)
    digest = next(e.digest for e in entries if e.path.endswith("model.skops"))
    blob = client.tracking.blobs.local_path(digest)
    assert blob is not None
    other = _other_model_file(iris, tmp_path).read_bytes()
    for path in (blob, cache / "model.skops"):
        path.chmod(0o644)
        path.write_bytes(other)
    with pytest.raises(IntegrityError):
        ratchet.models.load("models:/iris/1")
