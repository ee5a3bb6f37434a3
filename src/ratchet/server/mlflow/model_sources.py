"""Where an MLflow model version's files are: its ``source`` URI resolved to the ratchet
run and artifact path that hold them, and the ratchet manifest written beside a model
that MLflow logged (so ``ratchet serve`` and ``RegistryClient.load`` can use it).

The sources MLflow's clients send, and what each means here:

- ``mlflow-artifacts:/<exp>/<run>/artifacts/<path>``: artifact ``<path>`` of run ``<run>``;
- ``mlflow-artifacts:/<exp>/models/<model_id>/artifacts[/<path>]``: a logged model's files,
  held as artifacts ``models/<model_id>/...`` of its holder run;
- ``runs:/<run>/<path>``: the same as the first form;
- ``models:/<model_id>`` (MLflow 3, with ``model_id`` set): a logged model.

Anything else (``s3://``, ``file://``, a local path, another server) is refused: the server
reads only its own artifact index, never a location a client chose. The files must be
in that index, and the directory must hold a model (ratchet's ``ratchet-model.json`` or
MLflow's ``MLmodel``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.artifacts.paths import normalize_artifact_path
from ratchet.errors import Conflict, InvalidInput, NotFound
from ratchet.hashing import hash_tree
from ratchet.server.mlflow.locations import (
    SCHEME,
    logged_model_artifact_uri,
    logged_model_run_path,
    parse_artifact_uri,
    run_artifact_uri,
)
from ratchet.server.mlflow.protocol import invalid
from ratchet.store.records import ArtifactEntry

if TYPE_CHECKING:
    from ratchet.workspace import Workspace

MANIFEST_FILENAME = "ratchet-model.json"  # as ratchet.registry.client writes it
MLMODEL_FILENAME = "MLmodel"
MAX_MLMODEL_BYTES = 1 << 20  # an MLmodel is a few KB of YAML; anything huge is not one

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_MODEL_ID = re.compile(r"m-[A-Za-z0-9_-]{1,64}|[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class ModelFiles:
    """A resolved source: the run holding the files, their path in its artifacts, the
    experiment of that run, and the logged model they belong to (MLflow 3), if any."""

    run_id: str
    artifact_path: str
    experiment_id: str
    model_id: str | None = None
    source_run_id: str | None = None  # a logged model's: the run it was logged from


def download_uri(experiment_id: str, run_id: str, artifact_path: str,
                 model_id: str | None) -> str:
    """Where MLflow's client downloads a version's files through the artifact proxy: a
    logged model's under its own URI (the proxy lists a holder run's artifacts without
    the logged models' files), anything else under its run's."""
    if model_id is not None:
        base = logged_model_run_path(model_id)
        if artifact_path == base or artifact_path.startswith(base + "/"):
            rest = artifact_path[len(base):]
            return logged_model_artifact_uri(experiment_id, model_id) + rest
    return f"{run_artifact_uri(experiment_id, run_id)}/{artifact_path}"


@dataclass(frozen=True)
class PreparedModel:
    """What a version records: the files' tree hash and the ratchet manifest."""

    content_hash: str
    flavor: str
    manifest: dict[str, Any]


def resolve_source(workspace: Workspace, source: str, *, run_id: str | None,
                   model_id: str | None) -> ModelFiles:
    """The run and path holding ``source``'s files; ``run_id`` / ``model_id`` (as the
    client sent them) must agree with it. INVALID_PARAMETER_VALUE for any source the
    server does not hold, RESOURCE_DOES_NOT_EXIST for a run or logged model it lacks."""
    text = source.strip()
    if text.startswith(SCHEME):
        location = parse_artifact_uri(text)
        if location.model_id is not None:
            files = _logged_model_files(workspace, location.model_id, location.relpath)
            if files.experiment_id != location.experiment_id:
                raise invalid(f"source {source!r}: logged model {location.model_id} is in "
                              f"experiment {files.experiment_id}, not {location.experiment_id}")
        else:
            assert location.run_id is not None
            files = _run_files(workspace, location.run_id, location.relpath, source)
            if files.experiment_id != location.experiment_id:
                raise invalid(f"source {source!r}: run {location.run_id} is in experiment "
                              f"{files.experiment_id}, not {location.experiment_id}")
    elif text.startswith("runs:/"):
        run, _, path = text[len("runs:/"):].partition("/")
        if not _RUN_ID.fullmatch(run):
            raise invalid(f"source {source!r}: {run!r} is not a run id")
        files = _run_files(workspace, run, path, source)
    elif text.startswith("models:/"):
        wanted = text[len("models:/"):].strip("/")
        if not _MODEL_ID.fullmatch(wanted) or (model_id and wanted != model_id):
            raise invalid(f"source {source!r}: a models:/ source must name the logged model "
                          "given as model_id (models:/<model_id>); to copy a registered "
                          "version, register its runs:/ source")
        files = _logged_model_files(workspace, wanted, "")
    else:
        raise invalid(f"Invalid model version source {source!r}: this server registers only "
                      f"files it holds ({SCHEME}/<experiment_id>/<run_id>/artifacts/<path>, "
                      "runs:/<run_id>/<path> or models:/<model_id>); log the model to a run "
                      "of this server first")
    if run_id and files.model_id is None and run_id != files.run_id:
        raise invalid(f"Invalid model version source {source!r}: the run_id request parameter "
                      f"({run_id}) must identify the run that holds the source")
    if model_id and files.model_id != model_id:
        raise invalid(f"Invalid model version source {source!r}: the model_id request "
                      f"parameter ({model_id}) must identify the logged model that holds it")
    return files


