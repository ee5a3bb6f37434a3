"""The registry end to end: log, register, alias, load by URI, lineage, integrity."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ratchet
from ratchet.errors import IntegrityError, InvalidInput, NotFound, Untrusted
from ratchet.registry import LoggedModel, parse_model_uri
from ratchet.store import DatasetInput


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def _train(iris: tuple[pd.DataFrame, pd.Series], C: float = 1.0) -> LogisticRegression:
    X, y = iris
    return LogisticRegression(C=C, max_iter=500).fit(X, y)


def test_log_register_alias_load(workspace_on: Path, iris: tuple) -> None:
    X, _ = iris
    versions = []
    for C in (0.1, 1.0):
        model = _train(iris, C)
        with ratchet.start_run(experiment="iris") as run:
            ratchet.log_param("C", C)
            ratchet.log_metric("acc", C)
            mv = ratchet.log_model(model, name="iris", input_example=X.head(20))
        versions.append((mv, model, run.id))
    (v1, m1, run1), (v2, m2, _) = versions
    assert (v1.version, v2.version) == (1, 2)
    assert v1.run_id == run1 and v1.flavor == "sklearn" and len(v1.content_hash) == 64
    assert v1.manifest["metrics"] == {"acc": 0.1}
    assert v1.manifest["signature"]["inputs"][0]["name"] == "sepal length (cm)"

    ratchet.models.set_alias("iris", "champion", v1.version, reason="first")
    champion = ratchet.models.load("models:/iris@champion")
    np.testing.assert_array_equal(champion.predict(X), m1.predict(X))
    np.testing.assert_allclose(champion.predict_proba(X), m1.predict_proba(X))
    ratchet.models.set_alias("iris", "champion", v2.version, reason="better")
    np.testing.assert_array_equal(ratchet.models.load("models:/iris@champion").predict(X),
                                  m2.predict(X))
    for uri in ("models:/iris/1", f"runs:/{run1}/model", "iris/1"):
        np.testing.assert_array_equal(ratchet.models.load(uri).predict(X), m1.predict(X))
    np.testing.assert_array_equal(ratchet.models.load("models:/iris/latest").predict(X),
                                  m2.predict(X))
    history = ratchet.models.alias_history("iris", "champion")
    assert [(e.from_version, e.to_version, e.reason) for e in history] == [
        (None, 1, "first"), (1, 2, "better")]
    assert ratchet.models.version_at("iris", "champion", history[0].at) == 1
    assert ratchet.models.version_at("iris", "champion", datetime.now(UTC)) == 2
    assert ratchet.models.get_model("iris").aliases == {"champion": 2}


def test_loading_validates_requests_with_the_signature(workspace: Path, iris: tuple) -> None:
    X, _ = iris
    with ratchet.start_run():
        ratchet.log_model(_train(iris), name="iris", input_example=X)
    model = ratchet.models.load("models:/iris/1")
    shuffled = X[list(reversed(X.columns))].head(3)  # column order does not matter
    assert model.predict(shuffled).tolist() == model.predict(X.head(3)).tolist()
    with pytest.raises(ratchet.errors.ValidationFailed, match="petal width"):
        model.predict(X.drop(columns=["petal width (cm)"]).head(3))


def test_log_without_name_then_register(workspace: Path, iris: tuple) -> None:
    with ratchet.start_run() as run:
        logged = ratchet.log_model(_train(iris))
        second = ratchet.log_model(_train(iris, 0.5))
    assert isinstance(logged, LoggedModel) and logged.uri == f"runs:/{run.id}/model"
    assert isinstance(second, LoggedModel) and second.artifact_path == "model-2"
    mv = ratchet.models.register(second.uri, "iris")
    assert mv.version == 1 and mv.content_hash == second.content_hash
    with pytest.raises(NotFound, match="no model"):
        ratchet.models.register(f"runs:/{run.id}/nothing", "iris")
    with pytest.raises(InvalidInput):
        ratchet.models.register("models:/iris/1", "other")


def test_lineage_reaches_datasets_and_commit(workspace: Path, iris: tuple) -> None:
    with ratchet.start_run(experiment="lin") as run:
        ratchet.log_input(DatasetInput("iris", "ab" * 32, 2, "train", "sklearn"))
        mv = ratchet.log_model(_train(iris), name="iris")
    ratchet.models.set_alias("iris", "champion", mv.version)
    lineage = ratchet.models.lineage("iris@champion")
    assert lineage.version.version == 1 and lineage.run is not None
    assert lineage.run.run_id == run.id
    assert lineage.run.inputs[0].name == "iris" and lineage.run.inputs[0].version == 2
    data = lineage.to_dict()
    assert data["aliases"] == ["champion"] and data["run"]["code"]["python_version"]
    with pytest.raises(InvalidInput):
        ratchet.models.lineage(f"runs:/{run.id}/model")


def test_tampered_blob_is_refused(workspace: Path, iris: tuple) -> None:
    with ratchet.start_run():
        mv = ratchet.log_model(_train(iris), name="iris")
    client = ratchet.models.client()
    entry = next(e for e in client.tracking.list_artifacts(mv.run_id, "model")
                 if e.path.endswith(".skops"))
    blob = Path(client.tracking.settings.artifacts_uri) / "blobs" / entry.digest[:2] / \
        entry.digest[2:]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        ratchet.models.load("models:/iris/1")


def test_cloudpickle_model_needs_trust(workspace: Path, iris: tuple) -> None:
    X, _ = iris

    class Doubler:
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return np.asarray(frame).sum(axis=1) * 2

    with ratchet.start_run():
        mv = ratchet.log_model(Doubler(), name="custom", input_example=X.head(3))
    assert mv.flavor == "python" and mv.manifest["safe"] is False
    with pytest.raises(Untrusted, match="trust=True"):
        ratchet.models.load("models:/custom/1")
    loaded = ratchet.models.load("models:/custom/1", trust=True)
    np.testing.assert_allclose(loaded.predict(X.head(3)), X.head(3).sum(axis=1) * 2)


def test_uri_errors(workspace: Path) -> None:
    for bad in ("", "models:/", "models:/a/b/c", "models:/a/0", "runs:/xyz/model", "s3://x",
                "models:/a/99999999999999999999999", "models:/a/\u0663"):
        with pytest.raises(InvalidInput):
            parse_model_uri(bad)
    with pytest.raises(NotFound):
        ratchet.models.load("models:/ghost@champion")
    with pytest.raises(InvalidInput, match="active run"):
        ratchet.log_model(object(), name="x")


def test_loaded_files_are_cached_by_content(workspace: Path, iris: tuple) -> None:
    with ratchet.start_run():
        mv = ratchet.log_model(_train(iris), name="iris")
    client = ratchet.models.client()
    first = client.download("models:/iris/1")
    mtime = first.stat().st_mtime_ns
    time.sleep(0.01)
    assert client.download("models:/iris/1") == first and first.stat().st_mtime_ns == mtime
    assert first.name == mv.content_hash
