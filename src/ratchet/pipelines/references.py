"""Python objects by reference: ``"package.module:name"`` or ``"path/to/file.py:name"``.

A pipeline run records its pipeline's reference so that ``resume`` and schedules can find
it again in another process (``pipeline_definition.load_pipeline``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from ratchet.errors import InvalidInput, NotFound

_FILE_MODULE_PREFIX = "ratchet_user_"


def reference_of(fn: Any) -> str | None:
    """``module:qualname`` for an importable function; a file path for a script's
    ``__main__``; ``None`` for functions defined inside other functions."""
    qualname = getattr(fn, "__qualname__", "")
    module = getattr(fn, "__module__", None)
    if not module or "<locals>" in qualname or "<lambda>" in qualname:
        return None
    if module == "__main__":
        path = getattr(sys.modules.get("__main__"), "__file__", None)
        return f"{Path(path).resolve()}:{qualname}" if path else None
    loaded = sys.modules.get(module)
    file = getattr(loaded, "__file__", None)
    # A module we imported from a file path has a private name no other process knows:
    # refer to it by its file, as the user did.
    if file and (module.startswith(_FILE_MODULE_PREFIX) or
                 getattr(loaded, "__spec__", None) is None):
        return f"{Path(file).resolve()}:{qualname}"
    return f"{module}:{qualname}"


def normalized_reference(ref: str) -> str:
    """``ref`` with a file path made absolute (so it resolves from any directory)."""
    target, sep, qualname = ref.rpartition(":") if isinstance(ref, str) else ("", "", "")
    if sep and _is_file_target(target):
        return f"{Path(target).expanduser().resolve()}:{qualname}"
    return ref


def _is_file_target(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def load_object(ref: str) -> Any:
    if not isinstance(ref, str) or ref.count(":") < 1:
        raise InvalidInput(f"{ref!r}: give a pipeline as 'package.module:name' or "
                           "'path/to/file.py:name'")
    target, _, qualname = ref.rpartition(":")
    if not target or not qualname:
        raise InvalidInput(f"{ref!r}: give a pipeline as 'package.module:name' or "
                           "'path/to/file.py:name'")
    module = _import_target(target, ref)
    obj: Any = module
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise NotFound(f"{ref!r}: {target} has no attribute {qualname!r}") from None
    return obj


def _import_target(target: str, ref: str) -> Any:
    if _is_file_target(target):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise NotFound(f"{ref!r}: no such file {str(path)!r}")
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            # Resolving is a few system calls: only for files of the same name (a
            # controller or a backtest loads its pipeline once per training run).
            if file and os.path.basename(file) == path.name \
                    and Path(file).resolve() == path \
                    and getattr(module, "__name__", "") != "__main__":
                return module
        name = f"{_FILE_MODULE_PREFIX}{path.stem}_{abs(hash(str(path))) % 10**8}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise InvalidInput(f"{ref!r}: cannot import {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))  # sibling imports, as `python file.py` has
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise _import_failed(ref, str(path), exc) from exc
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise NotFound(f"{ref!r}: cannot import module {target!r} (is it on the Python "
                           "path? run from the project directory)") from None
        raise _import_failed(ref, target, exc) from exc
    except Exception as exc:
        raise _import_failed(ref, target, exc) from exc


def _import_failed(ref: str, target: str, exc: Exception) -> InvalidInput:
    """The user's module raised while being imported: say where, keep the cause."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = f" (line {exc.lineno})"
    return InvalidInput(f"{ref!r}: importing {target} failed{where}: "
                        f"{type(exc).__name__}: {exc}")
