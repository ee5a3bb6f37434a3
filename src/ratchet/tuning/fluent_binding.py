"""Point the fluent API (``ratchet.log_metric`` …) of this process at a study's store.

The fluent API looks its client up by working directory and ``RATCHET_*`` variables. An
objective calls it inside a trial, possibly in a worker process whose directory and
environment say nothing about the driver's store, or in the driver after
``tune(workspace=...)`` chose another store. While a binding is held, the fluent client of
this process is the study's client (or an existing one on the same store, so that the
run activated on it is the one user code sees).

This replaces the ambient workspace of the environment for the whole process (trials run
on worker threads, which a ``ratchet.workspace.use`` context would not reach).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ratchet import workspace
from ratchet.config import Settings
from ratchet.errors import Conflict
from ratchet.redaction import redact_url
from ratchet.tracking.client import TrackingClient
from ratchet.workspace import Workspace


@dataclass
class _Binding:
    client: TrackingClient
    previous: Workspace | None
    holders: int


_bindings: dict[tuple[str | None, ...], _Binding] = {}
_lock = threading.Lock()


def same_store(a: TrackingClient, b: TrackingClient) -> bool:
    return _same_settings(a.settings, b.settings)


def _same_settings(a: Settings, b: Settings) -> bool:
    return (a.db_url, a.artifacts_uri) == (b.db_url, b.artifacts_uri)


@contextlib.contextmanager
def fluent_bound_to(client: TrackingClient) -> Iterator[TrackingClient]:
    """Yield the client that ``ratchet.*`` fluent calls in this process use until exit;
    it writes to ``client``'s store."""
    key = workspace.environment_key()
    with _lock:
        binding = _bindings.get(key)
        if binding is not None:
            if not same_store(binding.client, client):
                raise Conflict(
                    "another study in this process is logging to "
                    f"{redact_url(binding.client.settings.db_url)}; two studies on different stores "
                    "cannot run at once in one process")
            binding.holders += 1
        else:
            existing = workspace.environment_default(key)
            bound = client
            if existing is not None and _same_settings(existing.settings, client.settings):
                bound = existing.client(TrackingClient)  # its active runs are the user's
            previous = workspace.replace_environment_default(key, bound.workspace)
            binding = _bindings[key] = _Binding(bound, previous, 1)
    try:
        yield binding.client
    finally:
        with _lock:
            binding.holders -= 1
            if binding.holders == 0:
                del _bindings[key]
                workspace.replace_environment_default(key, binding.previous)