def _run_files(workspace: Workspace, run_id: str, relpath: str, source: str) -> ModelFiles:
    if not relpath:
        raise invalid(f"source {source!r} names a run's whole artifact root; name the "
                      "model's directory under it (e.g. runs:/<run_id>/model)")
    try:
        path = normalize_artifact_path(relpath)
    except InvalidInput as exc:
        raise invalid(f"source {source!r}: {exc}") from None
    if path != relpath:
        raise invalid(f"source {source!r}: the path is not in normal form ({path!r})")
    run = workspace.stores.tracking.get_run(run_id)  # NotFound: RESOURCE_DOES_NOT_EXIST
    return ModelFiles(run.run_id, path, run.experiment_id)


def _logged_model_files(workspace: Workspace, model_id: str, relpath: str) -> ModelFiles:
    """A logged model's files in its holder run (``models/<model_id>/...``)."""
    record = workspace.stores.logged_models.get(model_id)  # NotFound: no such model
    base = (record.artifact_path or logged_model_run_path(model_id)).strip("/")
    path = f"{base}/{relpath}" if relpath else base
    try:
        path = normalize_artifact_path(path)
    except InvalidInput as exc:
        raise invalid(f"logged model {model_id!r}: {exc}") from None
    return ModelFiles(record.artifact_run_id, path, record.experiment_id, model_id=model_id,
                      source_run_id=record.source_run_id)


MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # on a logged model: the versions made of it


def note_registration(workspace: Workspace, model_id: str, name: str, version: int) -> None:
    """List the new version on its logged model, as MLflow's server does (its UI shows a
    logged model's registered versions from this tag)."""
    store = workspace.stores.logged_models
    entry = {"name": name, "version": str(version)}
    try:
        listed = json.loads(store.get(model_id).tags.get(MODEL_VERSIONS_TAG) or "[]")
    except ValueError:
        listed = []
    if not isinstance(listed, list):
        listed = []
    if entry not in listed:
        store.set_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps([*listed, entry])})


# ---------------------------------------------------------------------------- manifest
def prepare_model(workspace: Workspace, files: ModelFiles, where: str) -> PreparedModel:
    """The manifest and tree hash of the model at ``files``. A ratchet-logged model has
    its manifest already; an MLflow one (``MLmodel`` only) gets one written beside it, as
    a new artifact of the same run, so it loads and serves like any ratchet model."""
    tracking = workspace.stores.tracking
    entries = tracking.list_artifacts(files.run_id, files.artifact_path)
    names = {e.path[len(files.artifact_path) + 1:]: e for e in entries
             if e.path.startswith(files.artifact_path + "/")}
    if not names:
        raise invalid(f"{where}: run {files.run_id} has no files under "
                      f"{files.artifact_path!r}; upload the model's files before registering")
    if MANIFEST_FILENAME in names:
        manifest = _manifest_from(workspace, names[MANIFEST_FILENAME], where)
    elif MLMODEL_FILENAME in names:
        manifest, entry = _write_manifest(workspace, files, names[MLMODEL_FILENAME],
                                          list(names), where)
        names[MANIFEST_FILENAME] = entry
    else:
        raise invalid(f"{where}: {files.artifact_path!r} of run {files.run_id} holds no model "
                      f"(neither {MLMODEL_FILENAME} nor {MANIFEST_FILENAME})")
    flavor = manifest.get("flavor")
    if not isinstance(flavor, str) or not flavor:
        raise invalid(f"{where}: the model's manifest names no flavor")
    return PreparedModel(hash_tree((rel, e.digest) for rel, e in names.items()), flavor,
                         manifest)


def _manifest_from(workspace: Workspace, entry: ArtifactEntry, where: str) -> dict[str, Any]:
    from ratchet.packaging.manifest import Manifest

    text = _read_text(workspace, entry, where)
    manifest = Manifest.from_json(text, f"{where}: {entry.path}")  # checks every field
    data: dict[str, Any] = json.loads(manifest.to_json())
    return data


def _write_manifest(workspace: Workspace, files: ModelFiles, mlmodel: ArtifactEntry,
                    present: list[str], where: str) -> tuple[dict[str, Any], ArtifactEntry]:
    from ratchet.packaging.mlflow_format import manifest_for_mlflow_model

    manifest = manifest_for_mlflow_model(_read_text(workspace, mlmodel, where),
                                         f"{where}: {mlmodel.path}", present)
    data = manifest.to_json().encode("utf-8")
    blob = workspace.blobs.put_bytes(data)
    entry = ArtifactEntry(f"{files.artifact_path}/{MANIFEST_FILENAME}", blob.digest, blob.size)
    try:
        workspace.stores.tracking.record_artifacts(files.run_id, [entry])
    except Conflict:
        # A concurrent registration (the client's retry) wrote its own first: use that one.
        for found in workspace.stores.tracking.list_artifacts(files.run_id, entry.path):
            if found.path == entry.path:
                return _manifest_from(workspace, found, where), found
        raise
    return json.loads(data), entry


def _read_text(workspace: Workspace, entry: ArtifactEntry, where: str) -> str:
    if entry.size > MAX_MLMODEL_BYTES:
        raise invalid(f"{where}: {entry.path} is {entry.size} bytes, more than a model "
                      f"description can be ({MAX_MLMODEL_BYTES})")
    try:
        return workspace.blobs.read_bytes(entry.digest).decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(f"{where}: {entry.path} is not UTF-8 text") from None
    except NotFound:
        raise invalid(f"{where}: the content of {entry.path} is missing from the artifact "
                      "store") from None


__all__ = ["MANIFEST_FILENAME", "MLMODEL_FILENAME", "MODEL_VERSIONS_TAG", "ModelFiles",
           "PreparedModel", "download_uri", "note_registration", "prepare_model",
           "resolve_source"]
