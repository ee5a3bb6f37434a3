"""The public surface: documented names only, and a cheap ``import ratchet``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import ratchet

API_DOC = Path(__file__).parents[1] / "docs" / "api.md"


def documented_names() -> list[str]:
    block = API_DOC.read_text().split("<!-- public-api:start -->")[1].split(
        "<!-- public-api:end -->")[0]
    return sorted(re.findall(r"^- `ratchet\.([A-Za-z_]+)`", block, flags=re.M))


def test_all_matches_docs() -> None:
    assert sorted(ratchet.__all__) == documented_names()


def test_every_public_name_resolves() -> None:
    for name in ratchet.__all__:
        assert getattr(ratchet, name) is not None, name


def test_import_ratchet_stays_light() -> None:
    code = ("import sys, ratchet; heavy = [m for m in ('sqlalchemy', 'pandas', 'sklearn', "
            "'numpy', 'alembic', 'fsspec') if m in sys.modules]; print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""


def test_errors_are_one_hierarchy() -> None:
    from ratchet import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.RatchetError)


def test_submodules_do_not_shadow_public_functions() -> None:
    # Importing a submodule sets it as an attribute of its package: a module named like a
    # public function (data/client.py vs data.client()) silently replaces the function.
    import importlib
    import pkgutil

    import ratchet.ct
    import ratchet.data
    import ratchet.models

    for package in (ratchet.ct, ratchet.data, ratchet.models):
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{info.name}")
        for name in package.__all__:
            value = getattr(package, name)
            assert callable(value) and not isinstance(value, type(ratchet)), \
                f"{package.__name__}.{name} is shadowed by a submodule"
