"""Importing the user's definitions: the one loader the CLI, the model server, batch scoring
and pipelines share.

Definitions live in the user's own Python file or module. ratchet never loads code from the
metadata store, so whatever runs an on-demand view imports the module that declares it. A
file is imported under its stem (``defs.py`` is module ``defs``, its folder on the import
path, as ``python -c "import defs"`` there would): an on-demand view's registered
``module:qualname`` is then the same in every process, which is what lets the server check
that it runs the code that was registered. A stem that would shadow another module (the
standard library, an installed package, one already imported) is refused.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ratchet.errors import InvalidInput, NotFound
from ratchet.features.definitions import Definition, Entity, FeatureView, OnDemandFeatureView
from ratchet.user_code import cwd_importable


@dataclass(frozen=True)
class LoadedDefinitions:
    """What a definitions file or module declares, and where relative paths start."""

    where: str                      # the file or module as given
    module: ModuleType
    definitions: tuple[Definition, ...]
    base_dir: Path


def is_file_target(target: str) -> bool:
    """Whether ``target`` names a file (else a dotted module name)."""
    return target.endswith(".py") or "/" in target or "\\" in target or Path(target).is_file()


def absolute_targets(targets: Sequence[str]) -> tuple[str, ...]:
    """The targets with file paths made absolute (worker processes import them too)."""
    return tuple(str(Path(t.strip()).expanduser().resolve())
                 if isinstance(t, str) and is_file_target(t.strip()) else t
                 for t in targets)


def import_definitions(target: str) -> tuple[ModuleType, Path]:
    """Import ``target`` (a .py file or a dotted module): the module and its folder."""
    if not isinstance(target, str) or not target.strip():
        raise InvalidInput(f"a definitions module is 'package.module' or 'path/to/file.py', "
                           f"got {target!r}")
    target = target.strip()
    if is_file_target(target):
        path = Path(target).expanduser()
        if not path.is_file():
            what = "is a folder, not a Python file" if path.is_dir() else "does not exist"
            raise NotFound(f"{target}: {what} (give a .py file or a module name declaring "
                           "the feature definitions)")
        return _import_file(path.resolve(), target), path.resolve().parent
    module = _import_module(target)
    file = getattr(module, "__file__", None)
    if file is None:  # a namespace package: a folder of files, no module of its own
        raise InvalidInput(f"{target} is a folder, not a Python file or module (give "
                           "the .py file declaring the feature definitions)")
    return module, Path(file).resolve().parent


def import_definition_modules(targets: Sequence[str]) -> None:
    """Import each of ``targets``: the on-demand code a server or a batch job may run."""
    for target in targets:
        import_definitions(target)


def load_definitions(target: str, *, require: bool = True) -> LoadedDefinitions:
    """Import ``target`` and collect the Entity, FeatureView and OnDemandFeatureView objects
    it declares at module level, in declaration order."""
    module, base_dir = import_definitions(target)
    found: dict[int, Definition] = {}
    for value in vars(module).values():
        if isinstance(value, Entity | FeatureView | OnDemandFeatureView):
            found.setdefault(id(value), value)
    if require and not found:
        raise InvalidInput(f"{target} declares no Entity, FeatureView or OnDemandFeatureView "
                           "at module level (assign them to module-level names)")
    return LoadedDefinitions(target, module, tuple(found.values()), base_dir)


def _import_file(path: Path, given: str) -> ModuleType:
    if path.suffix != ".py":
        raise InvalidInput(f"{given}: not a Python file (.py)")
    name = path.stem
    if not name.isidentifier():
        raise InvalidInput(f"{given}: {name!r} is not a Python module name; rename the file "
                           "(letters, digits and underscores)")
    loaded = sys.modules.get(name)
    if loaded is not None:
        file = getattr(loaded, "__file__", None)
        if file and Path(file).resolve() == path:
            return loaded
        raise InvalidInput(f"{given}: it would be imported as module {name!r}, which is "
                           f"already {'imported from ' + file if file else 'a built-in module'}"
                           "; rename the file")
    try:
        other = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        other = None
    if name in sys.stdlib_module_names or (
            other is not None and other.origin and Path(other.origin).resolve() != path):
        where = other.origin if other is not None and other.origin else "the standard library"
        raise InvalidInput(f"{given}: it would be imported as module {name!r}, which is "
                           f"{where}; rename the file")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # sibling imports, and `import <stem>` finds this file
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{given}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _import_error(given, path, exc) from None
    return module


def _import_module(name: str) -> ModuleType:
    if not all(part.isidentifier() for part in name.split(".")):
        raise NotFound(f"{name}: no such file, and not a module name (give a .py file or a "
                       "module such as my_project.features)")
    with cwd_importable():
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                raise NotFound(f"{name}: no such file or module (run from the project "
                               "directory, or give the .py file's path)") from None
            raise _import_error(name, None, exc) from None
        except Exception as exc:
            raise _import_error(name, None, exc) from None


def _import_error(given: str, path: Path | None, exc: Exception) -> InvalidInput:
    """The user's file failed to import: one line naming file:line and the error."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = f"{exc.filename or given}:{exc.lineno}"
        return InvalidInput(f"{where}: SyntaxError: {exc.msg}")
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if path is not None and Path(f.filename).resolve() == path]
    user = [f for f in frames if "/ratchet/" not in f.filename.replace("\\", "/")
            and "importlib" not in f.filename]
    chosen = mine or user or frames
    where = f"{chosen[-1].filename}:{chosen[-1].lineno}" if chosen else given
    message = str(exc).splitlines()[0] if str(exc) else ""
    return InvalidInput(f"{where}: importing {given} failed: {type(exc).__name__}"
                        + (f": {message}" if message else ""))
