"""The workspace: the one root every client and store is built from.

A ``Workspace`` holds the settings, the metadata stores (``.stores``, one database) and the
blob store (``.blobs``). Every client takes it as its only argument, every public function
takes ``workspace=`` (keyword), and without one they use the ambient default: the workspace
the working directory and the ``RATCHET_*`` variables select, or the one made current with
``use(workspace)``.

    ws = Workspace.at("/tmp/ratchet-home")       # or Workspace(load_settings(...))
    ratchet.models.list_versions("churn", workspace=ws)
    with ratchet.workspace.use(ws):
        ratchet.start_run(...)                   # the fluent API follows the current one

``.stores`` is the seam the team server plugs into (see ``ratchet.store.stores``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ratchet.config import Settings, ensure_home, load_settings
from ratchet.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from ratchet.artifacts import BlobStore
    from ratchet.remote.session import RemoteSession
    from ratchet.store.stores import SqlStores

C = TypeVar("C")

_ENV_KEYS = ("RATCHET_HOME", "RATCHET_DB", "RATCHET_ARTIFACTS", "RATCHET_TRACKING_URI",
             "RATCHET_TRACKING_TOKEN", "RATCHET_ONLINE_STORE")


class Workspace:
    """Settings, the stores over one database and the blob store; clients made once each."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else load_settings()
        self._clients: dict[type, Any] = {}
        self._lock = threading.RLock()

    @classmethod
    def at(cls, home: str | os.PathLike[str]) -> Workspace:
        """The workspace whose database and artifacts live in the folder ``home``."""
        path = Path(home).expanduser().resolve()
        return cls(Settings(home=path, db_url=f"sqlite:///{path / 'ratchet.db'}",
                            artifacts_uri=str(path / "artifacts")))

    @cached_property
    def stores(self) -> SqlStores:
        """Every metadata store, over this workspace's database (created on first use), or
        over HTTP to a ``ratchet server`` when ``RATCHET_TRACKING_URI`` is set."""
        if self.settings.tracking_uri:
            from ratchet.remote.http_stores import HttpStores

            return cast("SqlStores", HttpStores(self.session))
        ensure_home(self.settings)
        from ratchet.store.database import open_database
        from ratchet.store.stores import SqlStores

        return SqlStores(open_database(self.settings.db_url))

    @property
    def remote(self) -> bool:
        """Whether this workspace is a ``ratchet server``'s (remote mode)."""
        return bool(self.settings.tracking_uri)

    @cached_property
    def session(self) -> RemoteSession:
        """The connection pool to the server (remote mode only); the token comes from
        ``RATCHET_TRACKING_TOKEN``."""
        from ratchet.remote.session import TOKEN_ENV, RemoteSession

        if not self.settings.tracking_uri:
            raise ConfigError("this workspace is local: no RATCHET_TRACKING_URI is set")
        return RemoteSession(self.settings.tracking_uri, os.environ.get(TOKEN_ENV) or None)

    @cached_property
    def blobs(self) -> BlobStore:
        """The content-addressed store of artifacts, models and dataset files."""
        if self.settings.tracking_uri:  # the server's blobs, over HTTP
            from ratchet.artifacts.http_backend import http_blob_store

            session = self.session
            ensure_home(self.settings)
            return http_blob_store(session.client, session.base_url,
                                   self.settings.home / "staging",
                                   raise_for_error=session.raise_for_error)
        from ratchet.artifacts import BlobStore

        return BlobStore(self.settings.artifacts_uri)

    def client(self, kind: type[C]) -> C:
        """The one ``kind`` client of this workspace (``TrackingClient``, ``RegistryClient``
        …), made on first use with this workspace; clients share state such as the stack of
        active runs through it."""
        found = self._clients.get(kind)
        if found is None:
            with self._lock:
                found = self._clients.get(kind)
                if found is None:
                    make = cast("Callable[[Workspace], C]", kind)  # Client(workspace)
                    found = self._clients[kind] = make(self)
        return cast(C, found)

    def adopt(self, client: object) -> None:
        """Make ``client`` this workspace's client of its class unless one exists: a client
        built directly (``TrackingClient(ws)``) is then the one the others share."""
        with self._lock:
            self._clients.setdefault(type(client), client)

    def __repr__(self) -> str:
        return f"Workspace({self.settings!r})"  # Settings' repr hides passwords


_current: ContextVar[Workspace | None] = ContextVar("ratchet_workspace", default=None)
_by_environment: dict[tuple[str | None, ...], Workspace] = {}
_environment_lock = threading.Lock()


def environment_key() -> tuple[str | None, ...]:
    """What selects the ambient workspace when none is set with ``use``: the working
    directory and the ``RATCHET_*`` variables."""
    return (os.getcwd(), *(os.environ.get(k) for k in _ENV_KEYS))


def current() -> Workspace:
    """The ambient workspace: the one set with ``use``, else the one the working directory
    and the ``RATCHET_*`` variables select (made once per distinct selection)."""
    chosen = _current.get()
    if chosen is not None:
        return chosen
    key = environment_key()
    found = _by_environment.get(key)
    if found is None:
        with _environment_lock:
            found = _by_environment.get(key)
            if found is None:
                found = _by_environment[key] = Workspace(load_settings())
    return found


def resolve(workspace: Workspace | None) -> Workspace:
    """``workspace`` itself, or the ambient one when it is None."""
    if workspace is None:
        return current()
    if not isinstance(workspace, Workspace):
        hint = (f" (Workspace.at({str(workspace)!r}) for a folder)"
                if isinstance(workspace, str | os.PathLike) else "")
        raise InvalidInput(f"workspace= takes a ratchet.Workspace or None, got "
                           f"{type(workspace).__name__}{hint}")
    return workspace


def environment_default(key: tuple[str | None, ...]) -> Workspace | None:
    """The ambient workspace made for ``key`` so far, if any (opens nothing)."""
    return _by_environment.get(key)


def replace_environment_default(key: tuple[str | None, ...],
                                workspace: Workspace | None) -> Workspace | None:
    """Make ``workspace`` what ``current()`` answers for ``key`` in every thread of this
    process (None: forget it); returns the one it replaces. For code that must redirect
    the fluent API process-wide, such as a study whose trials run on worker threads."""
    with _environment_lock:
        previous = _by_environment.pop(key, None)
        if workspace is not None:
            _by_environment[key] = workspace
    return previous


@contextmanager
def use(workspace: Workspace) -> Iterator[Workspace]:
    """Make ``workspace`` the ambient one for the code inside (this thread or task)."""
    token = _current.set(workspace)
    try:
        yield workspace
    finally:
        _current.reset(token)
