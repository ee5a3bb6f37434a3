"""Staging files of killed writers are swept on a store's first write; live ones never."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ratchet.artifacts import BlobStore
from ratchet.artifacts.blob_store import SWEEP_AGE_S

TWO_HOURS_AGO = time.time() - 2 * 3600


def _leftover(root: Path, name: str, *, old: bool) -> Path:
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    path = root / "tmp" / name
    path.write_bytes(b"half a blob")
    if old:
        os.utime(path, (TWO_HOURS_AGO, TWO_HOURS_AGO))
    return path


def test_the_first_write_sweeps_stale_staging_files_and_keeps_fresh_ones(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    stale = _leftover(root, "stage-dead.parquet.part", old=True)
    fresh = _leftover(root, "blob-in-flight.part", old=False)
    assert SWEEP_AGE_S == 3600
    BlobStore(root).put_bytes(b"new content")
    assert not stale.exists()
    assert fresh.exists()
    # Once per process and root: later writes do not list tmp/ again.
    later = _leftover(root, "stage-later.part", old=True)
    BlobStore(root).put_bytes(b"more content")
    assert later.exists()


def test_staging_a_file_sweeps_too(tmp_path: Path) -> None:
    root = tmp_path / "store"
    stale = _leftover(root, "stage-dead.part", old=True)
    with BlobStore(root).staging_file(".parquet") as staged:
        staged.write_bytes(b"x")
        assert not stale.exists()
    assert not staged.exists()


def test_reading_does_not_sweep(tmp_path: Path) -> None:
    root = tmp_path / "store"
    stale = _leftover(root, "stage-dead.part", old=True)
    store = BlobStore(root)
    assert not store.exists("0" * 64)
    assert stale.exists()


CHILD = textwrap.dedent("""
    import os, sys, time
    from ratchet.artifacts import BlobStore

    with BlobStore(sys.argv[1]).staging_file(".parquet") as staged:
        staged.write_bytes(b"a large snapshot being written")
        old = time.time() - 2 * 3600
        os.utime(staged, (old, old))  # a writer stalled for hours is still alive
        print(staged, flush=True)
        time.sleep(600)
""")


def test_a_live_writers_file_is_kept_however_old_and_swept_once_it_is_killed(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    BlobStore(root).put_bytes(b"first write: this process has swept already")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None
        staged = Path(child.stdout.readline().strip())
        assert staged.exists() and staged.parent == root / "tmp"
        assert BlobStore(root).clean_temp(0) == 0
        assert BlobStore(root).clean_temp() == 0
        assert staged.exists()
    finally:
        child.kill()
        child.wait()
    assert staged.exists()  # killed: nothing removed it
    assert BlobStore(root).clean_temp() == 1
    assert not staged.exists()
