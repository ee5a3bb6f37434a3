"""MLflow's artifact proxy (``mlflow-artifacts:/``): upload, download, list and delete the
files of runs and logged models through the server.

MLflow's client turns ``mlflow-artifacts:/<path>`` into ``/api/2.0/mlflow-artifacts/
artifacts/<path>``; ``locations.parse_location`` resolves the path to a run (or a logged
model's holder run) and a relative path, and refuses anything not in normal form. The
experiment in the path must be the run's (or the model's), else the file does not exist;
the caller needs read (download, list) or write (upload, delete) on that experiment.

Files are ratchet run artifacts: an upload is streamed to a content-addressed blob (one
chunk in memory, file I/O off the event loop) and indexed under its path. Unlike MLflow,
which overwrites, a path is immutable once written: the same bytes again succeed (a retried
PUT), different bytes are RESOURCE_CONFLICT (409) and change nothing.

Multipart uploads and presigned downloads are not offered: the client only tries them when
configured to (or told by ``/server-info``); ``mpu/create`` answers the refusal its client
reads as "send one streamed PUT", and a presigned-URL request is ENDPOINT_NOT_FOUND, which a
client forced into multipart downloads also falls back from.
"""

from __future__ import annotations

import asyncio
import mimetypes
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# At module level, not lazily: FastAPI reads the handlers' annotations from these globals.
from fastapi import APIRouter, Request, Response

from ratchet.errors import BadRequest, Conflict, Forbidden, NotFound
from ratchet.server.mlflow.locations import LOGGED_MODELS_DIR, Location, parse_location
from ratchet.server.mlflow.protocol import MlflowError, invalid, message, missing
from ratchet.server.mlflow.requests import (
    experiment_by_id,
    may_read_model,
    reply,
    require_experiment,
)

if TYPE_CHECKING:
    from ratchet.artifacts import BlobStore
    from ratchet.store.records import ArtifactEntry
    from ratchet.workspace import Workspace

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
# The message MLflow's client takes as "no multipart here: send the file in one PUT".
MULTIPART_UNSUPPORTED = "Multipart upload is not supported for the current artifact repository"


@dataclass(frozen=True)
class Target:
    """Where a proxied path lands: a run and the artifact path in it ("" for its root)."""

    run_id: str
    path: str
    where: str  # for messages: "run <id>" or "logged model <id>"
    model_id: str | None = None  # a logged model's files, not the run's own


def resolve(workspace: Workspace, request: Request, path: str, level: str) -> Target:
    """The run and artifact path ``path`` names, after checking the caller's ``level`` on
    its experiment. A run or model outside the experiment the path names does not exist."""
    location = parse_location(path)
    experiment = experiment_by_id(workspace, location.experiment_id)
    try:
        require_experiment(request, level, experiment.name)
    except Forbidden as denied:
        if level != "read":
            raise
        try:  # what the caller may not see does not exist for them either: still denied
            target = _target(workspace, location, experiment.experiment_id)
        except (NotFound, MlflowError):
            raise denied from None
        if not readable_as_model_version(workspace, request, target):
            raise denied from None
        return target
    return _target(workspace, location, experiment.experiment_id)


def readable_as_model_version(workspace: Workspace, request: Request, target: Target) -> bool:
    """Whether ``target`` lies in the files of a registered model version the caller may
    read: a model's readers download its versions through the URIs MLflow hands out
    (get-download-uri), as ratchet's own model file routes let them, without a grant on
    the experiment that trained it."""
    for version in workspace.stores.registry.versions_for_run(target.run_id):
        base = version.artifact_path.strip("/")
        inside = not base or target.path == base or target.path.startswith(f"{base}/")
        if inside and may_read_model(request, version.name):
            return True
    return False


def _target(workspace: Workspace, location: Location, experiment_id: str) -> Target:
    if location.model_id is not None:
        model = workspace.stores.logged_models.get(location.model_id)
        if model.experiment_id != experiment_id:
            raise missing(f"no logged model {location.model_id} in experiment "
                          f"{location.experiment_id}")
        base = model.artifact_path
        full = f"{base}/{location.relpath}" if location.relpath else base
        return Target(model.artifact_run_id, full, f"logged model {location.model_id}",
                      location.model_id)
    assert location.run_id is not None
    run = workspace.stores.tracking.get_run(location.run_id)
    if run.experiment_id != experiment_id:
        raise missing(f"no run {location.run_id} in experiment {location.experiment_id}")
    return Target(run.run_id, location.relpath, f"run {run.run_id}")


