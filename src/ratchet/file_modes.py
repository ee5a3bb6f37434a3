"""The permissions ratchet creates its store with: private to the user unless configured.

The home directory, the SQLite database and the artifact blobs hold data, models and
metadata that other local users must not read, so new ones are created ``0700``
(directories) and ``0600`` (files), whatever the umask. ``RATCHET_PRIVATE_FILES=0`` lets
the umask decide instead (``0777`` / ``0666`` minus the umask), e.g. for a store shared
by a group with ``umask 002``. Existing directories and files keep their modes: ratchet
never loosens or tightens what a user set.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ratchet.errors import ConfigError

PRIVATE_FILES_ENV = "RATCHET_PRIVATE_FILES"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_YES = frozenset({"", "1", "true", "yes", "on"})
_NO = frozenset({"0", "false", "no", "off"})


def private_files() -> bool:
    """True (the default) unless ``RATCHET_PRIVATE_FILES`` is 0 / false / no / off."""
    value = os.environ.get(PRIVATE_FILES_ENV, "").strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ConfigError(f"{PRIVATE_FILES_ENV}={os.environ[PRIVATE_FILES_ENV]!r}: use 1 (files "
                      "private to you, the default) or 0 (your umask decides)")


def dir_mode() -> int:
    """The mode to create a store directory with (the umask still applies on top)."""
    return PRIVATE_DIR_MODE if private_files() else 0o777


def file_mode() -> int:
    """The mode to create a store file with (the umask still applies on top)."""
    return PRIVATE_FILE_MODE if private_files() else 0o666


def make_dirs(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p`` where every directory it creates gets ``dir_mode()`` (``os.makedirs``
    applies its mode to the last one only); existing ones are left as they are."""
    target = Path(path)
    missing = []
    here = target
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    mode = dir_mode()
    for directory in reversed(missing):
        directory.mkdir(mode=mode, exist_ok=True)  # exist_ok: a concurrent creator won
    if not target.is_dir():
        raise FileExistsError(errno.EEXIST, "a file is in the way", str(target))
    return target


def create_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty with ``file_mode()`` if it does not exist; True if created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode())
    except FileExistsError:
        return False
    os.close(fd)
    return True


__all__ = ["PRIVATE_FILES_ENV", "create_file", "dir_mode", "file_mode", "make_dirs",
           "private_files"]
