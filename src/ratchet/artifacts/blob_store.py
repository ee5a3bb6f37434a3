"""Content-addressed blob storage: a local directory by default, any fsspec URL for scale.

Layout under the root::

    blobs/<digest[:2]>/<digest[2:]>   one immutable file per content digest
    tmp/                              in-flight writes; never read, swept by clean_temp()

New directories are created 0700 and blobs 0600 (``ratchet.file_modes``;
``RATCHET_PRIVATE_FILES=0`` lets the umask decide). The first write through a store in a
process sweeps ``tmp/`` of files older than ``SWEEP_AGE_S`` (1 h) left by killed writers;
on a local root a live writer holds a lock on its file, so however old, it is kept.

A blob only ever appears under ``blobs/`` complete: local writes go to ``tmp/`` on the
same filesystem, are fsynced and then renamed into place; fsspec writes go to a temporary
key and are moved, except ``put_bytes`` on object stores, where a single put is already
atomic. Streamed fsspec writes never target the final key because a buffered remote file
commits whatever it holds when it is closed, even on an exception, which would publish a
truncated blob under a valid digest and poison deduplication. Every read is verified
against the digest.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast
from urllib.parse import unquote, urlsplit

from ratchet.atomic import atomic_open, publish
from ratchet.errors import ConfigError, IntegrityError, InvalidInput, NotFound
from ratchet.file_modes import PRIVATE_FILE_MODE, file_mode, make_dirs, private_files
from ratchet.hashing import CHUNK_SIZE, hash_bytes, hasher, is_digest

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from fsspec import AbstractFileSystem

# Where a single put is atomic and rename is a copy: put_bytes writes the final key.
_OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss", "r2"})
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_TMP_DIR_MODE = 0o700
# Staging files older than this are a killed writer's: swept on a store's first write.
SWEEP_AGE_S = 3600.0
_swept: set[str] = set()  # roots swept by this process
_swept_lock = threading.Lock()
GC_LOCK_NAME = "gc.lock"  # local roots: writers' claims vs gc's removals
# Remote reads and multipart parts: what a transfer holds in memory (s3fs defaults to
# 50 MiB blocks, ~3x that at peak). S3 allows 10,000 parts: larger blobs get larger parts.
_REMOTE_BLOCK = 8 << 20
_MAX_PARTS = 10_000


@dataclass(frozen=True)
class StorageRoot:
    """Where an artifact root lives: a local directory (``fs`` None, ``base`` absolute), or
    an fsspec filesystem and the base path in it."""

    fs: AbstractFileSystem | None
    base: str
    object_store: bool  # a single put is atomic and rename is a copy (S3, GCS, Azure...)


def storage_root(root: str | os.PathLike[str],
                 storage_options: Mapping[str, Any] | None = None) -> StorageRoot:
    """Resolve a directory or fsspec URL (shared by the blob store and the prediction log)."""
    text = os.fspath(root)
    if not text:
        raise InvalidInput(
            "artifact root is empty: give a directory or a URL like s3://bucket/prefix"
        )
    local = _local_path(text)
    if local is not None:
        return StorageRoot(None, os.path.abspath(os.path.expanduser(local)), False)
    from fsspec.core import url_to_fs  # lazy: fsspec costs ~100 ms to import

    try:
        fs, base = url_to_fs(text, **dict(storage_options or {}))
    except ImportError as exc:  # fsspec: "Install s3fs to access S3"
        from ratchet.redaction import redact_url

        hint = (" (pip install 'ratchet-mlops[s3]')"
                if text.lower().startswith(("s3://", "s3a://")) else "")
        raise ConfigError(f"cannot open the artifact store {redact_url(text)}: {exc}{hint}") \
            from None
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    return StorageRoot(fs, base.rstrip("/"), bool(protocols & _OBJECT_STORE_PROTOCOLS))


@dataclass(frozen=True)
class StoredBlob:
    """A blob as listed for garbage collection."""

    digest: str
    size: int
    mtime: float  # epoch seconds: when it was written or last re-used by a writer


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob: its hex BLAKE2b-256 digest and its size in bytes."""

    digest: str
    size: int