def own_files(workspace: Workspace, run_id: str, entries: list[ArtifactEntry]
              ) -> list[ArtifactEntry]:
    """A run's entries without the files of the logged models it holds: those are listed,
    downloaded and deleted through the model's own URI, as in MLflow 3."""
    if not any(e.path.startswith(f"{LOGGED_MODELS_DIR}/") for e in entries):
        return entries
    held = tuple(f"{m.artifact_path}/" for m in
                 workspace.stores.logged_models.models_of_run(run_id, include_deleted=True))
    return [e for e in entries if not e.path.startswith(held)]


def children(entries: list[ArtifactEntry], base: str) -> list[dict[str, Any]]:
    """MLflow's listing of folder ``base``: its direct files (with sizes) and folders, by
    name, sorted. A file's own path lists nothing, as MLflow's stores answer."""
    prefix = f"{base}/" if base else ""
    files: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not entry.path.startswith(prefix):
            continue  # the base itself, a file
        name, _, rest = entry.path[len(prefix):].partition("/")
        if rest:
            files[name] = {"path": name, "is_dir": True}
        elif name not in files:
            files[name] = {"path": name, "is_dir": False, "file_size": entry.size}
    return [files[name] for name in sorted(files)]


def router(workspace: Workspace) -> APIRouter:
    from starlette.concurrency import run_in_threadpool

    from ratchet.server.artifact_routes import blob_response
    from ratchet.server.permissions import declare
    from ratchet.store.records import ArtifactEntry

    router = APIRouter(tags=["mlflow"])

    @router.get("/api/3.0/mlflow/server-info", openapi_extra=declare("public"))
    def server_info() -> dict[str, object]:
        """What MLflow 3's client asks before a large upload or download: this server takes
        every file as one streamed request (no multipart, no presigned URLs). Public, as
        MLflow's: capabilities only, nothing about the workspace."""
        return {"store_type": "SqlStore", "workspaces_enabled": False,
                "trace_archival_enabled": False, "multipart_uploads_enabled": False,
                "multipart_downloads_enabled": False,
                "presigned_upload_run_id_supported": False,
                "presigned_upload_model_id_supported": False,
                "features_enabled": {"gateway": False}}

    @router.put(ARTIFACTS + "/{path:path}", openapi_extra=declare("write"))
    async def upload_artifact(path: str, request: Request) -> Response:
        """Store the body (any type, streamed) as the file at ``path``."""
        target = await run_in_threadpool(resolve, workspace, request, path, "write")
        if not target.path or target.path.endswith("/"):
            raise invalid(f"artifact path {path!r} names a folder, not a file")
        digest, size = await receive(workspace.blobs, request, path)
        try:
            await run_in_threadpool(workspace.stores.tracking.record_artifacts, target.run_id,
                                    [ArtifactEntry(target.path, digest, size)])
        except Conflict:
            raise MlflowError(
                "RESOURCE_CONFLICT",
                f"artifact {target.path!r} of {target.where} already holds different "
                "content; ratchet's artifacts are immutable (MLflow would overwrite): "
                "log it under a new path") from None
        return reply({})

    @router.get(ARTIFACTS + "/{path:path}", openapi_extra=declare("read"))
    def download_artifact(path: str, request: Request) -> Response:
        """The file at ``path``, as a download."""
        target = resolve(workspace, request, path, "read")
        entries = (workspace.stores.tracking.list_artifacts(target.run_id, prefix=target.path)
                   if target.path else [])
        entry = next((e for e in entries if e.path == target.path), None)
        if entry is None:
            raise missing(f"{target.where} has no artifact file {path.rsplit('/', 1)[-1]!r}"
                          + (" (it is a folder)" if entries else ""))
        name = entry.path.rsplit("/", 1)[-1]
        response = blob_response(workspace.blobs, entry.digest,
                                 request.headers.get("range"), filename=name)
        guessed, encoding = mimetypes.guess_type(name)
        if guessed and not encoding:  # a .gz stays octet-stream: no client inflates it
            response.headers["Content-Type"] = guessed
        return response

    @router.get(ARTIFACTS, openapi_extra=declare("read"))
    def list_artifacts(request: Request) -> Response:
        """The files and folders directly in folder ``?path=`` (names relative to it)."""
        path = request.query_params.get("path")
        if not path:
            raise invalid("list artifacts: 'path' must name a folder: <experiment_id>/"
                          "<run_id>/artifacts[/<dir>] or <experiment_id>/models/<model_id>/"
                          "artifacts[/<dir>]")
        target = resolve(workspace, request, path, "read")
        entries = workspace.stores.tracking.list_artifacts(target.run_id, prefix=target.path)
        if target.model_id is None:
            entries = own_files(workspace, target.run_id, entries)
        return reply(message(files=children(entries, target.path)))

    @router.delete(ARTIFACTS + "/{path:path}", openapi_extra=declare("write"))
    def delete_artifacts(path: str, request: Request) -> Response:
        """Remove the file or folder at ``path`` from the run's index (its blobs stay
        until ``ratchet gc`` finds them unreferenced)."""
        target = resolve(workspace, request, path, "write")
        forget = workspace.stores.tracking.forget_artifacts
        if target.model_id is None and target.path in ("", LOGGED_MODELS_DIR):
            # Under a run's root the files of the logged models it holds are the models',
            # not the run's (as in MLflow 3): only the run's own files go.
            entries = workspace.stores.tracking.list_artifacts(target.run_id,
                                                               prefix=target.path)
            kept = own_files(workspace, target.run_id, entries)
            if len(kept) != len(entries):
                for entry in kept:
                    forget(target.run_id, entry.path)
                return reply({})
        forget(target.run_id, target.path)
        return reply({})

    @router.post("/api/2.0/mlflow-artifacts/mpu/create/{path:path}",
                 openapi_extra=declare("write"))
    def create_multipart_upload(path: str) -> Response:
        """Not offered: a client asked for a multipart upload (it was configured to) gets
        the answer MLflow's client reads as "fall back to one streamed PUT"."""
        raise MlflowError("NOT_IMPLEMENTED", MULTIPART_UNSUPPORTED)

    return router


