"""Loaded model versions, each loaded once: the cache that serving, the monitor and the
controller's guards share, so a process that judges, serves and monitors the same version
(a backtest, a controller) reads its files and unpickles it once.

A registered version never changes (its files are content-addressed and verified on
load), so a cached model is never stale. ``capacity`` bounds how many stay loaded (least
recently used go first; None: all of them, e.g. for a backtest's few versions).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ratchet.packaging import LoadedModel
    from ratchet.registry.client import RegistryClient

DEFAULT_CAPACITY = 4


class ModelCache:
    """``cache.load(name, version)``: the loaded model, from the registry the first time.

    ``loads`` counts the loads that went to the registry; ``on_load(name, version)`` is
    called after each (a hook for metrics and tests). Safe to share between threads: two
    threads asking for the same version at once load it once."""

    def __init__(self, registry: RegistryClient, *, trust: bool = False,
                 capacity: int | None = DEFAULT_CAPACITY,
                 on_load: Callable[[str, int], None] | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be positive or None, got {capacity}")
        self.registry = registry
        self.trust = trust
        self.capacity = capacity
        self.on_load = on_load
        self.loads = 0
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, name: str, version: int) -> LoadedModel:
        key = (name, int(version))
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
            model = self.registry.load(f"models:/{name}/{key[1]}", trust=self.trust)
            self.loads += 1
            self._models[key] = model
            while self.capacity is not None and len(self._models) > self.capacity:
                self._models.popitem(last=False)
        if self.on_load is not None:
            self.on_load(*key)
        return model

    def __contains__(self, key: object) -> bool:
        return key in self._models

    def __len__(self) -> int:
        return len(self._models)


__all__ = ["DEFAULT_CAPACITY", "ModelCache"]
