"""Point the fluent API (``ratchet.log_metric`` …) of this process at a study's store.

The fluent API looks its client up by working directory and ``RATCHET_*`` variables. An
objective calls it inside a trial, possibly in a worker process whose directory and
environment say nothing about the driver's store, or in the driver after
``tune(settings=...)`` chose another store. While a binding is held, the fluent client of
this process is the study's client (or an existing one on the same store, so that the
run activated on it is the one user code sees).

The fluent module has no public override yet, so this sets its client table directly; a
ContextVar override in ``ratchet.tracking.fluent`` would make this per-trial instead of
per-process.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ratchet.errors import Conflict
from ratchet.redaction import redact_url
from ratchet.tracking import fluent
from ratchet.tracking.client import TrackingClient


@dataclass
class _Binding:
    client: TrackingClient
    previous: TrackingClient | None
    holders: int


_bindings: dict[tuple[str | None, ...], _Binding] = {}
_lock = threading.Lock()


def same_store(a: TrackingClient, b: TrackingClient) -> bool:
    return (a.settings.db_url, a.settings.artifacts_uri) == \
        (b.settings.db_url, b.settings.artifacts_uri)


def _key() -> tuple[str | None, ...]:
    # Must match fluent.client()'s lookup key.
    return (os.getcwd(), *(os.environ.get(k) for k in fluent._ENV_KEYS))


@contextlib.contextmanager
def fluent_bound_to(client: TrackingClient) -> Iterator[TrackingClient]:
    """Yield the client that ``ratchet.*`` fluent calls in this process use until exit;
    it writes to ``client``'s store."""
    key = _key()
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
            current = fluent._clients.get(key)
            bound = current if current is not None and same_store(current, client) else client
            binding = _bindings[key] = _Binding(bound, current, 1)
            fluent._clients[key] = bound
    try:
        yield binding.client
    finally:
        with _lock:
            binding.holders -= 1
            if binding.holders == 0:
                del _bindings[key]
                if binding.previous is None:
                    fluent._clients.pop(key, None)
                else:
                    fluent._clients[key] = binding.previous
