"""Opening an online store by URI, and the one connection per URI a process shares.

Apart from ``online_store.py`` (the protocol and the rules every store keeps) so that the
implementations, which import the protocol's types, are not imported back by it.
"""

from __future__ import annotations

import threading

from ratchet.errors import InvalidInput
from ratchet.features.online_store import OnlineStore
from ratchet.redaction import redact_url

_shared: dict[str, OnlineStore] = {}
_shared_lock = threading.Lock()


def open_online_store(uri: str) -> OnlineStore:
    """A new connection to the online store at ``uri``: ``sqlite:///path`` (a file made on
    first use) or ``redis://[:password@]host:port/db`` (``rediss://`` for TLS). The caller
    closes it; :func:`shared_online_store` is the per-process one that library calls use."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInput(f"an online store is 'sqlite:///path' or 'redis://host:port/db', "
                           f"got {uri!r}")
    scheme = uri.partition(":")[0].lower()
    if scheme == "sqlite":
        from ratchet.features.sqlite_online_store import SqliteOnlineStore

        return SqliteOnlineStore(uri)
    if scheme in ("redis", "rediss", "unix"):
        from ratchet.features.redis_online_store import RedisOnlineStore

        return RedisOnlineStore(uri)
    raise InvalidInput(f"online store {redact_url(uri)!r}: unknown kind {scheme!r}; use "
                       "'sqlite:///path' or 'redis://host:port/db' (RATCHET_ONLINE_STORE or "
                       "online_store in ratchet.toml)")


def shared_online_store(uri: str) -> OnlineStore:
    """The process's connection to ``uri``, opened on first use and kept: the online
    lookup, materialize and push use it so that a serving process pays the connection
    once. Safe to use from several threads (SQLite opens one connection per thread, Redis
    pools them)."""
    store = _shared.get(uri)
    if store is not None:
        return store
    with _shared_lock:
        store = _shared.get(uri)
        if store is None:
            store = _shared[uri] = open_online_store(uri)
        return store


def close_shared_online_stores() -> None:
    """Close every shared connection (tests; a process about to exit)."""
    with _shared_lock:
        stores = list(_shared.values())
        _shared.clear()
    for store in stores:
        store.close()
