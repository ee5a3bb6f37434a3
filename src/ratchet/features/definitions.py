"""What a feature store is declared with: entities, feature views and on-demand views.

Plain Python objects, declared in a module and registered with ``ratchet features apply``.
Each has a canonical ``spec()`` (JSON) and its ``digest``: a changed spec is a new version
in the metadata store, the same spec is the version already there.

On-demand views are Python functions; their code is never stored or loaded from the
metadata store (no code runs from data). The spec holds the function's ``module:qualname``
and a digest of its source, so training and serving can check that the code they imported
is the code that was registered.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput
from ratchet.hashing import hash_bytes
from ratchet.names import check_portable_name

if TYPE_CHECKING:
    import pandas as pd

DATASET_SOURCE_PREFIX = "dataset:"  # a source naming a ratchet dataset: dataset:NAME[@SEL]
MAX_FEATURES = 1000


def _column(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise InvalidInput(f"{what} must be a non-empty column name of at most 256 "
                           f"characters, got {value!r}")
    if ":" in value:
        raise InvalidInput(f"{what} {value!r} may not contain ':' (it separates a view's "
                           "name from a feature's in 'view:feature')")
    return value


def _columns(what: str, values: object, *, allow_empty: bool = False) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInput(f"{what} must be a list of column names, got {values!r}")
    names = tuple(_column(what, v) for v in values)
    if not names and not allow_empty:
        raise InvalidInput(f"{what} must name at least one column")
    if len(names) > MAX_FEATURES:
        raise InvalidInput(f"{what}: {len(names)} columns, over the limit of {MAX_FEATURES}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidInput(f"{what} repeats {', '.join(map(repr, repeated))}")
    return names


def spec_digest(spec: dict[str, Any]) -> str:
    """The content hash of a canonical spec."""
    return hash_bytes(json.dumps(spec, sort_keys=True, allow_nan=False).encode())[:32]


@dataclass(frozen=True)
class Entity:
    """What features are about (a driver, a customer), and the columns that identify one."""

    name: str
    join_keys: tuple[str, ...] = ()
    description: str = ""

    def __init__(self, name: str, join_keys: Sequence[str] | None = None,
                 description: str = "") -> None:
        name = check_portable_name("entity", name)
        keys = _columns(f"entity {name!r} join_keys",
                        [name] if join_keys is None else join_keys)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "description", str(description or ""))

    kind = "entity"

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "join_keys": list(self.join_keys),
                "description": self.description}

    @property
    def digest(self) -> str:
        return spec_digest(self.spec())

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Entity:
        return cls(spec["name"], spec["join_keys"], spec.get("description", ""))


@dataclass(frozen=True)
class FeatureView:
    """Features of one or more entities, read from a source with an event-time column.

    ``source`` is a Parquet or CSV path (a file, a directory of Parquet files or a glob) or
    ``dataset:NAME[@SELECTOR]``, a ratchet dataset (the latest version when unpinned).
    A row is valid from its ``timestamp_field`` until ``ttl`` later (forever without one);
    ``created_timestamp_field`` breaks ties between rows with the same event time (the later
    write wins) and lets a training set ignore rows written after its label's time.
    """

    name: str
    entities: tuple[Entity, ...]
    source: str
    timestamp_field: str
    features: tuple[str, ...]
    ttl: timedelta | None = None
    created_timestamp_field: str | None = None
    description: str = ""
    online: bool = True

    def __init__(self, name: str, *, entities: Sequence[Entity], source: str,
                 timestamp_field: str, features: Sequence[str],
                 ttl: timedelta | None = None, created_timestamp_field: str | None = None,
                 description: str = "", online: bool = True) -> None:
        name = check_portable_name("feature view", name)
        where = f"feature view {name!r}"
        if isinstance(entities, Entity) or not isinstance(entities, Iterable):
            raise InvalidInput(f"{where}: entities must be a list of Entity, got {entities!r}")
        entities = tuple(entities)
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise InvalidInput(f"{where}: entities must be a non-empty list of Entity objects")
        if not isinstance(source, str) or not source.strip():
            raise InvalidInput(f"{where}: source must be a Parquet/CSV path or "
                               f"'dataset:NAME', got {source!r}")
        timestamp_field = _column(f"{where} timestamp_field", timestamp_field)
        if created_timestamp_field is not None:
            created_timestamp_field = _column(f"{where} created_timestamp_field",
                                              created_timestamp_field)
        features = _columns(f"{where} features", features)
        if ttl is not None and (not isinstance(ttl, timedelta) or ttl <= timedelta(0)):
            raise InvalidInput(f"{where}: ttl must be a positive timedelta or None, got {ttl!r}")
        keys: list[str] = []
        for entity in entities:
            keys.extend(k for k in entity.join_keys if k not in keys)
        special = {*keys, timestamp_field, created_timestamp_field}
        clash = sorted(f for f in features if f in special)
        if clash:
            raise InvalidInput(f"{where}: {', '.join(map(repr, clash))} is a join key or "
                               "timestamp column, not a feature")
        for attr, value in (("name", name), ("entities", entities), ("source", source),
                            ("timestamp_field", timestamp_field), ("features", features),
                            ("ttl", ttl), ("created_timestamp_field", created_timestamp_field),
                            ("description", str(description or "")), ("online", bool(online))):
            object.__setattr__(self, attr, value)

    kind = "feature_view"

    @property
    def join_keys(self) -> tuple[str, ...]:
        """The entities' join keys, in declaration order, each once."""
        keys: list[str] = []
        for entity in self.entities:
            keys.extend(k for k in entity.join_keys if k not in keys)
        return tuple(keys)

    @property
    def dataset_source(self) -> str | None:
        """The dataset reference when the source is a ratchet dataset, else None."""
        if self.source.startswith(DATASET_SOURCE_PREFIX):
            return self.source[len(DATASET_SOURCE_PREFIX):]
        return None

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "entities": [e.spec() for e in self.entities],
                "source": self.source, "timestamp_field": self.timestamp_field,
                "created_timestamp_field": self.created_timestamp_field,
                "features": list(self.features),
                "ttl_seconds": None if self.ttl is None else self.ttl.total_seconds(),
                "description": self.description, "online": self.online}

    @property
    def digest(self) -> str:
        return spec_digest(self.spec())

    def with_source(self, source: str) -> FeatureView:
        """The same view reading ``source`` (apply makes relative paths absolute)."""
        return FeatureView(self.name, entities=self.entities, source=source,
                           timestamp_field=self.timestamp_field, features=self.features,
                           ttl=self.ttl, created_timestamp_field=self.created_timestamp_field,
                           description=self.description, online=self.online)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> FeatureView:
        ttl = spec.get("ttl_seconds")
        return cls(spec["name"], entities=[Entity.from_spec(e) for e in spec["entities"]],
                   source=spec["source"], timestamp_field=spec["timestamp_field"],
                   features=spec["features"],
                   ttl=None if ttl is None else timedelta(seconds=ttl),
                   created_timestamp_field=spec.get("created_timestamp_field"),
                   description=spec.get("description", ""), online=spec.get("online", True))


