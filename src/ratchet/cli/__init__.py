"""The ``ratchet`` command line: thin Typer adapters over the Python API.

Entry point: ``ratchet.cli.main:main``. Heavy modules (SQLAlchemy, pandas, sklearn) are
imported inside command functions only, so ``ratchet --help`` stays fast.
"""

from __future__ import annotations
