"""MLflow's model format (the ``MLmodel`` descriptor), in both directions.

Out: :func:`write_mlmodel` puts an ``MLmodel`` beside every model ratchet saves, with a
``python_function`` flavor whose loader is :mod:`ratchet.packaging.mlflow_pyfunc`, so
``mlflow.pyfunc.load_model(dir)`` loads it the ratchet way (skops / native formats, the
same trust rules); no pickle is written for MLflow.

In: :func:`manifest_for_mlflow_model` reads an ``MLmodel`` someone else wrote (untrusted
YAML: size-bounded, ``yaml.safe_load`` with depth and alias bounds, every field
type-checked) and returns the ratchet manifest describing that directory (flavor
``mlflow``, see :mod:`ratchet.packaging.flavors.mlflow`). :func:`describe_mlmodel` says
which underlying format the directory holds and whether it loads without trust.
"""

from __future__ import annotations

import json
import platform
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ratchet.atomic import write_atomic
from ratchet.columns import BOOL, CATEGORY, STRING, family
from ratchet.errors import InvalidInput
from ratchet.packaging.manifest import MANIFEST_FILENAME, Manifest, utc_now_iso

MLMODEL_FILENAME = "MLmodel"
FLAVOR = "mlflow"  # the ratchet flavor of a directory MLflow wrote
LOADER_MODULE = "ratchet.packaging.mlflow_pyfunc"
# The extra MLmodel flavor ratchet writes: what ratchet saved, and whether it needs trust.
RATCHET_MLFLOW_FLAVOR = "ratchet"
# An MLmodel is a few KB of YAML; a bigger one is not a model description.
MAX_MLMODEL_BYTES = 1 << 20
# A signature with more columns than this is refused rather than converted.
MAX_SIGNATURE_COLUMNS = 10_000

# Underlying formats of an MLflow directory (``MlflowModel.format``).
SKOPS = "skops"  # an sklearn (or LightGBM sklearn-API) model in skops: ratchet's allow-list
PICKLE = "pickle"  # pickle / cloudpickle: runs code from the file when loaded
XGBOOST = "xgboost"  # XGBoost's native file
LIGHTGBM = "lightgbm"  # a LightGBM Booster's native text file
PYFUNC = "pyfunc"  # any other python_function model: only MLflow itself loads it
SAFE_FORMATS = frozenset({SKOPS, XGBOOST, LIGHTGBM})

# The classes MLflow records for XGBoost / LightGBM models that load natively; a class
# name from the file is looked up here, never imported by name.
XGBOOST_CLASSES = {
    "xgboost.core.Booster": "Booster",
    "xgboost.sklearn.XGBClassifier": "XGBClassifier",
    "xgboost.sklearn.XGBRegressor": "XGBRegressor",
    "xgboost.sklearn.XGBRanker": "XGBRanker",
    "xgboost.sklearn.XGBRFClassifier": "XGBRFClassifier",
    "xgboost.sklearn.XGBRFRegressor": "XGBRFRegressor",
}
LIGHTGBM_BOOSTER = "lightgbm.basic.Booster"
_PICKLE_FORMATS = ("pickle", "cloudpickle")
_VERSION = re.compile(r"[0-9][A-Za-z0-9.+!_-]{0,63}")
# Datetimes without a zone (pandas 3 infers microseconds); MLflow's "datetime" has no zone.
_NAIVE_DATETIMES = frozenset(f"datetime64[{unit}]" for unit in ("s", "ms", "us", "ns"))

# MLflow ColSpec types -> ratchet dtype names (ratchet.columns).
_FROM_MLFLOW = {
    "boolean": BOOL,
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": STRING,
    "datetime": "datetime64[ns]",
}
# numpy dtype names of MLflow tensor specs -> ratchet dtype names.
_FROM_NUMPY = {
    "bool": BOOL, "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "float16": "float16", "float32": "float32", "float64": "float64",
    "str": STRING, "object": "object",
}