class BlobStore:
    """Blobs addressed by content digest under a local directory or an fsspec URL."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        where = storage_root(root, storage_options)
        self._backend: _Backend
        self._staging_dir: str | None = None  # staging files of non-local roots: system temp
        self._sweeps = True
        if where.fs is None:
            self.root = where.base
            self._backend = _LocalBackend(Path(self.root))
        else:
            self.root = os.fspath(root).rstrip("/")
            self._backend = _FsspecBackend(where.fs, where.base, object_store=where.object_store)

    @classmethod
    def over(cls, backend: _Backend, *, root: str,
             staging_dir: str | os.PathLike[str] | None = None) -> BlobStore:
        """A store over a backend built elsewhere, such as the team server's HTTP client
        (``ratchet.artifacts.http_backend``). ``root`` names it in messages; staging files
        go to ``staging_dir`` (default: the system's temporary directory). Its temporary
        files are the backend's own business, so this process never sweeps them."""
        store = cls.__new__(cls)
        store.root = root
        store._backend = backend
        store._staging_dir = None if staging_dir is None else os.fspath(staging_dir)
        store._sweeps = False
        return store

    def __repr__(self) -> str:
        return f"BlobStore({self.root!r})"

    # -- writing --------------------------------------------------------------------

    def put_file(self, path: str | os.PathLike[str]) -> BlobInfo:
        """Store a local file under its digest; a blob already present is not rewritten."""
        src = Path(path)
        try:
            f = open(src, "rb")  # noqa: SIM115 -- closed below; one handle for both passes
        except FileNotFoundError:
            raise NotFound(f"cannot store {str(src)!r}: no such file") from None
        except IsADirectoryError:
            raise InvalidInput(f"cannot store {str(src)!r}: it is a directory") from None
        with f:
            # Hash first so that a blob we already have costs a read, not a write.
            h = hasher()
            size = 0
            for chunk in self._read_chunks(f):
                h.update(chunk)
                size += len(chunk)
            digest = h.hexdigest()
            if self._backend.claim(digest):
                return BlobInfo(digest, size)
            self._sweep_once()
            f.seek(0)

            def changed(actual: str) -> IntegrityError:
                return IntegrityError(
                    f"{str(src)!r} changed while it was being stored (hash {digest} then "
                    f"{actual}); nothing was stored: retry once nothing is writing to it"
                )

            self._backend.write(digest, _verified(self._read_chunks(f), digest, changed), size)
        return BlobInfo(digest, size)

    def put_bytes(self, data: bytes) -> BlobInfo:
        """Store ``data`` under its digest; a blob already present is not rewritten."""
        digest = hash_bytes(data)
        if not self._backend.claim(digest):
            self._sweep_once()
            self._backend.write_bytes(digest, bytes(data))
        return BlobInfo(digest, len(data))

    @contextlib.contextmanager
    def staging_file(self, suffix: str = "") -> Iterator[Path]:
        """A private temporary path to write a future blob to, removed unless adopted.

        For a local root it lies inside the store (same filesystem), so ``adopt`` is a
        rename instead of a second copy of a possibly large file.
        """
        self._sweep_once()
        if isinstance(self._backend, _LocalBackend):
            # Held (shared lock) until the context ends: the sweeper keeps it however old.
            fd, path = self._backend.new_temp("stage-", suffix + ".part")
        else:
            if self._staging_dir is not None:
                make_dirs(Path(self._staging_dir))
            fd, name = tempfile.mkstemp(prefix="stage-", suffix=suffix + ".part",
                                        dir=self._staging_dir)
            path = Path(name)
        try:
            yield path
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def adopt(self, path: str | os.PathLike[str], digest: str) -> BlobInfo:
        """Store a staged file whose digest the caller computed while writing it.

        The file is moved (local root) or uploaded (other roots); reads still verify the
        digest, so a wrong one can never be served as good content.
        """
        _check_digest(digest)
        src = Path(path)
        size = src.stat().st_size
        if self._backend.claim(digest):
            src.unlink()
            return BlobInfo(digest, size)
        if isinstance(self._backend, _LocalBackend):
            self._backend.adopt(src, digest)
        else:
            with open(src, "rb") as f:
                self._backend.write(digest, self._read_chunks(f), size)
            src.unlink()
        return BlobInfo(digest, size)

    def claim(self, digest: str) -> bool:
        """Whether the blob is stored; if so it is marked re-used, so a ``ratchet gc``
        running now keeps it. What a writer asks before referencing content it found
        already stored instead of uploading it (the team server's upload route)."""
        return self._backend.claim(_check_digest(digest))

    def local_path(self, digest: str) -> Path | None:
        """The blob's file for zero-copy readers, when the root is a local directory."""
        if not isinstance(self._backend, _LocalBackend):
            return None
        path = self._backend._path(_check_digest(digest))
        if not path.is_file():
            raise self._not_found(digest)
        return path

    def clean_temp(self, older_than_s: float = 3600) -> int:
        """Delete temporary files left by killed writers; return how many were deleted.

        The default age leaves in-flight writes of other processes alone. On a local root
        a live writer's file is kept whatever its age (it holds a lock), so ``0`` deletes
        exactly the files of dead writers; elsewhere ``0`` deletes every temporary file, so
        only use it there when nothing else is writing.
        """
        if older_than_s < 0:
            raise InvalidInput(f"older_than_s must be >= 0, got {older_than_s}")
        return self._backend.clean_temp(older_than_s)

    # -- garbage collection ---------------------------------------------------------

    def now(self) -> float:
        """The current time by the storage's clock (epoch seconds), the clock blob mtimes
        come from: a local root's is the kernel's file timestamp, which can trail
        ``time.time()`` by a few milliseconds."""
        return self._backend.now()

    def list_blobs(self) -> Iterator[StoredBlob]:
        """Every stored blob with its size and modification time (for ``ratchet gc``)."""
        return self._backend.list_blobs()

    def remove_unused(self, digest: str, unused_since: float) -> bool:
        """Remove a blob unless it was written or re-used at or after ``unused_since``
        (epoch seconds); returns whether it was removed.

        A writer that finds its content already stored marks the blob (its mtime) before
        relying on it; on a local root that mark and this check-and-remove exclude each
        other (a lock file), so a blob a writer is about to reference is never removed.
        """
        return self._backend.remove_unused(_check_digest(digest), unused_since)

    def _sweep_once(self) -> None:
        """``clean_temp(SWEEP_AGE_S)`` on this process's first write to this root, so the
        staging files of killed writers do not pile up; never fails the write. A remote
        root is listed on a background thread (a network round trip)."""
        if not self._sweeps:
            return
        with _swept_lock:
            if self.root in _swept:
                return
            _swept.add(self.root)

        def sweep() -> None:
            with contextlib.suppress(Exception):
                self._backend.clean_temp(SWEEP_AGE_S)

        if isinstance(self._backend, _LocalBackend):
            sweep()  # one scandir of tmp/
        else:
            threading.Thread(target=sweep, name="ratchet-sweep", daemon=True).start()

    # -- reading --------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        return self._backend.exists(_check_digest(digest))

    def size(self, digest: str) -> int:
        try:
            return self._backend.size(_check_digest(digest))
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def read_bytes(self, digest: str) -> bytes:
        """The whole blob in memory, verified against its digest."""
        with self._open_raw(digest) as f:
            data = f.read()
        actual = hash_bytes(data)
        if actual != digest:
            raise self._corrupt(digest, actual)
        return data

    def fetch(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Copy the blob to the local file ``dest``, verified, replacing it atomically.

        ``dest`` only changes once the whole blob has been copied and verified, so a
        corrupt blob or a crash leaves it as it was. Missing parent directories are made.
        """
        target = Path(dest)
        # 0o666 lets the umask decide, as for any file the user creates.
        with self._open_raw(digest) as src, atomic_open(target, mode=0o666) as out:
            for chunk in _verified(
                self._read_chunks(src), digest, lambda a: self._corrupt(digest, a)
            ):
                out.write(chunk)
        return target

    @contextlib.contextmanager
    def open(self, digest: str) -> Iterator[BinaryIO]:
        """A streaming reader; reading to the end raises ``IntegrityError`` on a mismatch.

        Bytes returned before the end are unverified: a consumer that must not act on
        corrupt data should read everything before using it, or use ``fetch``.
        """
        with (
            self._open_raw(digest) as raw,
            io.BufferedReader(
                _VerifyingReader(raw, digest, lambda a: self._corrupt(digest, a)), CHUNK_SIZE
            ) as reader,
        ):
            yield cast(BinaryIO, reader)

    # -- internals ------------------------------------------------------------------

    def _read_chunks(self, f: BinaryIO) -> Iterator[bytes]:
        """Every read of blob or source content goes through here (tests slow it down)."""
        while chunk := f.read(CHUNK_SIZE):
            yield chunk

    def _open_raw(self, digest: str) -> BinaryIO:
        try:
            return self._backend.open_read(_check_digest(digest))
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def _not_found(self, digest: str) -> NotFound:
        return NotFound(f"no artifact blob {digest} in {self.root}")

    def _corrupt(self, digest: str, actual: str) -> IntegrityError:
        return IntegrityError(
            f"artifact blob {digest} in {self.root} is corrupt: its content hashes to "
            f"{actual}; delete the blob and upload the artifact again, or restore it from a backup"
        )


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not is_digest(digest):
        raise InvalidInput(
            f"not a content digest: {digest!r}; expected 64 lowercase hex characters (BLAKE2b-256)"
        )
    return digest


def _local_path(root: str) -> str | None:
    """The local directory ``root`` names, or None if it is a URL for fsspec."""
    if "::" in root:  # fsspec chained URL, e.g. simplecache::s3://...
        return None
    if not _URL.match(root):
        return root
    parts = urlsplit(root)
    if parts.scheme.lower() != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput(f"artifact root {root!r} names a remote host; use a local path")
    path = unquote(parts.path)
    if re.match(r"^/[A-Za-z]:", path):  # file:///C:/x on Windows
        path = path[1:]
    if not path:
        raise InvalidInput(f"artifact root {root!r} has no path")
    return path


def _verified(
    chunks: Iterable[bytes], expected: str, mismatch: Callable[[str], Exception]
) -> Iterator[bytes]:
    """Pass ``chunks`` through, raising ``mismatch(actual)`` at the end if the hash differs.

    Writers consume this inside their try-block, so a mismatch aborts before the rename.
    """
    h = hasher()
    for chunk in chunks:
        h.update(chunk)
        yield chunk
    actual = h.hexdigest()
    if actual != expected:
        raise mismatch(actual)


class _VerifyingReader(io.RawIOBase):
    """Hashes what is read; at end of file, a digest mismatch raises (every time)."""

    def __init__(self, f: BinaryIO, expected: str, mismatch: Callable[[str], Exception]) -> None:
        super().__init__()
        self._f = f
        self._expected = expected
        self._mismatch = mismatch
        self._hash = hasher()
        self._actual: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        data = self._f.read(len(view))
        n = len(data)
        if n:
            view[:n] = data
            self._hash.update(data)
            return n
        if self._actual is None:
            self._actual = self._hash.hexdigest()
        if self._actual != self._expected:
            raise self._mismatch(self._actual)
        return 0


class _Backend(Protocol):
    def exists(self, digest: str) -> bool: ...
    def claim(self, digest: str) -> bool: ...
    def now(self) -> float: ...
    def list_blobs(self) -> Iterator[StoredBlob]: ...
    def remove_unused(self, digest: str, unused_since: float) -> bool: ...
    def size(self, digest: str) -> int: ...
    def open_read(self, digest: str) -> BinaryIO: ...
    def write(self, digest: str, chunks: Iterable[bytes], size: int | None = None) -> None: ...
    def write_bytes(self, digest: str, data: bytes) -> None: ...
    def clean_temp(self, older_than_s: float) -> int: ...


class _LocalBackend:
    """Plain os calls: faster than fsspec, and the rename is the atomicity we rely on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"

    def _path(self, digest: str) -> Path:
        return self.root / "blobs" / digest[:2] / digest[2:]

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()

    @contextlib.contextmanager
    def _gc_lock(self, kind: int) -> Iterator[None]:
        """Writers' claims (shared) and gc's removals (exclusive) exclude each other."""
        make_dirs(self.root)
        fd = os.open(self.root / GC_LOCK_NAME, os.O_RDWR | os.O_CREAT, file_mode())
        try:
            with contextlib.suppress(OSError):  # no flock (some network filesystems)
                fcntl.flock(fd, kind)
            yield
        finally:
            os.close(fd)

    def now(self) -> float:
        make_dirs(self.root)
        path = self.root / GC_LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode())
        try:
            os.utime(fd)
            return os.fstat(fd).st_mtime
        finally:
            os.close(fd)

    def claim(self, digest: str) -> bool:
        """Whether the blob exists; if so its mtime becomes now, so gc keeps it."""
        path = self._path(digest)
        if not path.is_file():
            return False
        with self._gc_lock(fcntl.LOCK_SH):
            try:
                os.utime(path)
            except FileNotFoundError:  # gc removed it just now: write it again
                return False
            except PermissionError:  # another user's blob: it exists, unmarked
                return path.is_file()
        return True

    def list_blobs(self) -> Iterator[StoredBlob]:
        try:
            shards = sorted(os.scandir(self.root / "blobs"), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for shard in shards:
            if not shard.is_dir(follow_symlinks=False) or len(shard.name) != 2:
                continue
            for entry in os.scandir(shard.path):
                digest = shard.name + entry.name
                if not is_digest(digest):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield StoredBlob(digest, st.st_size, st.st_mtime)

    def remove_unused(self, digest: str, unused_since: float) -> bool:
        path = self._path(digest)
        with self._gc_lock(fcntl.LOCK_EX):
            try:
                if path.stat().st_mtime >= unused_since:
                    return False
                path.unlink()
            except FileNotFoundError:
                return False
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # an empty shard
        return True

    def size(self, digest: str) -> int:
        return self._path(digest).stat().st_size

    def open_read(self, digest: str) -> BinaryIO:
        # Unbuffered: the caller reads in CHUNK_SIZE pieces already.
        return cast(BinaryIO, open(self._path(digest), "rb", buffering=0))

    def new_temp(self, prefix: str, suffix: str) -> tuple[int, Path]:
        """A new file in ``tmp/`` (O_EXCL, ``file_mode()``), open and under a shared lock
        that tells ``clean_temp`` its writer is alive (the kernel drops it if killed)."""
        make_dirs(self.root)
        self.tmp_dir.mkdir(mode=_TMP_DIR_MODE, exist_ok=True)
        while True:
            path = self.tmp_dir / f"{prefix}{os.urandom(8).hex()}{suffix}"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, file_mode())
            except FileExistsError:
                continue
            # Where locks are unsupported (some network filesystems) only the age protects.
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_SH)
            return fd, path

    def write(self, digest: str, chunks: Iterable[bytes], size: int | None = None) -> None:
        fd, tmp = self.new_temp("blob-", ".part")
        final = self._path(digest)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())  # data on disk before the name: no empty blob after a crash
            make_dirs(final.parent)
            # Rename and fsync the directory; concurrent writers of one digest write equal bytes.
            publish(tmp, final, synced=True)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def write_bytes(self, digest: str, data: bytes) -> None:
        self.write(digest, [data])

    def adopt(self, staged: Path, digest: str) -> None:
        if private_files():  # whoever made the staged file, the blob is private
            os.chmod(staged, PRIVATE_FILE_MODE)
        final = self._path(digest)
        make_dirs(final.parent)
        publish(staged, final)  # fsync the data, rename, fsync the directory

    def clean_temp(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        removed = 0
        try:
            entries = list(os.scandir(self.tmp_dir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if older_than_s > 0 and entry.stat(follow_symlinks=False).st_mtime > cutoff:
                    continue
                if _locked_by_a_writer(entry.path):
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:  # another sweeper or its writer got there first
                continue
            except OSError:  # not ours to open or delete (permissions): leave it
                continue
            removed += 1
        return removed


def _locked_by_a_writer(path: str) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock
    return False


class _FsspecBackend:
    def __init__(self, fs: AbstractFileSystem, base: str, *, object_store: bool) -> None:
        self.fs = fs
        self.base = base
        self.object_store = object_store

    def _key(self, digest: str) -> str:
        return f"{self.base}/blobs/{digest[:2]}/{digest[2:]}"

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self._key(digest)))

    def now(self) -> float:
        return time.time()

    def claim(self, digest: str) -> bool:
        # Object stores cannot touch a key: only gc's grace period protects a re-used blob.
        return self.exists(digest)

    def list_blobs(self) -> Iterator[StoredBlob]:
        root = f"{self.base}/blobs"
        self.fs.invalidate_cache(root)  # s3fs keeps listings forever: others wrote since
        try:
            entries = self.fs.find(root, detail=True)
        except FileNotFoundError:
            return
        for name, info in sorted(entries.items()):
            parts = name.rstrip("/").split("/")
            digest = "".join(parts[-2:])
            if info.get("type") != "file" or not is_digest(digest):
                continue
            listed = info.get("LastModified")  # S3 listings carry it: no request per key
            try:
                mtime = (listed.timestamp() if hasattr(listed, "timestamp")
                         else self.fs.modified(name).timestamp())
            except (NotImplementedError, FileNotFoundError):
                continue  # age unknown: never a candidate
            yield StoredBlob(digest, int(info.get("size") or 0), mtime)

    def remove_unused(self, digest: str, unused_since: float) -> bool:
        key = self._key(digest)
        try:
            if self.fs.modified(key).timestamp() >= unused_since:
                return False
            self.fs.rm_file(key)
        except (NotImplementedError, FileNotFoundError):
            return False
        return True

    def size(self, digest: str) -> int:
        return int(self.fs.info(self._key(digest))["size"])

    def open_read(self, digest: str) -> BinaryIO:
        return cast(BinaryIO, self.fs.open(self._key(digest), "rb", block_size=_REMOTE_BLOCK))

    def write(self, digest: str, chunks: Iterable[bytes], size: int | None = None) -> None:
        tmp = f"{self.base}/tmp/{os.urandom(16).hex()}.part"
        final = self._key(digest)
        try:
            if not self.object_store:  # object stores have no directories to make
                self.fs.makedirs(f"{self.base}/tmp", exist_ok=True)
            block = max(_REMOTE_BLOCK, -(-(size or 0) // _MAX_PARTS))
            with self.fs.open(tmp, "wb", block_size=block) as out:
                for chunk in chunks:
                    out.write(chunk)
            if not self.object_store:
                self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            # Atomic rename on local/sftp/hdfs; on object stores a server-side copy,
            # whose result also appears whole.
            self.fs.mv(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise

    def write_bytes(self, digest: str, data: bytes) -> None:
        if self.object_store:
            self.fs.pipe_file(self._key(digest), data)  # one PUT: all or nothing
        else:
            self.write(digest, [data])

    def clean_temp(self, older_than_s: float) -> int:
        tmp = f"{self.base}/tmp"
        cutoff = time.time() - older_than_s
        aborted = self._abort_uploads(tmp, cutoff if older_than_s > 0 else None)
        self.fs.invalidate_cache(tmp)  # s3fs keeps listings forever: others wrote since
        try:
            entries = self.fs.ls(tmp, detail=True)
        except FileNotFoundError:
            return aborted
        stale = []
        for entry in entries:
            if entry.get("type") != "file":
                continue
            name = entry["name"]
            if older_than_s > 0:
                listed = entry.get("LastModified")  # S3 lists it: no request per key
                try:
                    modified = (listed if isinstance(listed, datetime)
                                else self.fs.modified(name)).timestamp()
                except (NotImplementedError, FileNotFoundError):
                    continue  # age unknown: keep it rather than break a live writer
                if modified > cutoff:
                    continue
            stale.append(name)
        if self.object_store and stale:
            self.fs.rm(stale)  # one request per 1000 keys (S3 DeleteObjects)
            return aborted + len(stale)
        removed = aborted
        for name in stale:
            try:
                self.fs.rm_file(name)
            except FileNotFoundError:
                continue
            removed += 1
        return removed

    def _abort_uploads(self, tmp: str, cutoff: float | None) -> int:
        """S3: a writer killed mid-upload leaves no key to list, only an incomplete
        multipart upload, stored (and billed) until aborted. Abort those under ``tmp/``
        begun before ``cutoff`` (None: all); other filesystems have none."""
        call = getattr(self.fs, "call_s3", None)  # s3fs
        if call is None:
            return 0
        bucket, _, prefix = tmp.partition("/")
        aborted = 0
        markers: dict[str, str] = {}
        while True:
            try:
                page = call("list_multipart_uploads", Bucket=bucket, Prefix=f"{prefix}/",
                            **markers)
            except PermissionError:  # a policy without s3:ListBucketMultipartUploads
                return aborted
            for upload in page.get("Uploads", []):
                if cutoff is not None and upload["Initiated"].timestamp() > cutoff:
                    continue
                with contextlib.suppress(FileNotFoundError):  # completed or aborted since
                    call("abort_multipart_upload", Bucket=bucket, Key=upload["Key"],
                         UploadId=upload["UploadId"])
                    aborted += 1
            if not page.get("IsTruncated"):
                return aborted
            markers = {"KeyMarker": page["NextKeyMarker"],
                       "UploadIdMarker": page["NextUploadIdMarker"]}
