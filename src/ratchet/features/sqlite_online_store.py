"""The default online store: one SQLite file (``sqlite:///path``), separate from the
metadata database.

One table, one row per (view, encoded entity key) holding all of that view's feature values
as one JSON text, so reading an entity's features is one primary-key lookup (a WITHOUT ROWID
table: the row lives in the key's B-tree leaf). WAL mode: readers never wait for a writer.
Every thread uses its own connection (SQLite's rule); the ``sqlite3`` module caches the
prepared statements per connection. A write is one transaction: the batch lands whole or
not at all, and its rows are applied in order under the newest-wins rule (an upsert whose
``WHERE`` keeps the newer row).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from ratchet.errors import InvalidInput, StoreUnavailable
from ratchet.features.online_store import EncodedRow, Lookup, StoredFeatures
from ratchet.redaction import redact_url

_PREFIX = "sqlite:///"
_LOWEST = -(1 << 63)  # created time null sorts below every real time
_CHUNK = 500  # keys per IN (...) list

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_features (
    view TEXT NOT NULL,
    key TEXT NOT NULL,
    event_us INTEGER NOT NULL,
    created_us INTEGER,
    view_version INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (view, key)
) WITHOUT ROWID
"""

_UPSERT = f"""
INSERT INTO online_features (view, key, event_us, created_us, view_version, payload)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (view, key) DO UPDATE SET
    event_us = excluded.event_us, created_us = excluded.created_us,
    view_version = excluded.view_version, payload = excluded.payload
WHERE excluded.event_us > online_features.event_us
   OR (excluded.event_us = online_features.event_us
       AND coalesce(excluded.created_us, {_LOWEST})
           >= coalesce(online_features.created_us, {_LOWEST}))
"""

_READ_ONE = ("SELECT event_us, created_us, view_version, payload FROM online_features "
             "WHERE view = ? AND key = ?")


def _read_many(n: int) -> str:
    return ("SELECT key, event_us, created_us, view_version, payload FROM online_features "
            f"WHERE view = ? AND key IN ({','.join('?' * n)})")


def _first(row: EncodedRow) -> str:
    return row[0]


def sqlite_path(uri: str) -> Path:
    """The file of a ``sqlite:///path`` URI (``sqlite:////abs/path`` or a relative path)."""
    if not uri.startswith(_PREFIX) or uri[len(_PREFIX):] in ("", ":memory:"):
        raise InvalidInput(f"a SQLite online store is 'sqlite:///path/to/online.sqlite', got "
                           f"{uri!r}")
    return Path(uri[len(_PREFIX):].partition("?")[0]).expanduser()


class SqliteOnlineStore:
    """The online store in one SQLite file (see the module's description)."""

    def __init__(self, uri: str) -> None:
        self.path = sqlite_path(uri)
        self.uri = redact_url(uri)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._generation = 0
        self._conn()  # fail now, with a clear message, if the file cannot be a store

    # ------------------------------------------------------------------ connections
    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if (conn is not None and local.pid == os.getpid()
                and local.generation == self._generation):
            return conn
        conn = self._connect()
        local.conn, local.pid, local.generation = conn, os.getpid(), self._generation
        return conn

    def _connect(self) -> sqlite3.Connection:
        where = f"online store {self.uri!r}"
        if self.path.exists() and self.path.is_dir():
            raise InvalidInput(f"{where}: {self.path} is a directory; give a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"{where}: cannot create {self.path.parent}: {exc}"
                                   ) from None
        try:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False, cached_statements=256)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"{where}: {self.path} cannot be opened as the online "
                                   f"store's SQLite file ({exc}); point RATCHET_ONLINE_STORE "
                                   "(or online_store in ratchet.toml) at another file"
                                   ) from None
        with self._lock:
            self._connections.append(conn)
        return conn

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"online store {self.uri!r}: {doing} failed: {exc}"
                                   ) from None
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"online store {self.uri!r}: {doing} failed, the file is "
                                   f"not a usable online store: {exc}") from None

    # ------------------------------------------------------------------ the protocol
    def write(self, view: str, view_version: int, rows: Sequence[EncodedRow]) -> int:
        if not rows:
            return 0
        # In key order (a stable sort: rows of one key keep their order), so the B-tree is
        # walked once instead of at random.
        params = [(view, key, event_us, created_us, view_version, payload)
                  for key, event_us, created_us, payload in sorted(rows, key=_first)]
        conn = self._conn()
        with self._errors(f"writing {len(params)} rows of {view!r}"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_UPSERT, params)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return len(params)

    def read(self, lookups: Sequence[Lookup]) -> list[StoredFeatures | None]:
        conn = self._conn()
        with self._errors("reading features"):
            if len(lookups) == 1:  # the serving path: one primary-key lookup
                view, key = lookups[0]
                row = conn.execute(_READ_ONE, (view, key)).fetchone()
                return [None if row is None else StoredFeatures(*row)]
            by_view: dict[str, list[str]] = {}
            for view, key in lookups:
                by_view.setdefault(view, []).append(key)
            found: dict[tuple[str, str], StoredFeatures] = {}
            for view, keys in by_view.items():
                unique = list(dict.fromkeys(keys))
                if len(unique) == 1:
                    row = conn.execute(_READ_ONE, (view, unique[0])).fetchone()
                    if row is not None:
                        found[view, unique[0]] = StoredFeatures(*row)
                    continue
                for i in range(0, len(unique), _CHUNK):
                    chunk = unique[i:i + _CHUNK]
                    for key, *rest in conn.execute(_read_many(len(chunk)), (view, *chunk)):
                        found[view, key] = StoredFeatures(*rest)
        return [found.get(lookup) for lookup in lookups]

    def delete_view(self, view: str) -> int:
        conn = self._conn()
        with self._errors(f"deleting {view!r}"):
            return conn.execute("DELETE FROM online_features WHERE view = ?", (view,)).rowcount

    def count(self, view: str) -> int:
        conn = self._conn()
        with self._errors(f"counting {view!r}"):
            row = conn.execute("SELECT count(*) FROM online_features WHERE view = ?",
                               (view,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
            self._generation += 1
        for conn in connections:
            with suppress(sqlite3.Error):
                conn.close()

    def __repr__(self) -> str:
        return f"SqliteOnlineStore({self.uri!r})"