async def receive(blobs: BlobStore, request: Request, path: str) -> tuple[str, int]:
    """Stream the request body into a staging file while hashing it, then store it as a
    blob; returns ``(digest, size)``. Each chunk is hashed and written on a worker thread
    while the next is received (at most two chunks in memory)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect

    from ratchet.hashing import CHUNK_SIZE, hasher

    staging = blobs.staging_file()
    staged = await run_in_threadpool(staging.__enter__)
    try:
        h = hasher()
        received = 0
        out = await run_in_threadpool(open, staged, "wb")
        writing: asyncio.Future[None] | None = None
        try:
            def write(data: bytes) -> None:
                h.update(data)  # hashlib releases the GIL for large buffers
                out.write(data)

            pending: list[bytes] = []
            pending_bytes = 0
            try:
                async for chunk in request.stream():
                    received += len(chunk)
                    pending.append(chunk)
                    pending_bytes += len(chunk)
                    if pending_bytes >= CHUNK_SIZE:
                        data, pending, pending_bytes = b"".join(pending), [], 0
                        if writing is not None:
                            await writing  # one write at a time, in order
                        writing = asyncio.ensure_future(run_in_threadpool(write, data))
                if writing is not None:
                    await writing
                    writing = None
                if pending:
                    await run_in_threadpool(write, b"".join(pending))
            except ClientDisconnect:
                raise BadRequest(f"the upload of {path!r} was cut short after {received} "
                                 "bytes; nothing was stored", status=400) from None
        finally:
            if writing is not None:  # never close the file under a running write
                await asyncio.shield(writing)
            await run_in_threadpool(out.close)
        expected = request.headers.get("content-length")
        if expected is not None and expected.isdigit() and int(expected) != received:
            raise BadRequest(f"the upload of {path!r} sent {received} bytes, not the "
                             f"{expected} of its Content-Length; nothing was stored", status=400)
        digest = h.hexdigest()
        await run_in_threadpool(blobs.adopt, staged, digest)
        return digest, received
    finally:
        await run_in_threadpool(staging.__exit__, None, None, None)


__all__ = ["ARTIFACTS", "Target", "children", "own_files", "receive", "resolve", "router"]
