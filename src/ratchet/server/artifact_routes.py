"""Artifact routes of the team server: blobs by digest, run and model files by path.

Blobs (``/api/v1/blobs/{digest}``) are what the remote ``BlobStore`` talks to: HEAD for
existence and size, GET streamed (one ``Range`` optional, so a cut download resumes),
PUT streamed into a staging file while its hash is computed, published only when the
content matches the digest in the URL, and ``POST …/claim`` (exists? then keep it from
``ratchet gc``) before a writer references content it did not upload. Nothing is ever
held whole in memory: a 2 GB artifact costs the server one chunk buffer per transfer.

Run and model files (``/api/v1/runs/{id}/artifacts/{path}``,
``/api/v1/models/{name}/versions/{n}/files/{path}``) are names in the metadata store:
the path passes ``normalize_artifact_path`` (every decoding of it), is looked up in the
run's artifact index, and the blob of the digest found is served. A path never touches
a filesystem, so there is nothing to traverse to. Downloads are attachments
(``Content-Disposition``) that a browser must not sniff (``nosniff``, sandbox CSP).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ratchet.artifacts.blob_store import _check_digest
from ratchet.artifacts.paths import normalize_artifact_path
from ratchet.errors import BadRequest, InvalidInput, NotFound
from ratchet.hashing import CHUNK_SIZE, hasher
from ratchet.server.permissions import declare, principal

if TYPE_CHECKING:
    from ratchet.artifacts import BlobStore
    from ratchet.store.records import ArtifactEntry
    from ratchet.workspace import Workspace

OCTET_STREAM = "application/octet-stream"
_BINARY = {"content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}}}
_ERROR: dict[str, Any] = {
    "description": "a ratchet error (its class name and message)",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["type", "message"],
                                 "properties": {"type": {"type": "string"},
                                                "message": {"type": "string"}}}}}}},
}
_STORED = {"content": {"application/json": {"schema": {
    "type": "object", "required": ["digest", "size", "created"],
    "properties": {"digest": {"type": "string"}, "size": {"type": "integer"},
                   "created": {"type": "boolean"}}}}}}
_DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the file", **_BINARY},
    206: {"description": "the requested byte range", **_BINARY},
    404: _ERROR, 416: _ERROR, 422: _ERROR,
}
# Served files are opaque bytes: never rendered, never run, never sniffed as HTML.
_DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private",
    "Accept-Ranges": "bytes",
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
# Documented in the schema (and checked by FastAPI before the handler runs).
Digest = Annotated[str, Path(pattern="^[0-9a-f]{64}$",
                             description="hex BLAKE2b-256 digest of the content")]
Version = Annotated[str, Path(pattern="^[1-9][0-9]{0,8}$", description="version number")]


def artifact_router(workspace: Workspace) -> APIRouter:
    """The artifact routes over ``workspace``'s blob store and metadata stores."""
    router = APIRouter(prefix="/api/v1", tags=["artifacts"])

    # -- blobs by digest ----------------------------------------------------------------

    @router.head("/blobs/{digest}", openapi_extra=declare("read"), response_class=Response,
                 responses={200: {"description": "stored; Content-Length is its size"},
                            404: _ERROR, 422: _ERROR})
    def head_blob(digest: Digest) -> Response:
        """Whether the blob is stored, and its size (``Content-Length``)."""
        size = workspace.blobs.size(_check_digest(digest))
        return Response(status_code=200, media_type=OCTET_STREAM,
                        headers={"Content-Length": str(size), "ETag": f'"{digest}"',
                                 "Accept-Ranges": "bytes"})

    @router.get("/blobs/{digest}", openapi_extra=declare("read"),
                response_class=StreamingResponse, responses=_DOWNLOAD_RESPONSES)
    def get_blob(digest: Digest, request: Request) -> Response:
        """The blob's bytes, streamed; one ``Range: bytes=a-b`` is honoured (206)."""
        _check_digest(digest)
        return blob_response(workspace.blobs, digest, request.headers.get("range"),
                             filename=digest)

    @router.put("/blobs/{digest}", status_code=201,
                openapi_extra={**declare("write"), "requestBody": {"required": True, **_BINARY}},
                responses={200: {"description": "already stored (nothing written)", **_STORED},
                           201: {"description": "stored", **_STORED}, 400: _ERROR,
                           422: _ERROR})
    async def put_blob(digest: Digest, request: Request) -> JSONResponse:
        """Store the request body (``application/octet-stream``, streamed) under
        ``digest``; refused, with nothing stored, unless the body hashes to it. Sending
        a blob that is already stored is a success that writes nothing."""
        _check_digest(digest)
        expected = _content_length(request)
        blobs = workspace.blobs
        if await run_in_threadpool(blobs.claim, digest):
            async for _ in request.stream():  # read and drop: the connection stays usable
                pass
            size = await run_in_threadpool(blobs.size, digest)
            return JSONResponse({"digest": digest, "size": size, "created": False})
        size = await _receive(blobs, digest, request, expected)
        return JSONResponse({"digest": digest, "size": size, "created": True}, status_code=201)

    @router.post("/blobs/{digest}/claim", openapi_extra=declare("write"),
                 responses={422: _ERROR})
    def claim_blob(digest: Digest) -> dict[str, Any]:
        """Whether the blob is stored (then kept from a running ``ratchet gc``): what a
        client asks before referencing content instead of uploading it."""
        blobs = workspace.blobs
        if not blobs.claim(_check_digest(digest)):
            return {"digest": digest, "exists": False, "size": None}
        return {"digest": digest, "exists": True, "size": blobs.size(digest)}

    # -- run artifacts by path ----------------------------------------------------------

    def readable_run(request: Request, run_id: str) -> None:
        tracking = workspace.stores.tracking
        run = tracking.get_run(run_id)  # NotFound for a missing or deleted run
        experiment = tracking.get_experiment(run.experiment_id)
        principal(request).require("read", "experiment", experiment.name)

    @router.get("/runs/{run_id}/artifacts", openapi_extra=declare("read"),
                responses={403: _ERROR, 404: _ERROR, 422: _ERROR})
    def list_run_artifacts(run_id: str, request: Request, prefix: str = "") -> dict[str, Any]:
        """The run's artifact files (path, digest, size), under ``prefix`` if given."""
        clean = normalize_artifact_path(prefix) if prefix else ""
        readable_run(request, run_id)
        entries = workspace.stores.tracking.list_artifacts(run_id, prefix=clean)
        return {"run_id": run_id, "prefix": clean, "artifacts": [_entry(e) for e in entries]}

    @router.get("/runs/{run_id}/artifacts/{path:path}", openapi_extra=declare("read"),
                response_class=StreamingResponse,
                responses={**_DOWNLOAD_RESPONSES, 403: _ERROR})
    def get_run_artifact(run_id: str, path: str, request: Request) -> Response:
        """One artifact file of the run, by its path, as a download."""
        name = normalize_artifact_path(path)
        readable_run(request, run_id)
        entry = _one_file(workspace.stores.tracking.list_artifacts(run_id, prefix=name),
                          name, f"run {run_id}")
        return blob_response(workspace.blobs, entry.digest, request.headers.get("range"),
                             filename=name.rsplit("/", 1)[-1])

    # -- model version files by path ----------------------------------------------------
    # A version's files are the artifacts of its run under its artifact path; reading
    # them needs read on the model, not on the experiment that trained it.

    def readable_version(request: Request, name: str, version: str) -> tuple[str, str]:
        number = _version_number(version)
        found = workspace.stores.registry.get_model_version(name, number)
        principal(request).require("read", "model", found.name)
        if found.run_id is None:
            raise NotFound(f"model {found.name!r} version {number} has no run holding its files")
        return found.run_id, found.artifact_path.rstrip("/")

    @router.get("/models/{name}/versions/{version}/files", openapi_extra=declare("read"),
                responses={403: _ERROR, 404: _ERROR, 422: _ERROR})
    def list_model_files(name: str, version: Version, request: Request) -> dict[str, Any]:
        """The files of a model version (paths relative to the version's folder)."""
        run_id, base = readable_version(request, name, version)
        entries = workspace.stores.tracking.list_artifacts(run_id, prefix=base)
        files = [{**_entry(e), "path": e.path[len(base) + 1:]}
                 for e in entries if e.path.startswith(base + "/")]
        return {"name": name, "version": int(version), "files": files}

    @router.get("/models/{name}/versions/{version}/files/{path:path}",
                openapi_extra=declare("read"), response_class=StreamingResponse,
                responses={**_DOWNLOAD_RESPONSES, 403: _ERROR})
    def get_model_file(name: str, version: Version, path: str, request: Request) -> Response:
        """One file of a model version, by its path inside the version, as a download."""
        relative = normalize_artifact_path(path)
        run_id, base = readable_version(request, name, version)
        full = f"{base}/{relative}"
        entry = _one_file(workspace.stores.tracking.list_artifacts(run_id, prefix=full),
                          full, f"model {name!r} version {version}")
        return blob_response(workspace.blobs, entry.digest, request.headers.get("range"),
                             filename=relative.rsplit("/", 1)[-1])

    return router


