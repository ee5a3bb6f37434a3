"""The code part of a step's cache key: the source of the step's function and of every
project function and class it reaches (through globals, module attributes and closures).

Hashing only the step's own source (ZenML, Prefect) misses an edited helper; here a
change in any project code the step calls changes the key. Library code (site-packages,
the standard library, ratchet itself) is versioned by its package and not hashed.
"""

from __future__ import annotations

import inspect
import sys
import sysconfig
import types
from functools import lru_cache
from typing import Any

from ratchet.hashing import hash_bytes

_LIBRARY_ROOTS = tuple(
    {p for key in ("stdlib", "platstdlib", "purelib", "platlib")
     if (p := sysconfig.get_paths().get(key))}
    | {sys.prefix, sys.base_prefix, sys.exec_prefix}
)
_cache: dict[types.CodeType, str] = {}


def code_hash(fn: Any, version: str | None = None) -> str:
    """Hash of ``fn``'s code and the project code it calls; ``version`` replaces it."""
    if version is not None:
        return hash_bytes(f"version:{version}".encode())
    code = getattr(fn, "__code__", None)
    if code is not None and code in _cache:
        return _cache[code]
    parts: list[bytes] = []
    _collect(fn, parts, set())
    digest = hash_bytes(b"\0".join(parts))
    if code is not None:
        _cache[code] = digest
    return digest


@lru_cache(maxsize=4096)
def _module_is_project(module_name: str) -> bool:
    if module_name == "ratchet" or module_name.startswith("ratchet."):
        return False
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module is None or path is None:
        # __main__ in a REPL, or code made by exec: the user's own.
        return module_name == "__main__" or module is None
    return not path.startswith(_LIBRARY_ROOTS) and "site-packages" not in path


def _is_project(obj: Any) -> bool:
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and _module_is_project(module)


def _source(obj: Any) -> bytes:
    try:
        return inspect.getsource(obj).encode()
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is None:
            return repr(obj).encode()
        return _code_fingerprint(code)


def _code_fingerprint(code: types.CodeType) -> bytes:
    """Bytecode, constants and names: for functions without source (exec, REPL)."""
    consts = b"|".join(_code_fingerprint(c) if isinstance(c, types.CodeType) else
                       repr(c).encode() for c in code.co_consts)
    return code.co_code + b"\0" + consts + b"\0" + " ".join(code.co_names).encode()


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _collect(obj: Any, parts: list[bytes], seen: set[int]) -> None:
    from ratchet.pipelines.step_definition import Step

    if isinstance(obj, Step):
        obj = obj.fn
    if id(obj) in seen:
        return
    seen.add(id(obj))
    obj = inspect.unwrap(obj) if callable(obj) else obj
    parts.append(f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
                 .encode())
    parts.append(_source(obj))
    if inspect.isclass(obj):
        for member in vars(obj).values():
            func = getattr(member, "__func__", member)
            if inspect.isfunction(func):
                _follow(func, parts, seen)
        return
    if not inspect.isfunction(obj):
        return
    _follow(obj, parts, seen)


def _follow(fn: types.FunctionType, parts: list[bytes], seen: set[int]) -> None:
    names = _names(fn.__code__)
    scope = fn.__globals__
    candidates: list[Any] = [scope[name] for name in sorted(names) if name in scope]
    for cell in fn.__closure__ or ():
        try:
            candidates.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    for value in candidates:
        if isinstance(value, types.ModuleType):
            if _module_is_project(value.__name__):
                for name in sorted(names):
                    attr = getattr(value, name, None)
                    if attr is not None and _hashable_code(attr):
                        _collect(attr, parts, seen)
            continue
        if _hashable_code(value):
            _collect(value, parts, seen)


def _hashable_code(value: Any) -> bool:
    from ratchet.pipelines.step_definition import Step

    if isinstance(value, Step):
        return True
    return (inspect.isfunction(value) or inspect.isclass(value)) and _is_project(value)
