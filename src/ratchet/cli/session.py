"""One invocation's settings and clients: each command makes one ``Session`` and builds
what it needs from it on first use (settings once, the registry over the same tracking
client)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ratchet.config import Settings
    from ratchet.data.catalog import DataClient
    from ratchet.registry.client import RegistryClient
    from ratchet.tracking.client import TrackingClient


class Session:
    """Settings from ``load_settings()`` and the clients over them, each made at most once."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._tracking: TrackingClient | None = None
        self._registry: RegistryClient | None = None
        self._data: DataClient | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from ratchet.config import load_settings

            self._settings = load_settings()
        return self._settings

    @property
    def tracking(self) -> TrackingClient:
        if self._tracking is None:
            from ratchet.tracking.client import TrackingClient

            self._tracking = TrackingClient(self.settings)
        return self._tracking

    @property
    def registry(self) -> RegistryClient:
        if self._registry is None:
            from ratchet.registry.client import RegistryClient

            self._registry = RegistryClient(self.tracking)
        return self._registry

    @property
    def data(self) -> DataClient:
        if self._data is None:
            from ratchet.data.catalog import DataClient

            self._data = DataClient(self.tracking)
        return self._data


@contextmanager
def cwd_importable() -> Iterator[None]:
    """Pipelines are named ``module:name`` relative to the project, as ``python -m`` would
    find them: the working directory is on the import path while the command runs."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
