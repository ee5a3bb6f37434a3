"""Where the user's code is when ratchet's own console script is ``__main__``.

Run tracking records the code a run ran (git commit, entry point). Launched as
``ratchet pipeline run flow.py:training``, ``__main__`` is ratchet's script in a virtual
environment: the launcher says instead which folder holds the user's code and how it was
started. Kept free of imports so that the CLI can set it at no cost.
"""

from __future__ import annotations

import os
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