# -- responses ---------------------------------------------------------------------------


def blob_response(blobs: BlobStore, digest: str, range_header: str | None, *,
                  filename: str) -> Response:
    """A streamed download of one blob: the whole of it, verified on the way out, or the
    one byte range asked for (206); 416 for a range past its end."""
    size = blobs.size(digest)  # NotFound before anything is sent
    headers = {**_DOWNLOAD_HEADERS, "ETag": f'"{digest}"',
               "Content-Disposition": content_disposition(filename)}
    try:
        span = parse_range(range_header, size)
    except _Unsatisfiable as exc:
        return JSONResponse({"error": {"type": "BadRequest", "message": str(exc)}},
                            status_code=416, headers={"Content-Range": f"bytes */{size}"})
    if span is None:
        return StreamingResponse(_whole(blobs, digest), media_type=OCTET_STREAM,
                                 headers={**headers, "Content-Length": str(size)})
    start, end = span
    return StreamingResponse(_part(blobs, digest, start, end - start + 1), status_code=206,
                             media_type=OCTET_STREAM,
                             headers={**headers, "Content-Length": str(end - start + 1),
                                      "Content-Range": f"bytes {start}-{end}/{size}"})


def _whole(blobs: BlobStore, digest: str) -> Iterator[bytes]:
    """The blob in chunks, one held back until the next read succeeds: the last read
    verifies the digest, so a corrupt blob is never sent complete (the connection is
    cut instead and the client sees a short body)."""
    with blobs.open(digest) as f:
        held = f.read(CHUNK_SIZE)
        while held:
            following = f.read(CHUNK_SIZE)
            yield held
            held = following