def split_feature_ref(ref: object) -> tuple[str, str | None]:
    """``"view:feature"`` → (view, feature); ``"view"`` → (view, None): all its features."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"a feature reference is 'view:feature' or 'view', got {ref!r}")
    view, sep, feature = ref.partition(":")
    if not view or (sep and not feature):
        raise InvalidInput(f"feature reference {ref!r} is not 'view:feature' or 'view'")
    return view, (feature if sep else None)


def code_digest(function: Callable[..., Any]) -> str:
    """A digest of a function's source (its bytecode when the source is not available)."""
    try:
        text = inspect.getsource(function).encode()
    except (OSError, TypeError):
        code = getattr(function, "__code__", None)
        if code is None:
            raise InvalidInput(f"{function!r} is not a Python function") from None
        text = code.co_code + repr(code.co_consts).encode()
    return hash_bytes(text)[:32]


# On-demand views made in this process: what training and serving call. Code is taken only
# from modules the user imported, never from the metadata store. By name, then by where the
# function is (module:qualname): declaring it again there (an edited notebook cell, a
# reloaded module) replaces it; two modules declaring the same name both stay, and the one
# whose code is the registered version is the one used.
_loaded: dict[str, dict[str, OnDemandFeatureView]] = {}
_loaded_lock = threading.Lock()


