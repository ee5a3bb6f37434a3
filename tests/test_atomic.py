"""ratchet.atomic: the one way ratchet publishes a local file (temp, fsync, rename, fsync
of the directory)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ratchet import atomic
from ratchet.atomic import atomic_open, atomic_path, publish, write_atomic


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What was fsynced, in order: "file" or "dir"."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    return seen


def test_write_atomic_syncs_the_data_then_the_name(tmp_path: Path, synced: list[str]) -> None:
    target = tmp_path / "new" / "dir" / "a.json"
    write_atomic(target, "{}")
    assert target.read_text() == "{}" and synced == ["file", "dir"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_atomic(target, b"[]", mode=0o644)
    assert target.read_bytes() == b"[]"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 & ~_umask()
    assert os.listdir(target.parent) == ["a.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["model.json"]


def test_atomic_path_for_writers_that_open_by_name(tmp_path: Path, synced: list[str]) -> None:
    target = tmp_path / "out.csv"
    with atomic_path(target, mode=0o666) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.csv.")
        tmp.write_text("a\n1\n")
        assert not target.exists()  # readers never see it before the end
    assert target.read_text() == "a\n1\n" and synced == ["file", "dir"]
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise ValueError
    assert target.read_text() == "a\n1\n" and os.listdir(tmp_path) == ["out.csv"]


def test_publish_moves_a_file_made_elsewhere(tmp_path: Path, synced: list[str]) -> None:
    staged = tmp_path / "tmp" / "blob.part"
    staged.parent.mkdir()
    staged.write_bytes(b"blob")
    (tmp_path / "blobs").mkdir()
    publish(staged, tmp_path / "blobs" / "ab")
    assert (tmp_path / "blobs" / "ab").read_bytes() == b"blob" and not staged.exists()
    assert synced == ["file", "dir"]
    staged.write_bytes(b"again")
    publish(staged, tmp_path / "blobs" / "cd", synced=True)  # the caller synced it
    assert synced == ["file", "dir", "dir"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
