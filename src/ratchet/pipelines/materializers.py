"""How step outputs become files, by type: DataFrames and Arrow tables → Parquet, numpy
arrays → ``.npy``, models → the registry's model packaging, JSON-able values → JSON.

A user teaches ratchet a new type with ``register_materializer``::

    class FigureMaterializer(ratchet.pipelines.FileMaterializer):
        name = "matplotlib.png"
        filename = "figure.png"
        def handles(self, value): return isinstance(value, Figure)
        def dumps(self, value): ...   # -> bytes
        def loads(self, data): ...

Registered materializers are tried before the built-in ones, newest first. Nothing here
unpickles unless the user registers ``PickleMaterializer`` for their own types.
"""

from __future__ import annotations

import io
import json
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from ratchet.errors import InvalidInput, NotFound

SAFE_MODEL_FLAVORS = ("sklearn", "lightgbm", "xgboost")


class Materializer(ABC):
    """Writes one kind of value into a directory and reads it back."""

    name: ClassVar[str]

    @abstractmethod
    def handles(self, value: Any) -> bool: ...

    @abstractmethod
    def save(self, value: Any, directory: Path) -> None: ...

    @abstractmethod
    def load(self, directory: Path) -> Any: ...


class FileMaterializer(Materializer):
    """A value that is one file: small ones are kept inline in the metadata store."""

    filename: ClassVar[str]

    @abstractmethod
    def dumps(self, value: Any) -> bytes: ...

    @abstractmethod
    def loads(self, data: bytes) -> Any: ...

    def save(self, value: Any, directory: Path) -> None:
        (directory / self.filename).write_bytes(self.dumps(value))

    def load(self, directory: Path) -> Any:
        return self.loads((directory / self.filename).read_bytes())


class JsonMaterializer(FileMaterializer):
    name = "json"
    filename = "value.json"

    def handles(self, value: Any) -> bool:
        try:
            self.dumps(value)
        except (TypeError, ValueError):
            return False
        return True

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":"),
                          default=_numpy_scalar).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


def _numpy_scalar(value: Any) -> Any:
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


class PandasMaterializer(FileMaterializer):
    name = "pandas.parquet"
    filename = "data.parquet"

    def handles(self, value: Any) -> bool:
        return type(value).__name__ == "DataFrame" and type(value).__module__.startswith(
            "pandas")

    def dumps(self, value: Any) -> bytes:
        buffer = io.BytesIO()
        value.to_parquet(buffer, engine="pyarrow", compression="zstd")
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


class ArrowMaterializer(FileMaterializer):
    name = "arrow.parquet"
    filename = "data.parquet"

    def handles(self, value: Any) -> bool:
        return type(value).__name__ == "Table" and type(value).__module__.startswith("pyarrow")

    def dumps(self, value: Any) -> bytes:
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(value, buffer, compression="zstd")
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data))


class NumpyMaterializer(FileMaterializer):
    name = "numpy.npy"
    filename = "array.npy"

    def handles(self, value: Any) -> bool:
        return type(value).__name__ == "ndarray" and type(value).__module__ == "numpy" \
            and value.dtype.kind != "O"

    def dumps(self, value: Any) -> bytes:
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)


class ModelMaterializer(Materializer):
    """Models through the registry's packaging (skops / native formats, no pickle)."""

    name = "model"

    def handles(self, value: Any) -> bool:
        module = type(value).__module__.split(".")[0]
        if module not in ("sklearn", "lightgbm", "xgboost", "imblearn") and \
                not hasattr(value, "fit"):
            return False
        from ratchet.packaging import detect_flavor

        return detect_flavor(value) in SAFE_MODEL_FLAVORS

    def save(self, value: Any, directory: Path) -> None:
        from ratchet.packaging import save_model

        save_model(value, directory)

    def load(self, directory: Path) -> Any:
        from ratchet.packaging import load_model

        return load_model(directory).raw


class DatasetMaterializer(FileMaterializer):
    """A DataFrame output stored as a dataset version (``@step(dataset=...)``); read back
    as pandas from the version's Parquet snapshot."""

    name = "dataset"
    filename = "data.parquet"

    def handles(self, value: Any) -> bool:
        return False  # chosen by the step's dataset= option, never by type

    def dumps(self, value: Any) -> bytes:
        raise InvalidInput("dataset outputs are written by the data catalog")

    def loads(self, data: bytes) -> Any:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


class PickleMaterializer(FileMaterializer):
    """cloudpickle for the given types. Opt-in: unpickling runs code, so register it only
    for your own types, in a store only you write to."""

    name = "pickle"
    filename = "value.pkl"

    def __init__(self, *types: type) -> None:
        if not types:
            raise InvalidInput("PickleMaterializer(*types): name the types it may pickle")
        self.types = types

    def handles(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def dumps(self, value: Any) -> bytes:
        import cloudpickle

        return bytes(cloudpickle.dumps(value))

    def loads(self, data: bytes) -> Any:
        import cloudpickle

        return cloudpickle.loads(data)


_BUILTIN: tuple[Materializer, ...] = (
    PandasMaterializer(), ArrowMaterializer(), NumpyMaterializer(), ModelMaterializer(),
    JsonMaterializer(), DatasetMaterializer(),
)
_registered: list[Materializer] = []
_lock = threading.Lock()


def register_materializer(materializer: Materializer) -> None:
    """Use ``materializer`` for the values it ``handles`` (before the built-in ones)."""
    if not isinstance(materializer, Materializer):
        raise InvalidInput("register_materializer takes a Materializer instance (subclass "
                           "ratchet.pipelines.Materializer or FileMaterializer)")
    name = getattr(materializer, "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{type(materializer).__name__} needs a class attribute `name`")
    if any(m.name == name for m in _BUILTIN) and not isinstance(materializer, PickleMaterializer):
        raise InvalidInput(f"materializer name {name!r} is built in; choose another name")
    with _lock:
        _registered[:] = [m for m in _registered if m.name != name]
        _registered.insert(0, materializer)


def materializer_for(value: Any, where: str) -> Materializer:
    for materializer in (*_registered, *_BUILTIN):
        if materializer.handles(value):
            return materializer
    raise InvalidInput(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which no "
        "materializer stores: return a DataFrame, Arrow table, numpy array, model or "
        "JSON-able value, or register one with ratchet.register_materializer(...)"
    )


def materializer_named(name: str) -> Materializer:
    for materializer in (*_registered, *_BUILTIN):
        if materializer.name == name:
            return materializer
    raise NotFound(f"no materializer named {name!r} is registered in this process: register "
                   "it (ratchet.register_materializer) before loading this output")
