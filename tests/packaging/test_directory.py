from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler

from ratchet.errors import InvalidInput, NotFound, RatchetError, Untrusted, ValidationFailed
from ratchet.packaging import Manifest, Signature, infer_signature, load_model, save_model
from ratchet.packaging.manifest import MANIFEST_FILENAME, MAX_EXAMPLE_ROWS


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="module")
def classifier(iris: tuple[pd.DataFrame, pd.Series]) -> LogisticRegression:
    X, y = iris
    return LogisticRegression(max_iter=1000).fit(X, y)


def saved(classifier: LogisticRegression, X: pd.DataFrame, path: Path, **kw: object) -> Path:
    save_model(classifier, path, input_example=X, **kw)  # type: ignore[arg-type]
    return path


def manifest_example() -> Manifest:
    return Manifest(
        flavor="sklearn",
        model_file="model.skops",
        library_versions={"scikit-learn": "1.6.1", "python": "3.11.7"},
        signature=infer_signature(pd.DataFrame({"a": [1.0, None]})).to_dict(),
        input_example=[{"a": 1.0}, {"a": None}],
        metrics={"accuracy": 0.93},
        safe=True,
        has_predict_proba=True,
    )


def test_manifest_json_round_trip() -> None:
    manifest = manifest_example()
    text = manifest.to_json()
    assert json.loads(text)["flavor"] == "sklearn"
    assert Manifest.from_json(text, where="x") == manifest
    assert manifest.created_at.endswith("Z")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: "{not json", "not valid JSON"),
        (lambda d: json.dumps([1, 2]), "JSON object"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "flavor"}), "'flavor'"),
        (lambda d: json.dumps({**d, "safe": "yes"}), "'safe'"),
        (lambda d: json.dumps({**d, "model_file": "../../etc/passwd"}), "plain file name"),
        (lambda d: json.dumps({**d, "metrics": {"a": "high"}}), "metrics"),
        (lambda d: json.dumps({**d, "manifest_version": 99}), "newer"),
    ],
)
def test_garbled_manifest_is_invalid_input(mutate: object, match: str) -> None:
    data = json.loads(manifest_example().to_json())
    with pytest.raises(InvalidInput, match=match) as info:
        Manifest.from_json(mutate(data), where="models/m/ratchet-model.json")  # type: ignore[operator]
    assert "models/m/ratchet-model.json" in str(info.value)


def test_load_missing_or_garbled_manifest_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        load_model(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match=str(empty)):
        load_model(empty)
    (empty / MANIFEST_FILENAME).write_text("{garbage", encoding="utf-8")
    with pytest.raises(InvalidInput, match=str(empty)):
        load_model(empty)


def test_saved_manifest_contents(iris: tuple[pd.DataFrame, pd.Series], tmp_path: Path) -> None:
    X, y = iris
    X = X.copy()
    X.iloc[0, 0] = np.nan
    model = HistGradientBoostingClassifier(max_iter=3).fit(X, y)  # takes NaN natively
    manifest = save_model(model, tmp_path / "m", input_example=X)
    on_disk = Manifest.from_json((tmp_path / "m" / MANIFEST_FILENAME).read_text(), where="m")
    assert on_disk == manifest
    assert manifest.input_example is not None
    assert len(manifest.input_example) == MAX_EXAMPLE_ROWS
    assert manifest.input_example[0]["sepal length (cm)"] is None
    assert manifest.input_format == "dataframe"
    assert manifest.signature is not None
    sig = Signature.from_dict(manifest.signature)
    assert sig.input_names == list(X.columns)
    assert sig.inputs[0].nullable  # inferred from the whole example, not the stored rows
    assert sig.outputs[0].dtype == "int64"


def test_predict_validates_with_the_signature(
    classifier: LogisticRegression, iris: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    X, _ = iris
    loaded = load_model(saved(classifier, X, tmp_path / "m"))
    records = [dict(reversed(list(r.items()))) | {"extra": "x"} for r in X.to_dict("records")]
    np.testing.assert_array_equal(loaded.predict(records), classifier.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X.to_numpy()), classifier.predict_proba(X))
    with pytest.raises(ValidationFailed, match="column 'petal width \\(cm\\)': missing"):
        loaded.predict([{"sepal length (cm)": 1.0}])


