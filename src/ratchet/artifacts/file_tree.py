"""A tree of named, immutable files under an artifact root: a local directory or an fsspec
URL (``s3://bucket/prefix``), for data that is read by name rather than by digest (the
prediction log's Parquet partitions).

The one place besides the blob store that touches files or object storage for artifacts,
so the rules are the same: a file only ever appears complete (local: a hidden temp file
fsynced and renamed, ``ratchet.atomic``; object stores: a single PUT; other fsspec
filesystems: a hidden temp key moved into place); listings skip hidden names, so a reader
never sees a write in flight.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ratchet.atomic import write_atomic

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


class FileTree:
    """Files under ``<root>/<prefix>``. Paths are strings in the tree's own syntax (OS
    paths locally, ``bucket/key`` on fsspec); build them with :meth:`path`."""

    def __init__(self, root: str | os.PathLike[str], prefix: str = "", *,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        from ratchet.artifacts.blob_store import storage_root

        where = storage_root(root, storage_options)
        self._fs: AbstractFileSystem | None = where.fs
        self._object_store = where.object_store
        self.root = os.fspath(root)
        if where.fs is None:
            self.base = os.path.join(where.base, prefix) if prefix else where.base
        else:
            self.base = f"{where.base}/{prefix}" if prefix else where.base

    def __repr__(self) -> str:
        return f"FileTree({self.root!r}, base={self.base!r})"

    @property
    def local(self) -> bool:
        """Whether the tree is a local directory (else an fsspec filesystem)."""
        return self._fs is None

    def path(self, *parts: str) -> str:
        """``parts`` joined under the tree's base."""
        if self._fs is None:
            return os.path.join(self.base, *parts)
        return posixpath.join(self.base, *parts)

    def put(self, directory: str, name: str, data: bytes) -> None:
        """Write ``directory/name`` (a path from :meth:`path`) so that it never exists
        incomplete; an existing file of that name is replaced."""
        if self._fs is None:
            write_atomic(os.path.join(directory, name), data)  # temp, fsync, rename, fsync dir
            return
        final = f"{directory}/{name}"
        if self._object_store:
            self._fs.pipe_file(final, data)  # one PUT: all or nothing
            return
        self._fs.makedirs(directory, exist_ok=True)
        tmp = f"{directory}/.{name}.{os.urandom(8).hex()}.tmp"
        try:
            self._fs.pipe_file(tmp, data)
            self._fs.mv(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self._fs.rm_file(tmp)
            raise

    def list(self, directory: str, *, dirs: bool, suffix: str = "") -> list[str]:
        """Sorted names of the subdirectories (``dirs``) or of the visible files ending in
        ``suffix`` in ``directory``; [] if it does not exist. Hidden names (``.``) are
        files being written and are never listed."""
        if self._fs is None:
            try:
                with os.scandir(directory) as it:
                    entries = [(e.name, e.is_dir()) for e in it]
            except (FileNotFoundError, NotADirectoryError):
                return []
        else:
            # s3fs (one instance per process) keeps listings forever: other writers'
            # files would never appear to a long-lived reader.
            self._fs.invalidate_cache(directory)
            try:
                found = self._fs.ls(directory, detail=True)
            except (FileNotFoundError, NotADirectoryError):
                return []
            entries = [(posixpath.basename(e["name"].rstrip("/")), e["type"] == "directory")
                       for e in found]
        if dirs:
            return sorted(name for name, is_dir in entries if is_dir)
        return sorted(name for name, is_dir in entries
                      if not is_dir and name.endswith(suffix) and not name.startswith("."))

    def url(self, path: str) -> str:
        """``path`` as a reader given this tree's filesystem (:meth:`register_with`) opens
        it: the local path, or the full URL with its protocol."""
        return path if self._fs is None else str(self._fs.unstrip_protocol(path))

    def register_with(self, connection: Any) -> None:
        """Let a DuckDB connection read this tree's URLs (remote trees only; a local tree
        needs nothing)."""
        if self._fs is not None:
            connection.register_filesystem(self._fs)