def _part(blobs: BlobStore, digest: str, start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes from ``start`` (unverified: a range cannot be; a client reading
    the whole blob in pieces, as the remote store does when it resumes, verifies it)."""
    local = blobs.local_path(digest)
    with contextlib.ExitStack() as stack:
        f: BinaryIO
        if local is not None:
            f = stack.enter_context(open(local, "rb", buffering=0))
            f.seek(start)
        else:  # an object store's blob, through the verifying reader: skip to the start
            f = stack.enter_context(blobs.open(digest))
            _skip(f, start)
        while length > 0:
            chunk = f.read(min(CHUNK_SIZE, length))
            if not chunk:
                raise NotFound(f"artifact blob {digest} ended before byte {start + length}")
            length -= len(chunk)
            yield chunk


def _skip(f: BinaryIO, count: int) -> None:
    while count > 0:
        chunk = f.read(min(CHUNK_SIZE, count))
        if not chunk:
            return
        count -= len(chunk)


class _Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range ``(first, last)`` (inclusive) a ``Range`` header asks of a
    ``size``-byte blob, or None to send it all (no header, several ranges or a header
    this server does not understand, which RFC 9110 lets it ignore). A range that
    starts past the end raises ``_Unsatisfiable`` (416)."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable(f"range {header!r} asks for no bytes of a {size}-byte blob")
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise _Unsatisfiable(f"range {header!r} starts at or after the end of the "
                             f"{size}-byte blob")
    return start, min(int(last) if last else size - 1, size - 1)


def content_disposition(filename: str) -> str:
    """``attachment`` with ``filename`` safe in any browser (RFC 6266): a quoted ASCII
    fallback with anything unsafe replaced, and the exact name as ``filename*``."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%;' else "_" for c in filename)
    header = f'attachment; filename="{fallback or "download"}"'
    if fallback != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


# -- uploads -----------------------------------------------------------------------------


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"Content-Length {value!r} is not a byte count", status=400)
    return int(value)


