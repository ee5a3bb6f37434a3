from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from ratchet.artifacts import BlobInfo, BlobStore
from ratchet.errors import IntegrityError, InvalidInput, NotFound
from ratchet.hashing import CHUNK_SIZE, hash_bytes

CONTENT = os.urandom(3 * CHUNK_SIZE + 17)  # several chunks, not a multiple of one


def blob_file(root: Path, digest: str) -> Path:
    return root / "blobs" / digest[:2] / digest[2:]


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def flip_byte(path: Path, offset: int = 0) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(str(tmp_path / "artifacts"))


@pytest.fixture
def memory_store() -> Iterator[BlobStore]:
    import fsspec

    name = f"ratchet-test-{uuid.uuid4().hex}"
    yield BlobStore(f"memory://{name}")
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


# -- local roundtrips --------------------------------------------------------------------


def test_put_bytes_roundtrip_and_layout(store: BlobStore) -> None:
    info = store.put_bytes(CONTENT)
    assert info == BlobInfo(hash_bytes(CONTENT), len(CONTENT))
    assert store.exists(info.digest)
    assert store.size(info.digest) == len(CONTENT)
    assert store.read_bytes(info.digest) == CONTENT
    root = Path(store.root)
    assert files_under(root / "blobs") == [blob_file(root, info.digest)]
    assert files_under(root / "tmp") == []