@dataclass(frozen=True)
class MlflowModel:
    """What an MLmodel says about loading its directory."""

    format: str  # SKOPS, PICKLE, XGBOOST, LIGHTGBM or PYFUNC
    data_file: str | None  # the model file, relative to the directory (None for PYFUNC)
    model_class: str | None  # XGBoost / LightGBM class as MLflow recorded it
    loader_module: str | None  # python_function's loader, if any
    library_versions: dict[str, str]

    @property
    def safe(self) -> bool:
        """Loading runs no code from the file (skops still checks its allow-list)."""
        return self.format in SAFE_FORMATS


# --------------------------------------------------------------------------- writing
def write_mlmodel(directory: Path, manifest: Manifest) -> None:
    """Write the ``MLmodel`` that lets ``mlflow.pyfunc.load_model`` load this directory
    through ratchet. Called by ``save_model`` before the manifest (written last)."""
    import yaml

    pyfunc: dict[str, Any] = {
        "loader_module": LOADER_MODULE,
        "python_version": platform.python_version(),
        "predict_fn": "predict",
    }
    ours: dict[str, Any] = {
        "flavor": manifest.flavor,
        "manifest": MANIFEST_FILENAME,
        "model_file": manifest.model_file,
        "safe": manifest.safe,
        "requires_trust": not manifest.safe,
        "ratchet_version": manifest.ratchet_version,
    }
    data: dict[str, Any] = {
        "flavors": {"python_function": pyfunc, RATCHET_MLFLOW_FLAVOR: ours},
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    signature = mlflow_signature(manifest)
    if signature is not None:
        data["signature"] = signature
    header = [
        f"# Written by ratchet {manifest.ratchet_version}: mlflow.pyfunc.load_model() loads",
        "# this model through ratchet (pip install ratchet-mlops), which reads",
        f"# {MANIFEST_FILENAME} and {manifest.model_file} ({manifest.flavor} flavor).",
    ]
    if not manifest.safe:
        header += [
            f"# {manifest.model_file} is a pickle: loading it runs arbitrary code, so the MLflow",
            "# loader refuses it. Load it with ratchet.packaging.load_model(dir, trust=True)",
            "# (or ratchet serve --trust) only if you trust its source.",
        ]
    body = yaml.safe_dump(data, sort_keys=True, default_flow_style=False)
    write_atomic(directory / MLMODEL_FILENAME, "\n".join(header) + "\n" + body)


def mlflow_signature(manifest: Manifest) -> dict[str, Any] | None:
    """The manifest's signature as MLflow's (column specs as JSON strings), or None when
    MLflow could not enforce it faithfully: then MLflow passes input through as given
    and ratchet's own validation (always applied) is the only check.

    Loose on purpose: integers are ``long`` and floats ``double`` (MLflow refuses to
    narrow an int64 to ``integer``; ratchet casts to the exact dtype after), nullable
    integers are ``double`` (nulls make them floats). A model trained on arrays gets no
    MLflow signature: MLflow would turn an array into a frame with columns 0..n-1.
    """
    if manifest.signature is None or manifest.input_format == "ndarray":
        return None
    inputs = _mlflow_columns(manifest.signature.get("inputs"))
    if not inputs:
        return None
    outputs = _mlflow_columns(manifest.signature.get("outputs"))
    return {
        "inputs": json.dumps(inputs),
        "outputs": json.dumps(outputs) if outputs else None,
        "params": None,
    }


def _mlflow_columns(columns: Any) -> list[dict[str, Any]] | None:
    if not isinstance(columns, list):
        return None
    specs = []
    for column in columns:
        if not isinstance(column, Mapping):
            return None
        name, dtype = column.get("name"), column.get("dtype")
        nullable = column.get("nullable") is True
        if not isinstance(name, str) or not isinstance(dtype, str):
            return None
        kind = _mlflow_type(dtype, nullable, column.get("categories"))
        if kind is None:
            return None
        specs.append({"type": kind, "name": name, "required": not nullable})
    return specs


def _mlflow_type(dtype: str, nullable: bool, categories: Any) -> str | None:
    kind = family(dtype)
    if kind == "integer":
        return "double" if nullable else "long"
    if kind == "float":
        return "double"
    if kind == "boolean" and not nullable:
        return "boolean"
    if dtype == STRING:
        return "string"
    if dtype == CATEGORY and isinstance(categories, list) and not any(
        _looks_numeric(c) for c in categories
    ):
        return "string"  # categories of numbers are cast back to numbers by ratchet
    if dtype in _NAIVE_DATETIMES:
        return "datetime"
    return None


def _looks_numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- reading
def read_mlmodel(text: str, where: str) -> dict[str, Any]:
    """The MLmodel's top-level mapping, parsed safely; ``InvalidInput`` naming ``where``
    for anything that is not a plausible MLmodel."""
    from ratchet.safe_load import load_yaml

    if len(text) > MAX_MLMODEL_BYTES or len(text.encode("utf-8")) > MAX_MLMODEL_BYTES:
        raise InvalidInput(
            f"{where}: the MLmodel is larger than {MAX_MLMODEL_BYTES} bytes; an MLmodel is a "
            "few KB of YAML, so this is not one"
        )
    data = load_yaml(text, where)  # SafeLoader: no !!python tags; bounded depth and aliases
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: an MLmodel must be a YAML mapping")
    flavors = data.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise InvalidInput(f"{where}: the MLmodel has no 'flavors' mapping")
    for name, conf in flavors.items():
        if not isinstance(name, str) or not isinstance(conf, dict):
            raise InvalidInput(f"{where}: MLmodel flavor {name!r} must map to a mapping")
    return data


def describe_mlmodel(data: Mapping[str, Any], where: str) -> MlflowModel:
    """Which underlying format an MLflow directory holds, from its parsed MLmodel.

    Native formats win over ``python_function``: XGBoost, then LightGBM, then sklearn.
    """
    flavors: Mapping[str, Any] = data["flavors"]
    pyfunc = flavors.get("python_function") or {}
    loader = _optional_str(pyfunc, "loader_module", where, "python_function")
    versions = _library_versions(data, flavors)
    if RATCHET_MLFLOW_FLAVOR in flavors or loader == LOADER_MODULE:
        raise InvalidInput(
            f"{where}: this model was saved by ratchet; load it by its {MANIFEST_FILENAME} "
            "(upload that file with it), not by its MLmodel"
        )
    if "xgboost" in flavors:
        conf = flavors["xgboost"]
        model_class = _optional_str(conf, "model_class", where, "xgboost") or "xgboost.core.Booster"
        if model_class not in XGBOOST_CLASSES:
            raise InvalidInput(
                f"{where}: XGBoost model class {model_class!r} is not one ratchet loads "
                f"natively ({', '.join(sorted(XGBOOST_CLASSES))})"
            )
        data_file = _data_file(conf, "data", where, "xgboost")
        return MlflowModel(XGBOOST, data_file, model_class, loader, versions)
    if "lightgbm" in flavors:
        conf = flavors["lightgbm"]
        model_class = _optional_str(conf, "model_class", where, "lightgbm") or LIGHTGBM_BOOSTER
        data_file = _data_file(conf, "data", where, "lightgbm")
        if model_class == LIGHTGBM_BOOSTER:
            return MlflowModel(LIGHTGBM, data_file, model_class, loader, versions)
        fmt = _serialization(conf, where, "lightgbm")
        return MlflowModel(fmt, data_file, model_class, loader, versions)
    if "sklearn" in flavors:
        conf = flavors["sklearn"]
        data_file = _data_file(conf, "pickled_model", where, "sklearn")
        fmt = _serialization(conf, where, "sklearn")
        return MlflowModel(fmt, data_file, None, loader, versions)
    if "python_function" in flavors:
        if loader is None:
            raise InvalidInput(f"{where}: the python_function flavor names no loader_module")
        return MlflowModel(PYFUNC, None, None, loader, versions)
    raise InvalidInput(
        f"{where}: no MLmodel flavor ratchet can load (found {', '.join(sorted(flavors))}; "
        "ratchet loads sklearn, xgboost, lightgbm and python_function models)"
    )


def manifest_for_mlflow_model(
    mlmodel_text: str, where: str, files: Iterable[str] = ()
) -> Manifest:
    """The ratchet manifest of a directory MLflow wrote: flavor ``mlflow``, model file
    ``MLmodel``, ``safe`` when the underlying format loads without running code from
    the file, the signature when MLflow's maps onto ratchet's. ``files`` (paths relative
    to the directory), when given, must hold the model file the MLmodel names."""
    data = read_mlmodel(mlmodel_text, where)
    model = describe_mlmodel(data, where)
    present = set(files)
    if present and model.data_file is not None and model.data_file not in present:
        raise InvalidInput(
            f"{where}: the MLmodel names model file {model.data_file!r}, which is not among "
            "the uploaded files"
        )
    signature, input_format = ratchet_signature(data.get("signature"), where)
    return Manifest(
        flavor=FLAVOR,
        model_file=MLMODEL_FILENAME,
        library_versions=model.library_versions,
        signature=signature,
        input_example=None,
        metrics={},
        safe=model.safe,
        has_predict_proba=False,  # the MLmodel does not say; predict is always there
        created_at=_created_at(data.get("utc_time_created")),
        input_format=input_format,
    )


def ratchet_signature(raw: Any, where: str) -> tuple[dict[str, Any] | None, str | None]:
    """MLflow's signature as ratchet's (or None when it does not map: tensors, unnamed
    columns, nested types), and the input format it implies."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: the MLmodel's 'signature' must be a mapping")
    inputs = _schema(raw.get("inputs"), f"{where}: signature.inputs")
    outputs = _schema(raw.get("outputs"), f"{where}: signature.outputs")
    if not inputs:
        return None, None
    if any(spec.get("type") == "tensor" for spec in inputs):
        return None, "ndarray"
    columns = [_ratchet_column(spec) for spec in inputs]
    names = [c["name"] for c in columns if c is not None]
    if None in columns or len(set(names)) != len(names):
        return None, "dataframe" if all(isinstance(s.get("name"), str) for s in inputs) else None
    out_columns = _ratchet_outputs(outputs)
    signature = {"inputs": columns, "outputs": out_columns}
    from ratchet.packaging.signature import Signature

    Signature.from_dict(signature, f"{where}: signature")  # what load_model will check
    return signature, "dataframe"


def _schema(raw: Any, where: str) -> list[dict[str, Any]]:
    from ratchet.safe_load import load_json

    if raw is None:
        return []
    value = load_json(raw, where) if isinstance(raw, str) else raw
    if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
        raise InvalidInput(f"{where}: must be a JSON list of column or tensor specs")
    if len(value) > MAX_SIGNATURE_COLUMNS:
        raise InvalidInput(f"{where}: more than {MAX_SIGNATURE_COLUMNS} columns")
    return value


def _ratchet_column(spec: Mapping[str, Any], name: str | None = None) -> dict[str, Any] | None:
    kind, required = spec.get("type"), spec.get("required", True)
    name = spec.get("name", name)
    if not isinstance(name, str) or not name or not isinstance(kind, str):
        return None
    dtype = _FROM_MLFLOW.get(kind)
    if dtype is None or not isinstance(required, bool):
        return None  # binary, array, object, map, any: no ratchet column type
    return _column(name, dtype, nullable=not required)


def _ratchet_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(outputs) == 1 and outputs[0].get("type") == "tensor":
        spec = outputs[0].get("tensor-spec")
        if isinstance(spec, dict) and spec.get("shape") in ([-1], [-1, 1]):
            dtype = _FROM_NUMPY.get(str(spec.get("dtype")))
            return [] if dtype is None else [_column("prediction", dtype, nullable=False)]
        return []
    if len(outputs) == 1 and "name" not in outputs[0]:
        column = _ratchet_column(outputs[0], "prediction")
        return [] if column is None else [column]
    columns = [_ratchet_column(spec) for spec in outputs]
    return [] if None in columns else [c for c in columns if c is not None]


def _column(name: str, dtype: str, *, nullable: bool) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "nullable": nullable, "min": None, "max": None,
            "categories": None}


# --------------------------------------------------------------------------- fields
def _optional_str(conf: Mapping[str, Any], key: str, where: str, flavor: str) -> str | None:
    value = conf.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{where}: flavors.{flavor}.{key} must be a string")
    return value


def _data_file(conf: Mapping[str, Any], key: str, where: str, flavor: str) -> str:
    """A model file path from the MLmodel: relative, inside the directory, normal form."""
    value = conf.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}: flavors.{flavor}.{key} must name the model file")
    path = PurePosixPath(value)
    if (
        path.is_absolute()
        or "\\" in value
        or "\x00" in value
        or ":" in value
        or any(part in ("", ".", "..") for part in value.split("/"))
        or len(path.parts) > 8
        or len(value) > 255
    ):
        raise InvalidInput(
            f"{where}: flavors.{flavor}.{key} is {value!r}; the model file must be a relative "
            "path inside the model directory"
        )
    return value


def _serialization(conf: Mapping[str, Any], where: str, flavor: str) -> str:
    # MLflow before 2.x wrote no serialization_format: its default was cloudpickle.
    fmt = conf.get("serialization_format") or "cloudpickle"
    if fmt == "skops":
        return SKOPS
    if fmt in _PICKLE_FORMATS:
        return PICKLE
    raise InvalidInput(
        f"{where}: flavors.{flavor}.serialization_format {fmt!r} is not one of "
        "skops, pickle, cloudpickle"
    )


def _library_versions(data: Mapping[str, Any], flavors: Mapping[str, Any]) -> dict[str, str]:
    """The versions the MLmodel records of the libraries loading it needs (mlflow itself
    only for a generic python_function model: the others load without it)."""
    native = any(name in flavors for name in ("sklearn", "xgboost", "lightgbm"))
    found = {
        "python": (flavors.get("python_function") or {}).get("python_version"),
        "mlflow": None if native else data.get("mlflow_version"),
        "scikit-learn": (flavors.get("sklearn") or {}).get("sklearn_version"),
        "xgboost": (flavors.get("xgboost") or {}).get("xgb_version"),
        "lightgbm": (flavors.get("lightgbm") or {}).get("lgb_version"),
        "cloudpickle": (flavors.get("python_function") or {}).get("cloudpickle_version"),
    }
    # A version is informational (and pinned by ratchet build): anything that is not a
    # plain version string is dropped, not an error.
    return {k: v for k, v in found.items() if isinstance(v, str) and _VERSION.fullmatch(v)}


def _created_at(value: Any) -> str:
    """MLflow's ``utc_time_created`` ('2026-01-02 03:04:05.678901') as ratchet's ISO form."""
    if isinstance(value, datetime):  # an unquoted timestamp: YAML parsed it already
        value = value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, str):
        try:
            parsed = datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        except ValueError:
            return utc_now_iso()
        return parsed.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return utc_now_iso()


__all__ = [
    "FLAVOR",
    "LOADER_MODULE",
    "MAX_MLMODEL_BYTES",
    "MLMODEL_FILENAME",
    "MlflowModel",
    "describe_mlmodel",
    "manifest_for_mlflow_model",
    "mlflow_signature",
    "ratchet_signature",
    "read_mlmodel",
    "write_mlmodel",
]
