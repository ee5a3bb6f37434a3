"""Step outputs in and out of storage: materialize a value into the artifact store (or
inline in the metadata store when it is one small file) and load it back, verified."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import IntegrityError
from ratchet.hashing import hash_bytes, hash_tree
from ratchet.pipelines.materializers import (
    FileMaterializer,
    Materializer,
    materializer_for,
    materializer_named,
)
from ratchet.store.records import StoredOutput

if TYPE_CHECKING:
    from ratchet.artifacts import BlobStore

INLINE_MAX_BYTES = 64 * 1024


def store_value(value: Any, name: str, blobs: BlobStore, where: str,
                materializer: Materializer | None = None) -> StoredOutput:
    m = materializer or materializer_for(value, where)
    if isinstance(m, FileMaterializer):
        data = m.dumps(value)
        digest = hash_bytes(data)
        inline = data if len(data) <= INLINE_MAX_BYTES else None
        if inline is None:
            blobs.put_bytes(data)
        return StoredOutput(name=name, digest=digest, materializer=m.name,
                            files=((m.filename, digest, len(data)),), size=len(data),
                            inline=inline)
    with tempfile.TemporaryDirectory(prefix="ratchet-output-") as tmp:
        directory = Path(tmp)
        m.save(value, directory)
        files = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = blobs.put_file(path)
            files.append((path.relative_to(directory).as_posix(), info.digest, info.size))
    return StoredOutput(name=name, digest=hash_tree((f[0], f[1]) for f in files),
                        materializer=m.name, files=tuple(files),
                        size=sum(f[2] for f in files))


def load_value(output: StoredOutput, blobs: BlobStore) -> Any:
    m = materializer_named(output.materializer)
    if isinstance(m, FileMaterializer) and len(output.files) == 1:
        if output.inline is None:
            return m.loads(blobs.read_bytes(output.files[0][1]))  # verified by the store
        if hash_bytes(output.inline) != output.digest:
            raise IntegrityError(f"output {output.name!r}: the stored bytes do not match their "
                                 f"hash {output.digest}; the metadata store was modified")
        return m.loads(output.inline)
    with tempfile.TemporaryDirectory(prefix="ratchet-input-") as tmp:
        directory = Path(tmp)
        for relative, digest, _size in output.files:
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            blobs.fetch(digest, target)
        return m.load(directory)


def output_available(output: StoredOutput, blobs: BlobStore) -> bool:
    """Whether a cached output can still be loaded (its blobs were not deleted)."""
    if output.inline is not None:
        return True
    return all(blobs.exists(digest) for _path, digest, _size in output.files)
