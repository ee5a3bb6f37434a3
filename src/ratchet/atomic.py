"""Whole-file writes that a reader never sees half done, and that survive a crash.

The one home of the rule (every local file ratchet publishes goes through it): write a
temporary file, fsync its data, rename it over the target, fsync the directory so that the
rename itself is on disk. A crash at any point leaves the old file or the new one, never a
truncated or empty one.

- :func:`write_atomic`: bytes or text already in memory.
- :func:`atomic_open`: a binary file object to stream into (committed when the block ends
  without an exception, discarded otherwise).
- :func:`atomic_path`: a temporary path, for writers that open files by name (Arrow's
  Parquet and CSV writers).
- :func:`publish`: move a complete temporary file made elsewhere (e.g. the blob store's
  ``tmp/`` directory, on the same filesystem) into place.
- :func:`fsync_dir`: make a rename or a new name in a directory durable.

Temporary files are hidden (``.<name>.<random>.tmp``) and live next to the target, so the
rename never crosses filesystems and directory listings that skip dot files ignore them.
New files are created with ``mode`` (default ``0o600``, private; the umask still applies);
pass ``0o666`` for a user's own output, which the umask then decides as for any file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

DEFAULT_MODE = 0o600


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so that renames and new names in it survive a power loss.

    Best effort: where directories cannot be opened or synced (Windows, some network
    filesystems) this does nothing.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(tmp: str | os.PathLike[str], target: str | os.PathLike[str], *,
            synced: bool = False) -> Path:
    """Move the complete file ``tmp`` to ``target`` durably: fsync its data (unless the
    caller already did, ``synced=True``), rename, fsync the target's directory.

    ``tmp`` must be on the target's filesystem (``os.replace`` is then one rename); the
    target's directory must exist.
    """
    final = Path(target)
    if not synced:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final


def _new_temp(target: Path, mode: int) -> tuple[int, Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = target.with_name(f".{target.name}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         mode)
        except FileExistsError:
            continue
        return fd, tmp


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], *, mode: int = DEFAULT_MODE
                ) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content into; ``path`` changes only when the
    block ends without an exception (then durably, as :func:`publish`). Missing parent
    directories are made."""
    target = Path(path)
    fd, tmp = _new_temp(target, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, target, synced=True)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, mode: int = DEFAULT_MODE) -> Iterator[Path]:
    """A temporary path next to ``path`` (an empty file with ``mode``) for a writer that
    opens files by name; when the block ends without an exception the file is published
    to ``path`` (fsync, rename, fsync of the directory), otherwise it is removed. The
    writer must have closed the file by the end of the block."""
    target = Path(path)
    fd, tmp = _new_temp(target, mode)
    os.close(fd)
    try:
        yield tmp
        publish(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *,
                 mode: int = DEFAULT_MODE) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically and durably: a crash leaves
    the old file or the new one. Missing parent directories are made."""
    target = Path(path)
    with atomic_open(target, mode=mode) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return target
