"""Content hashes: hex BLAKE2b-256 digests, computed in streaming chunks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import BinaryIO

CHUNK_SIZE = 1 << 20
DIGEST_HEX_LENGTH = 64


def hasher() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=32)


def hash_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def hash_stream(stream: BinaryIO) -> str:
    h = hasher()
    while chunk := stream.read(CHUNK_SIZE):
        h.update(chunk)
    return h.hexdigest()


def hash_file(path: str) -> str:
    with open(path, "rb") as f:
        return hash_stream(f)


def hash_tree(entries: Iterable[tuple[str, str]]) -> str:
    """One digest for a set of (relative path, content digest) pairs, order-independent."""
    h = hasher()
    for path, digest in sorted(entries):
        h.update(path.encode("utf-8") + b"\0" + digest.encode("ascii") + b"\n")
    return h.hexdigest()


def is_digest(value: str) -> bool:
    return len(value) == DIGEST_HEX_LENGTH and all(c in "0123456789abcdef" for c in value)
