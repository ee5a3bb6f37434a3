"""The JSON form of a store method's arguments and result, derived from its type hints.

The team server exposes every ``workspace.stores.<store>.<method>`` over HTTP, and the
remote client implements the same methods by calling it. Both sides read the same
signature: the client encodes the arguments it was given with pydantic adapters of the
parameters' annotations, the server validates the body against a model built from the
same annotations, calls the real method, and encodes the result with the return
annotation; the client decodes it back into the same records (frozen dataclasses,
tuples, lists). One set of domain code, no hand-written serializers to drift apart.

NaN and ±infinity travel as the JSON extensions ``NaN`` / ``Infinity`` (metric values
may be NaN); both ends are Python's ``json``.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ratchet.errors import InvalidInput

# Parameters a method takes only from code in the same process (a caller's open
# transaction), never over the wire.
IN_PROCESS_ONLY = frozenset({"conn"})


def _fallback(value: Any) -> Any:
    """NumPy/pandas scalars and arrays as plain Python; anything else as its text."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) in ((), None):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(value)


INT64 = (-(2 ** 63), 2 ** 63 - 1)


def check_storable(value: Any, where: str) -> None:
    """Refuse what no database column can hold, wherever it sits in an argument (inside
    records, lists and open-ended mappings): integers past 64 bits, NUL in text."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise InvalidInput(f"{where}: {value} does not fit in 64 bits")
    elif isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(f"{where}: text may not contain NUL (\\u0000) characters")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise InvalidInput(f"{where}: text holds a lone surrogate (not UTF-8)") \
                    from None
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            check_storable(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_storable(key, f"{where} key")
            check_storable(item, f"{where}.{key}")
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            check_storable(item, f"{where}.{i}")


def _wire_hint(hint: Any) -> Any:
    """The type the server validates a parameter against: ``Iterable[X]`` read eagerly as
    ``list[X]`` (pydantic checks an ``Iterable`` lazily, while the store is already
    iterating, too late for a clean 422)."""
    import collections.abc

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (collections.abc.Iterable, collections.abc.Iterator) and args:
        return list[args[0]]  # type: ignore[valid-type]
    return hint


def _open_ended(hint: Any) -> bool:
    """Whether a type leaves its values' types open (``Any``, ``object`` somewhere in it):
    the store then writes them as JSON itself, with ``str`` for what JSON lacks."""
    if hint is Any or hint is object:
        return True
    return any(_open_ended(arg) for arg in typing.get_args(hint))


def _as_stored(value: Any) -> Any:
    """An open-ended value as the local store would write it (``json.dumps(...,
    default=str)``): containers kept, JSON's own types kept, NumPy scalars as numbers,
    anything else (dates, paths, enums) as its text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _as_stored(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_stored(v) for v in value]
    converted = _fallback(value)
    return converted if converted is not value and not isinstance(converted, str) \
        else str(value)


@dataclass(frozen=True)
class MethodWire:
    """How one store method's call and result cross the wire."""

    store: str
    name: str
    function: Callable[..., Any]

    @cached_property
    def signature(self) -> inspect.Signature:
        sig = inspect.signature(self.function)
        params = [p for n, p in sig.parameters.items()
                  if n != "self" and n not in IN_PROCESS_ONLY]
        return sig.replace(parameters=params)

    @cached_property
    def hints(self) -> dict[str, Any]:
        return typing.get_type_hints(self.function)

    @cached_property
    def _open_ended(self) -> frozenset[str]:
        return frozenset(n for n in self.signature.parameters
                         if _open_ended(self.hints.get(n, Any)))

    @cached_property
    def _result_model(self) -> Any:
        from pydantic import ConfigDict, create_model

        return create_model(f"{self._title}Result", __config__=ConfigDict(
            ser_json_inf_nan="constants", ser_json_bytes="base64", val_json_bytes="base64",
            protected_namespaces=()),
            result=(self.hints.get("return", Any), ...))

    @property
    def _title(self) -> str:
        return "".join(part.title() for part in f"{self.store}_{self.name}".split("_"))

    @cached_property
    def args_model(self) -> type:
        """A pydantic model of the arguments (the request body; in the OpenAPI schema)."""
        from pydantic import BaseModel, ConfigDict, Field, create_model

        fields: dict[str, Any] = {}
        for name, param in self.signature.parameters.items():
            hint = _wire_hint(self.hints.get(name, Any))
            default = ... if param.default is inspect.Parameter.empty else param.default
            # A parameter named like a BaseModel attribute ("schema") gets a field name
            # of its own; the JSON key stays the parameter's name.
            field_name = f"{name}_" if hasattr(BaseModel, name) else name
            fields[field_name] = (hint, Field(default, alias=name))
        return create_model(
            f"{self._title}Args", __config__=ConfigDict(
                extra="forbid", protected_namespaces=(), populate_by_name=True,
                ser_json_inf_nan="constants", ser_json_bytes="base64",
                val_json_bytes="base64"),
            **fields)

    # ------------------------------------------------------------------ client side
    def encode_call(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bytes:
        """The request body for ``method(*args, **kwargs)``; a wrong call raises the
        ``TypeError`` Python would."""
        from pydantic import BaseModel

        bound = self.signature.bind(*args, **kwargs)
        values = {}
        for name, value in bound.arguments.items():
            if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping
                                                                 | list | tuple | set):
                value = list(value)  # generators: sent as lists, read once
            if name in self._open_ended:
                value = _as_stored(value)
            values[f"{name}_" if hasattr(BaseModel, name) else name] = value
        model = self.args_model.model_construct(**values)  # type: ignore[attr-defined]
        return model.model_dump_json(
            by_alias=True, exclude_unset=True, fallback=_fallback, warnings=False).encode()

    def decode_result(self, content: bytes) -> Any:
        return self._result_model.model_validate_json(content).result

    # ------------------------------------------------------------------ server side
    def arguments(self, validated: Any) -> dict[str, Any]:
        """Keyword arguments for the real method from a validated ``args_model``."""
        from pydantic import BaseModel

        found = {}
        for name in self.signature.parameters:
            field_name = f"{name}_" if hasattr(BaseModel, name) else name
            found[name] = getattr(validated, field_name)
            check_storable(found[name], name)
        return found

    def encode_result(self, value: Any) -> bytes:
        """``{"result": ...}`` for the method's return value."""
        model = self._result_model.model_construct(result=value)
        return model.model_dump_json(fallback=_fallback, warnings=False).encode()


def method_wires(store: str, cls: type, names: Iterable[str]) -> dict[str, MethodWire]:
    """The wires of ``cls``'s methods ``names`` (a store class of ``workspace.stores``)."""
    return {name: MethodWire(store, name, getattr(cls, name)) for name in names}
