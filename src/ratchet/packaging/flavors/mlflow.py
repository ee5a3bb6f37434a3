"""Models MLflow wrote (an ``MLmodel`` directory), loaded by what the MLmodel says they are.

Never chosen for saving (ratchet saves in its own flavors, with an MLmodel beside them).
Loading reads the ``MLmodel`` again (the manifest's ``safe`` is a summary, not the
authority) and goes by the underlying format:

- skops (MLflow 3's default for sklearn): ratchet's sklearn loader, with its allow-list;
- XGBoost / LightGBM Booster native files: loaded natively, after a probe in a child
  process (their parsers are C++);
- pickle / cloudpickle (MLflow 2's default): refused without trust, unpickled with it;
- any other ``python_function`` model: only with trust and the ``mlflow`` package
  installed, by ``mlflow.pyfunc.load_model`` (never imported otherwise).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, Untrusted
from ratchet.packaging.mlflow_format import (
    FLAVOR,
    LIGHTGBM,
    MAX_MLMODEL_BYTES,
    MLMODEL_FILENAME,
    PICKLE,
    PYFUNC,
    SKOPS,
    XGBOOST,
    XGBOOST_CLASSES,
    MlflowModel,
    describe_mlmodel,
    read_mlmodel,
)

if TYPE_CHECKING:
    from ratchet.packaging.manifest import Manifest

SAFE = True  # per model: the manifest's ``safe`` and the MLmodel decide (see load)


def can_save(model: object) -> bool:
    return False  # ratchet saves in its own flavors; this one only loads


def save(model: object, directory: Path) -> tuple[str, dict[str, str]]:
    raise InvalidInput(
        "the mlflow flavor only loads models MLflow wrote; save with another flavor "
        "(every ratchet model also gets an MLmodel that MLflow can load)"
    )


def load(directory: Path, manifest: Manifest, trust: bool) -> object:
    model = read_model(directory)
    if model.format == PYFUNC:
        return _load_pyfunc(directory, model, trust)
    assert model.data_file is not None
    path = _inside(directory, model.data_file)
    if model.format == SKOPS:
        from ratchet.packaging.flavors import sklearn

        return sklearn.load(directory, _as(manifest, "sklearn", model.data_file), trust)
    if model.format == PICKLE:
        return _unpickle(directory, path, model, trust)
    from ratchet.packaging.probe import probe_in_child

    probe_in_child(directory, manifest, trust=trust)  # native parser: a bad file may crash
    if model.format == XGBOOST:
        return _load_xgboost(path, model)
    if model.format == LIGHTGBM:
        return _load_lightgbm(path)
    raise InvalidInput(f"{directory}: unknown MLflow model format {model.format!r}")


def read_model(directory: Path) -> MlflowModel:
    """The directory's MLmodel, parsed and described (InvalidInput when it is unusable)."""
    path = directory / MLMODEL_FILENAME
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MLMODEL_BYTES + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{directory} has no {MLMODEL_FILENAME}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{path}: cannot read the MLmodel ({e})") from e
    where = str(path)
    return describe_mlmodel(read_mlmodel(text, where), where)


def refusal(directory: Path) -> str:
    """Why loading this MLflow model needs trust: what runs, and how to pass trust."""
    try:
        model = read_model(directory)
    except InvalidInput as e:
        return f"model {directory} (an MLflow model) is marked unsafe, and {e}"
    return _risk(directory, model)


def _risk(directory: Path, model: MlflowModel) -> str:
    how = ("Pass trust=True (ratchet serve --trust, ratchet build --trust) only if you trust "
           "whoever logged it")
    if model.format == PYFUNC:
        return (
            f"model {directory} is an MLflow python_function model (loader "
            f"{model.loader_module}): only MLflow can load it, and loading runs the model's "
            f"own code and usually unpickles it. {how}; the mlflow package must be installed "
            "too."
        )
    if model.format == PICKLE:
        return (
            f"model {directory} was logged by MLflow as a pickle ({model.data_file}): "
            f"unpickling runs arbitrary code from the file, with your permissions. {how}; "
            "or re-log it with MLflow's serialization_format='skops', which ratchet loads "
            "without trust."
        )
    return (f"model {directory} (an MLflow {model.format} model) is marked unsafe: loading "
            f"it runs arbitrary code. {how}.")


def _inside(directory: Path, relative: str) -> Path:
    """The model file, which must be a regular file inside the directory (a symlink out
    of it would let an MLmodel point anywhere)."""
    path = directory / relative
    root = directory.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise InvalidInput(f"{directory}: the MLmodel's model file {relative!r} is outside it")
    if not resolved.is_file():
        raise InvalidInput(f"{directory}: the model file {relative!r} the MLmodel names is missing")
    return path


def _as(manifest: Manifest, flavor: str, data_file: str) -> Manifest:
    return dataclasses.replace(manifest, flavor=flavor, model_file=data_file)


def _unpickle(directory: Path, path: Path, model: MlflowModel, trust: bool) -> object:
    if not trust:
        raise Untrusted(_risk(directory, model))
    import pickle

    with open(path, "rb") as f:
        return pickle.load(f)  # the caller trusts it; cloudpickle output is plain pickle


def _load_pyfunc(directory: Path, model: MlflowModel, trust: bool) -> object:
    if not trust:
        raise Untrusted(_risk(directory, model))
    what = f"model {directory} is an MLflow python_function model (loader {model.loader_module})"
    try:
        import mlflow.pyfunc
    except ImportError:
        raise InvalidInput(
            f"{what}: loading it needs the mlflow package, which is not installed; "
            "pip install mlflow (and the model's own requirements) to serve it"
        ) from None
    return mlflow.pyfunc.load_model(str(directory))


def _load_xgboost(path: Path, model: MlflowModel) -> object:
    import xgboost as xgb

    from ratchet.packaging.flavors.xgboost import NativeXGBBooster

    kind = XGBOOST_CLASSES[model.model_class or "xgboost.core.Booster"]
    loaded: Any = xgb.Booster() if kind == "Booster" else getattr(xgb, kind)()
    try:
        loaded.load_model(str(path))
    except xgb.core.XGBoostError as e:
        raise InvalidInput(f"{path} is not a readable XGBoost model ({e})") from e
    return NativeXGBBooster(loaded) if kind == "Booster" else loaded


def _load_lightgbm(path: Path) -> object:
    import lightgbm as lgb

    try:
        return lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as e:
        raise InvalidInput(f"{path} is not a readable LightGBM model ({e})") from e


__all__ = ["FLAVOR", "SAFE", "can_save", "load", "read_model", "refusal", "save"]
