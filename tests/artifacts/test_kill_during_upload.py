"""SIGKILL a writer half way through ``put_file``: readers must never see the partial blob.

The child blocks (instead of sleeping for a guessed time) right after the first chunk has
gone into its temp file and says so on stdout, so the kill always lands mid-upload.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ratchet.artifacts import BlobStore
from ratchet.hashing import hash_file

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

BIG = 200 * 1024 * 1024
READY_TIMEOUT_S = 120

CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from ratchet.artifacts import BlobStore

    root, src = sys.argv[1], sys.argv[2]
    tmp = Path(root) / "tmp"

    class BlockedMidUpload(BlobStore):
        def _read_chunks(self, f):
            for i, chunk in enumerate(super()._read_chunks(f)):
                # The hash pass runs before tmp/ exists; in the copy pass, the first
                # chunk is already in the temp file when the second is asked for.
                if i == 1 and tmp.is_dir() and any(tmp.iterdir()):
                    print("started", flush=True)
                    threading.Event().wait()  # until SIGKILL
                yield chunk

    BlockedMidUpload(root).put_file(src)
    print("finished", flush=True)  # never reached unless the hook failed
    """
)


def test_sigkill_during_put_file_leaves_no_visible_blob(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:  # sparse but for a few marked bytes
        f.write(b"head")
        f.seek(BIG // 2)
        f.write(b"middle")
        f.truncate(BIG)
    digest = hash_file(str(src))

    env = dict(os.environ)
    src_dir = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src_dir, env.get("PYTHONPATH")]))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], READY_TIMEOUT_S)
        line = child.stdout.readline() if ready else b""
        if line.strip() != b"started":
            child.kill()
            _, err = child.communicate(timeout=30)
            pytest.fail(f"writer never reached the upload: {line!r}\n{err.decode()}")
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()

    # Nothing under blobs/: the final name never appeared.
    blobs = root / "blobs"
    assert not blobs.exists() or [p for p in blobs.rglob("*") if p.is_file()] == []
    # The partial write is a temp file under tmp/, and only there.
    leftovers = list((root / "tmp").iterdir())
    assert len(leftovers) == 1
    assert leftovers[0].stat().st_size < BIG
    assert {p for p in root.rglob("*") if p.is_file()} == set(leftovers)

    # A new store opens fine, does not see the blob, and works normally.
    store = BlobStore(str(root))
    assert not store.exists(digest)
    small = store.put_bytes(b"after the crash")
    assert store.read_bytes(small.digest) == b"after the crash"

    # Retrying the upload succeeds and reads back verified.
    info = store.put_file(src)
    assert info.digest == digest
    assert info.size == BIG
    with store.open(digest) as f:
        assert f.read(4) == b"head"
        while f.read(1 << 22):  # reading to the end verifies the digest
            pass

    # The stale temp file is left alone by default (it could be a live writer) ...
    assert store.clean_temp() == 0
    # ... and swept when asked.
    assert store.clean_temp(older_than_s=0) == 1
    assert list((root / "tmp").iterdir()) == []
    assert store.exists(digest)