@dataclass(frozen=True)
class OnDemandFeatureView:
    """Features computed by a function at request time (and, with the same code, for every
    row of a training set) from other views' features and request data.

    The function takes a pandas DataFrame with one column per input feature (its feature
    name) and per request field, and returns a DataFrame (or a dict of columns) with the
    ``features`` columns, one row per input row.
    """

    name: str
    inputs: tuple[str, ...]
    request: tuple[str, ...]
    features: tuple[str, ...]
    function: Callable[[pd.DataFrame], Any] = field(repr=False, compare=False)
    description: str = ""

    def __init__(self, name: str, *, function: Callable[[pd.DataFrame], Any],
                 inputs: Sequence[str] = (), request: Sequence[str] = (),
                 features: Sequence[str], description: str = "") -> None:
        name = check_portable_name("on-demand view", name)
        where = f"on-demand view {name!r}"
        if not callable(function):
            raise InvalidInput(f"{where}: function must be callable, got {function!r}")
        if isinstance(inputs, str) or not isinstance(inputs, Iterable):
            raise InvalidInput(f"{where}: inputs must be a list of 'view:feature' references")
        refs = tuple(inputs)
        for ref in refs:
            _view, feature = split_feature_ref(ref)
            if feature is None:
                raise InvalidInput(f"{where}: input {ref!r} must name one feature, "
                                   "'view:feature'")
        request_fields = _columns(f"{where} request", request, allow_empty=True)
        if not refs and not request_fields:
            raise InvalidInput(f"{where}: give inputs (features) or request fields, or both")
        outputs = _columns(f"{where} features", features)
        for attr, value in (("name", name), ("inputs", refs), ("request", request_fields),
                            ("features", outputs), ("function", function),
                            ("description", str(description or ""))):
            object.__setattr__(self, attr, value)
        with _loaded_lock:
            declared = _loaded.setdefault(name, {})
            declared.pop(self.target, None)  # the newest declaration last
            declared[self.target] = self

    kind = "on_demand"

    @property
    def target(self) -> str:
        """Where the code is: ``module:qualname``."""
        module = getattr(self.function, "__module__", None) or "?"
        return f"{module}:{getattr(self.function, '__qualname__', repr(self.function))}"

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "inputs": list(self.inputs), "request": list(self.request),
                "features": list(self.features), "function": self.target,
                "code_digest": code_digest(self.function), "description": self.description}

    @property
    def digest(self) -> str:
        return spec_digest(self.spec())

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.compute(frame)

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Run the function on ``frame`` and check what it returns: the ``features`` columns,
        one row per input row, in the input's index."""
        import pandas as pd

        from ratchet.errors import ModelFailed

        try:
            result = self.function(frame)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            raise ModelFailed(f"on-demand view {self.name!r} ({self.target}) raised "
                              f"{type(exc).__name__}: {exc}") from exc
        if isinstance(result, dict):
            result = pd.DataFrame(result, index=frame.index)
        if not isinstance(result, pd.DataFrame):
            raise InvalidInput(f"on-demand view {self.name!r} returned "
                               f"{type(result).__name__}, not a DataFrame")
        missing = [f for f in self.features if f not in result.columns]
        if missing:
            raise InvalidInput(f"on-demand view {self.name!r} did not return "
                               f"{', '.join(map(repr, missing))}")
        if len(result) != len(frame):
            raise InvalidInput(f"on-demand view {self.name!r} returned {len(result)} rows for "
                               f"{len(frame)} input rows")
        out = result[list(self.features)]
        out.index = frame.index
        return out


def on_demand(*, features: Sequence[str], inputs: Sequence[str] = (),
              request: Sequence[str] = (), name: str | None = None,
              description: str = "") -> Callable[[Callable[[pd.DataFrame], Any]],
                                                 OnDemandFeatureView]:
    """Declare an on-demand view from a function::

        @on_demand(inputs=["driver_stats:trips"], request=["distance_km"],
                   features=["trips_per_km"])
        def trip_ratios(df):
            return pd.DataFrame({"trips_per_km": df["trips"] / df["distance_km"]})
    """
    def wrap(function: Callable[[pd.DataFrame], Any]) -> OnDemandFeatureView:
        return OnDemandFeatureView(name or function.__name__, function=function, inputs=inputs,
                                   request=request, features=features,
                                   description=description or (function.__doc__ or "").strip())
    return wrap


def loaded_on_demand(name: str) -> OnDemandFeatureView | None:
    """The on-demand view of that name declared last in this process, if any."""
    found = loaded_versions(name)
    return found[0] if found else None


def loaded_versions(name: str) -> list[OnDemandFeatureView]:
    """Every on-demand view of that name this process holds (one per module:qualname),
    newest declaration first."""
    with _loaded_lock:
        return list(reversed(_loaded.get(name, {}).values()))


def still_loaded(view: OnDemandFeatureView) -> bool:
    """Whether ``view`` is still its module:qualname's declaration (not redeclared)."""
    with _loaded_lock:
        return _loaded.get(view.name, {}).get(view.target) is view


Definition = Entity | FeatureView | OnDemandFeatureView