def test_put_file_fetch_and_open_roundtrip(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(CONTENT)
    info = store.put_file(src)
    assert info == BlobInfo(hash_bytes(CONTENT), len(CONTENT))

    dest = store.fetch(info.digest, tmp_path / "out" / "nested" / "model.bin")
    assert dest == tmp_path / "out" / "nested" / "model.bin"
    assert dest.read_bytes() == CONTENT
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.bin"]  # no temp left

    with store.open(info.digest) as f:
        pieces = []
        while piece := f.read(1000):
            pieces.append(piece)
    assert b"".join(pieces) == CONTENT


def test_fetch_replaces_an_existing_file(store: BlobStore, tmp_path: Path) -> None:
    info = store.put_bytes(b"new")
    dest = tmp_path / "f.txt"
    dest.write_bytes(b"old contents")
    store.fetch(str(info.digest), str(dest))
    assert dest.read_bytes() == b"new"


def test_empty_blob(store: BlobStore, tmp_path: Path) -> None:
    info = store.put_bytes(b"")
    assert info.size == 0
    assert store.read_bytes(info.digest) == b""
    assert store.fetch(info.digest, tmp_path / "e").read_bytes() == b""
    with store.open(info.digest) as f:
        assert f.read() == b""


def test_relative_and_file_url_roots_are_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = BlobStore("store")
    assert relative.root == str(tmp_path / "store")
    info = relative.put_bytes(b"x")
    via_url = BlobStore((tmp_path / "store").as_uri())
    assert via_url.root == str(tmp_path / "store")
    assert via_url.read_bytes(info.digest) == b"x"
    assert BlobStore(tmp_path / "store").exists(info.digest)  # a PathLike works too


def test_tmp_dir_is_private_and_blobs_are_not_writable_by_others(store: BlobStore) -> None:
    info = store.put_bytes(b"secret-ish")
    root = Path(store.root)
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o700
    assert stat.S_IMODE(blob_file(root, info.digest).stat().st_mode) & 0o022 == 0


# -- dedup -------------------------------------------------------------------------------


def test_second_put_of_same_content_writes_nothing(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(CONTENT)
    first = store.put_file(src)
    path = blob_file(Path(store.root), first.digest)
    before = (files_under(Path(store.root)), path.stat().st_ino)

    copy = tmp_path / "b.bin"
    copy.write_bytes(CONTENT)
    assert store.put_file(copy) == first
    assert store.put_bytes(CONTENT) == first

    # Same file (inode); only its mtime moves (the re-use mark that `ratchet gc` honours)
    # and the gc lock file exists.
    after = ([p for p in files_under(Path(store.root)) if p.name != "gc.lock"],
             path.stat().st_ino)
    assert after == before


def test_different_content_gets_different_blobs(store: BlobStore) -> None:
    a = store.put_bytes(b"a")
    b = store.put_bytes(b"b")
    assert a.digest != b.digest
    assert len(files_under(Path(store.root) / "blobs")) == 2


# -- verify on read ----------------------------------------------------------------------


@pytest.fixture
def corrupt(store: BlobStore) -> str:
    info = store.put_bytes(CONTENT)
    flip_byte(blob_file(Path(store.root), info.digest), offset=len(CONTENT) // 2)
    return info.digest


def test_read_bytes_detects_corruption(store: BlobStore, corrupt: str) -> None:
    with pytest.raises(IntegrityError, match=f"{corrupt} .* is corrupt"):
        store.read_bytes(corrupt)


def test_fetch_of_corrupt_blob_leaves_nothing_behind(
    store: BlobStore, corrupt: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(IntegrityError):
        store.fetch(corrupt, out / "model.bin")
    assert list(out.iterdir()) == []  # neither dest nor the temp file

    existing = out / "keep.bin"
    existing.write_bytes(b"previous version")
    with pytest.raises(IntegrityError):
        store.fetch(corrupt, existing)
    assert existing.read_bytes() == b"previous version"
    assert list(out.iterdir()) == [existing]


@pytest.mark.parametrize("read_size", [-1, 1, 4096, CHUNK_SIZE])
def test_open_detects_corruption_at_end_of_stream(
    store: BlobStore, corrupt: str, read_size: int
) -> None:
    with store.open(corrupt) as f, pytest.raises(IntegrityError):
        while f.read(read_size):
            pass


def test_truncated_and_extended_blobs_are_detected(store: BlobStore) -> None:
    info = store.put_bytes(CONTENT)
    path = blob_file(Path(store.root), info.digest)
    path.chmod(0o644)
    path.write_bytes(CONTENT[:-1])
    with pytest.raises(IntegrityError):
        store.read_bytes(info.digest)
    path.write_bytes(CONTENT + b"\0")
    with store.open(info.digest) as f, pytest.raises(IntegrityError):
        f.read()


# -- errors ------------------------------------------------------------------------------


def test_unknown_digest_is_not_found(store: BlobStore, tmp_path: Path) -> None:
    digest = hash_bytes(b"never stored")
    assert not store.exists(digest)
    message = f"no artifact blob {digest} in {store.root}"
    with pytest.raises(NotFound, match=message):
        store.read_bytes(digest)
    with pytest.raises(NotFound, match=message):
        store.size(digest)
    with pytest.raises(NotFound, match=message):
        store.fetch(digest, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(NotFound, match=message), store.open(digest):
        pass


@pytest.mark.parametrize(
    "digest", ["", "abc", "A" * 64, "g" * 64, "../" + "a" * 61, "a" * 63, "a" * 65]
)
def test_malformed_digest_is_invalid_input(store: BlobStore, digest: str) -> None:
    for call in (store.exists, store.read_bytes, store.size):
        with pytest.raises(InvalidInput, match="not a content digest"):
            call(digest)


def test_put_file_of_missing_file_or_directory(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        store.put_file(tmp_path / "missing")
    with pytest.raises(InvalidInput, match="directory"):
        store.put_file(tmp_path)


def test_file_changing_during_upload_stores_nothing(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "growing.log"
    src.write_bytes(CONTENT)

    class AppendAfterHashing(BlobStore):
        """Another process appends to the file between the hash pass and the copy pass."""

        passes = 0

        def _read_chunks(self, f: BinaryIO) -> Iterator[bytes]:
            self.passes += 1
            if self.passes == 2:
                with open(src, "ab") as other_writer:
                    other_writer.write(b"one more line\n")
            yield from super()._read_chunks(f)

    racing = AppendAfterHashing(store.root)
    with pytest.raises(IntegrityError, match="changed while it was being stored"):
        racing.put_file(src)
    assert files_under(Path(store.root) / "blobs") == []
    assert files_under(Path(store.root) / "tmp") == []


# -- temp cleanup ------------------------------------------------------------------------


def test_clean_temp_removes_only_stale_files(store: BlobStore) -> None:
    store.put_bytes(b"creates tmp/")
    tmp = Path(store.root) / "tmp"
    stale = tmp / "blob-stale.part"
    fresh = tmp / "blob-fresh.part"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"in flight")
    an_hour_ago = time.time() - 2 * 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))

    assert store.clean_temp() == 1
    assert sorted(tmp.iterdir()) == [fresh]
    assert store.clean_temp(older_than_s=0) == 1
    assert list(tmp.iterdir()) == []
    assert store.clean_temp(older_than_s=0) == 0


def test_clean_temp_without_tmp_dir_and_bad_age(store: BlobStore) -> None:
    assert store.clean_temp(older_than_s=0) == 0
    with pytest.raises(InvalidInput):
        store.clean_temp(older_than_s=-1)


# -- fsspec (memory://) ------------------------------------------------------------------


@pytest.mark.parametrize("object_store", [False, True], ids=["rename", "single-put"])
def test_memory_roundtrip(
    memory_store: BlobStore, tmp_path: Path, object_store: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec

    # Exercise both write strategies; memory:// itself is not an object store.
    monkeypatch.setattr(memory_store._backend, "object_store", object_store)
    fs = fsspec.filesystem("memory")
    base = "/" + memory_store.root.removeprefix("memory://")

    src = tmp_path / "model.bin"
    src.write_bytes(CONTENT)
    from_file = memory_store.put_file(src)
    from_bytes = memory_store.put_bytes(b"small")
    assert from_file == BlobInfo(hash_bytes(CONTENT), len(CONTENT))
    assert fs.isfile(f"{base}/blobs/{from_file.digest[:2]}/{from_file.digest[2:]}")
    assert fs.find(f"{base}/tmp") == []  # temp keys were moved, not left behind

    assert memory_store.exists(from_file.digest)
    assert memory_store.size(from_file.digest) == len(CONTENT)
    assert memory_store.read_bytes(from_file.digest) == CONTENT
    assert memory_store.read_bytes(from_bytes.digest) == b"small"
    assert memory_store.fetch(from_file.digest, tmp_path / "out.bin").read_bytes() == CONTENT
    with memory_store.open(from_file.digest) as f:
        assert f.read() == CONTENT

    # Dedup: the second put does not touch the stored object.
    blobs_before = {p: fs.modified(p) for p in fs.find(f"{base}/blobs")}
    assert memory_store.put_file(src) == from_file
    assert memory_store.put_bytes(b"small") == from_bytes
    assert {p: fs.modified(p) for p in fs.find(f"{base}/blobs")} == blobs_before


def test_memory_verify_on_read_and_not_found(memory_store: BlobStore, tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    base = "/" + memory_store.root.removeprefix("memory://")
    info = memory_store.put_bytes(CONTENT)
    fs.pipe_file(f"{base}/blobs/{info.digest[:2]}/{info.digest[2:]}", b"tampered")
    with pytest.raises(IntegrityError):
        memory_store.read_bytes(info.digest)
    with pytest.raises(IntegrityError):
        memory_store.fetch(info.digest, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with memory_store.open(info.digest) as f, pytest.raises(IntegrityError):
        f.read()

    missing = hash_bytes(b"nope")
    assert not memory_store.exists(missing)
    with pytest.raises(NotFound, match=f"no artifact blob {missing} in memory://"):
        memory_store.read_bytes(missing)
    with pytest.raises(NotFound):
        memory_store.size(missing)


def test_memory_clean_temp(memory_store: BlobStore) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    base = "/" + memory_store.root.removeprefix("memory://")
    assert memory_store.clean_temp(older_than_s=0) == 0
    fs.pipe_file(f"{base}/tmp/leftover.part", b"partial")
    assert memory_store.clean_temp() == 0  # fresh: might be a live writer
    assert memory_store.clean_temp(older_than_s=0) == 1
    assert fs.find(f"{base}/tmp") == []


# -- import cost -------------------------------------------------------------------------


def test_importing_artifacts_stays_light() -> None:
    code = (
        "import sys, ratchet\n"
        "before = set(sys.modules)\n"
        "import ratchet.artifacts\n"
        "new = set(sys.modules) - before\n"
        "heavy = sorted(m for m in new if m.split('.')[0] in {'fsspec', 'sqlalchemy'})\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
