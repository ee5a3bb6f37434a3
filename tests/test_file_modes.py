"""A new store is private to its user: home 0700, database and blobs 0600, whatever the
umask; RATCHET_PRIVATE_FILES=0 hands the choice back to the umask."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ratchet.errors import ConfigError
from ratchet.file_modes import private_files

# Logs a dataset (a staged blob adopted), stores a file (put_file) and reports modes.
CHILD = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import pandas as pd
    import ratchet
    from ratchet.artifacts import BlobStore

    home = Path(os.environ["RATCHET_HOME"])
    v = ratchet.data.log(pd.DataFrame({"a": [1, 2, 3]}), name="d")
    cached = v.path  # home/cache/datasets/<digest>.parquet, a hard link to the blob
    blobs = home / "artifacts" / "blobs"
    src = home.parent / "model.bin"
    src.write_bytes(b"weights")
    stored = BlobStore(home / "artifacts").put_file(src).digest
    other = BlobStore(home.parent / "elsewhere" / "store").put_bytes(b"x").digest

    def mode(p):
        return oct(os.stat(p).st_mode & 0o777)

    print(json.dumps({
        "home": mode(home),
        "db": mode(home / "ratchet.db"),
        "wal": mode(home / "ratchet.db-wal") if (home / "ratchet.db-wal").exists() else None,
        "artifacts": mode(home / "artifacts"),
        "blobs": mode(blobs),
        "shard": mode(blobs / v.digest[:2]),
        "dataset_blob": mode(blobs / v.digest[:2] / v.digest[2:]),
        "stored_blob": mode(blobs / stored[:2] / stored[2:]),
        "elsewhere": mode(home.parent / "elsewhere"),
        "cache": mode(cached.parent),
        "cached": mode(cached),
        "elsewhere_blob": mode(home.parent / "elsewhere" / "store" / "blobs" / other[:2]
                               / other[2:]),
    }))
""")


def _modes(project: Path, **env: str) -> dict[str, str | None]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=project, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(project),
             "RATCHET_HOME": str(project / ".ratchet"), **env},
        umask=0o022, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_new_store_is_private_whatever_the_umask(tmp_path: Path) -> None:
    modes = _modes(tmp_path)
    assert modes.pop("wal") in (None, "0o600")
    dirs = {"home", "artifacts", "blobs", "shard", "elsewhere", "cache"}
    assert modes == {k: ("0o700" if k in dirs else "0o600") for k in modes}


def test_the_umask_decides_when_private_files_are_off(tmp_path: Path) -> None:
    modes = _modes(tmp_path, RATCHET_PRIVATE_FILES="0")
    assert modes.pop("wal") in (None, "0o644")
    dirs = {"home", "artifacts", "blobs", "shard", "elsewhere", "cache"}
    assert modes == {k: ("0o755" if k in dirs else "0o644") for k in modes}


def test_an_existing_home_keeps_its_mode(tmp_path: Path) -> None:
    home = tmp_path / ".ratchet"
    home.mkdir()
    home.chmod(0o750)
    modes = _modes(tmp_path)
    assert stat.S_IMODE(home.stat().st_mode) == 0o750
    assert modes["home"] == "0o750" and modes["db"] == "0o600"


def test_an_unknown_setting_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_PRIVATE_FILES", "maybe")
    with pytest.raises(ConfigError, match="RATCHET_PRIVATE_FILES"):
        private_files()
    monkeypatch.setenv("RATCHET_PRIVATE_FILES", "off")
    assert private_files() is False
    monkeypatch.delenv("RATCHET_PRIVATE_FILES")
    assert private_files() is True
