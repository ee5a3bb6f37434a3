"""Where the user's code is when ratchet's own console script is ``__main__``.

Run tracking records the code a run ran (git commit, entry point). Launched as
``ratchet pipeline run flow.py:training``, ``__main__`` is ratchet's script in a virtual
environment: the launcher says instead which folder holds the user's code and how it was
started. Kept free of imports so that the CLI can set it at no cost.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_location: tuple[str, str] | None = None


@contextmanager
def launched(directory: str, entry: str) -> Iterator[None]:
    """While open, runs record the user's code as in ``directory`` (a pipeline file's
    folder, the working directory), started as ``entry``."""
    global _location
    before, _location = _location, (os.path.abspath(directory), entry)
    try:
        yield
    finally:
        _location = before


def location() -> tuple[str, str] | None:
    """(folder for git, entry point) set by a launcher, or None (``__main__`` is the code)."""
    return _location


@contextmanager
def cwd_importable() -> Iterator[None]:
    """Modules named relative to the project (``module:name`` pipelines, definitions
    modules) are found as ``python -m`` would find them: the working directory is on the
    import path while the block runs."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
