"""Content-addressed artifact storage and artifact path rules.

Blobs are stored by digest (deduplicated, written atomically, verified on read); the
name of an artifact within a run or model version lives in the metadata store. In remote
mode the blobs are the team server's, reached over HTTP (``http_blob_store``).
"""

from __future__ import annotations

from ratchet.artifacts.blob_store import BlobInfo, BlobStore
from ratchet.artifacts.http_backend import http_blob_store
from ratchet.artifacts.paths import list_directory, normalize_artifact_path, safe_join

__all__ = [
    "BlobInfo",
    "BlobStore",
    "http_blob_store",
    "list_directory",
    "normalize_artifact_path",
    "safe_join",
]