def test_array_trained_model_accepts_named_records(tmp_path: Path) -> None:
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X, y)
    manifest = save_model(model, tmp_path / "m", input_example=X)
    assert manifest.input_format == "ndarray"
    loaded = load_model(tmp_path / "m")
    records = [{f"f{i}": v for i, v in enumerate(row)} for row in X[:5]]
    np.testing.assert_allclose(loaded.predict(records), model.predict(X[:5]))
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))


def test_without_signature_or_example(classifier: LogisticRegression, tmp_path: Path) -> None:
    X, _ = load_iris(return_X_y=True, as_frame=True)
    manifest = save_model(classifier, tmp_path / "m", metrics={"accuracy": 0.9})
    assert manifest.signature is None
    assert manifest.input_example is None
    assert manifest.metrics == {"accuracy": 0.9}
    loaded = load_model(tmp_path / "m")
    assert loaded.signature is None
    np.testing.assert_array_equal(loaded.predict(X), classifier.predict(X))


def test_regressor_has_no_predict_proba(tmp_path: Path) -> None:
    X, y = load_diabetes(return_X_y=True)
    save_model(LinearRegression().fit(X, y), tmp_path / "m", input_example=X)
    loaded = load_model(tmp_path / "m")
    assert not loaded.has_predict_proba
    with pytest.raises(InvalidInput, match="has no predict_proba"):
        loaded.predict_proba(X)


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_save_refusals(classifier: LogisticRegression, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="known flavors: lightgbm, python, sklearn, xgboost"):
        save_model(classifier, tmp_path / "a", flavor="tensorflow")
    with pytest.raises(InvalidInput, match="no predict method"):
        save_model(StandardScaler(), tmp_path / "b")
    with pytest.raises(InvalidInput, match="flavor 'lightgbm' cannot save"):
        save_model(classifier, tmp_path / "c", flavor="lightgbm")
    with pytest.raises(InvalidInput, match="finite"):
        save_model(classifier, tmp_path / "d", metrics={"loss": float("nan")})
    with pytest.raises(InvalidInput, match="predict failed on the input example"):
        save_model(classifier, tmp_path / "e", input_example=np.zeros((2, 7)))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InvalidInput, match="not an empty directory"):
        save_model(classifier, tmp_path / "full")
    # Nothing half-written by the refused saves.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_explicit_signature_wins(classifier: LogisticRegression, tmp_path: Path) -> None:
    X, _ = load_iris(return_X_y=True, as_frame=True)
    signature = infer_signature(X, classifier.predict(X))
    manifest = save_model(classifier, tmp_path / "m", input_example=X.head(2), signature=signature)
    assert manifest.signature == signature.to_dict()


def test_tampered_manifest_cannot_smuggle_a_pickle(tmp_path: Path) -> None:
    X, _ = load_iris(return_X_y=True)

    class Model:
        def predict(self, X: object) -> np.ndarray:
            return np.zeros(len(X))  # type: ignore[arg-type]

    save_model(Model(), tmp_path / "m", flavor="python", input_example=X)
    path = tmp_path / "m" / MANIFEST_FILENAME
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "flavor": "sklearn", "safe": True}))
    with pytest.raises(InvalidInput, match="not a readable skops file"):
        load_model(tmp_path / "m")
    path.write_text(json.dumps({**data, "safe": True}))  # python flavor stays unsafe
    with pytest.raises(Untrusted):
        load_model(tmp_path / "m")


def test_version_drift_warns(
    classifier: LogisticRegression, iris: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    path = saved(classifier, iris[0], tmp_path / "m")
    manifest_path = path / MANIFEST_FILENAME
    manifest = Manifest.from_json(manifest_path.read_text(), where="m")
    versions = {**manifest.library_versions, "scikit-learn": "0.0.1"}
    manifest_path.write_text(replace(manifest, library_versions=versions).to_json())
    with pytest.warns(UserWarning, match="scikit-learn 0.0.1"):
        load_model(path)


def test_errors_are_ratchet_errors() -> None:
    assert issubclass(Untrusted, RatchetError)


def test_import_is_cheap() -> None:
    code = (
        "import sys, ratchet.packaging; "
        "heavy = [m for m in ('pandas', 'sklearn', 'skops', 'lightgbm', 'xgboost', "
        "'cloudpickle', 'sqlalchemy') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