async def _receive(blobs: BlobStore, digest: str, request: Request,
                   expected: int | None) -> int:
    """Stream the body into a staging file, then publish it under ``digest`` if it hashes
    to it; returns its size. Each MiB is hashed and written on a worker thread while the
    next one is received (at most two in memory)."""
    staging = blobs.staging_file()
    staged = await run_in_threadpool(staging.__enter__)
    try:
        h = hasher()
        received = 0
        pending: list[bytes] = []
        pending_bytes = 0
        writing: asyncio.Future[None] | None = None
        with open(staged, "wb") as out:

            def write(data: bytes) -> None:
                h.update(data)  # hashlib releases the GIL: the event loop keeps reading
                out.write(data)

            async def hand_over(data: bytes) -> asyncio.Future[None]:
                if writing is not None:
                    await writing  # one write at a time, in order
                return asyncio.ensure_future(run_in_threadpool(write, data))

            try:
                async for chunk in request.stream():
                    received += len(chunk)
                    pending.append(chunk)
                    pending_bytes += len(chunk)
                    if pending_bytes >= CHUNK_SIZE:
                        data = b"".join(pending)
                        pending.clear()
                        pending_bytes = 0
                        writing = await hand_over(data)
                if pending:
                    writing = await hand_over(b"".join(pending))
            except ClientDisconnect:
                raise BadRequest(f"the upload of blob {digest} was cut short after "
                                 f"{received} bytes; nothing was stored", status=400) from None
            finally:
                if writing is not None:  # never close the file under a running write
                    await asyncio.shield(writing)
        if expected is not None and received != expected:  # the server normally sees to it
            raise BadRequest(f"the upload of blob {digest} sent {received} bytes, not the "
                             f"{expected} of its Content-Length; nothing was stored", status=400)
        actual = h.hexdigest()
        if actual != digest:
            raise InvalidInput(
                f"the uploaded content hashes to {actual}, not to {digest} (the digest in "
                "the URL); nothing was stored: upload to the URL of the content's own "
                "BLAKE2b-256 digest"
            )
        await run_in_threadpool(blobs.adopt, staged, digest)
        return received
    finally:
        await run_in_threadpool(staging.__exit__, None, None, None)


# -- lookups -----------------------------------------------------------------------------


def _entry(e: ArtifactEntry) -> dict[str, Any]:
    return {"path": e.path, "digest": e.digest, "size": e.size}


def _one_file(entries: list[ArtifactEntry], name: str, where: str) -> ArtifactEntry:
    """The entry named exactly ``name`` among the index rows under that prefix."""
    for e in entries:
        if e.path == name:
            return e
    if entries:
        raise NotFound(f"{name!r} in {where} is a folder of {len(entries)} files, not a "
                       "file: list it, then download each file")
    raise NotFound(f"{where} has no artifact {name!r}")


def _version_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) < 1:
        raise InvalidInput(f"model version must be a number from 1, got {text!r}")
    return int(text)


__all__ = ["OCTET_STREAM", "artifact_router", "blob_response", "content_disposition",
           "parse_range"]

