"""Model registry: log and register packaged models, move aliases, load by URI, lineage.

Model files live as run artifacts (content-addressed blobs); a model version points at a
run, an artifact path, and the tree hash of the files there, which is checked on load.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from ratchet.clock import to_ms
from ratchet.errors import IntegrityError, InvalidInput, NotFound
from ratchet.hashing import hash_file, hash_tree
from ratchet.registry.uris import ModelRef, parse_model_uri
from ratchet.safe_load import load_json
from ratchet.store import (
    AliasEvent,
    ArtifactEntry,
    ModelVersion,
    RegisteredModel,
    Run,
)
from ratchet.tracking.client import TrackingClient
from ratchet.workspace import Workspace
from ratchet.workspace import resolve as resolve_workspace

if TYPE_CHECKING:
    from ratchet.packaging import LoadedModel, Signature

MANIFEST_FILENAME = "ratchet-model.json"


@dataclass(frozen=True)
class LoggedModel:
    """A model stored with a run but not (yet) registered under a name."""

    run_id: str
    artifact_path: str
    content_hash: str
    manifest: dict[str, Any]

    @property
    def uri(self) -> str:
        return f"runs:/{self.run_id}/{self.artifact_path}"


@dataclass(frozen=True)
class ResolvedModel:
    run_id: str
    artifact_path: str
    content_hash: str | None
    version: ModelVersion | None
    entries: tuple[ArtifactEntry, ...] | None = None  # listed already (runs:/ URIs)


@dataclass(frozen=True)
class Lineage:
    """version → run → datasets → commit: everything that made a model version."""

    version: ModelVersion
    run: Run | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.version.name,
            "version": self.version.version,
            "aliases": list(self.version.aliases),
            "content_hash": self.version.content_hash,
            "flavor": self.version.flavor,
            "run": self.run.to_dict() if self.run else None,
        }


def actor_or_os_user(actor: str | None) -> str | None:
    """Who made a change: the caller's name, else the OS user (alias moves, plan changes)."""
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


class RegistryClient:
    def __init__(self, workspace: Workspace | None = None) -> None:
        self.workspace = resolve_workspace(workspace)
        self.tracking = self.workspace.client(TrackingClient)
        self.store = self.workspace.stores.registry

    # ---------------------------------------------------------------- logging models
    @overload
    def log_model(self, run_id: str, model: object, *, name: str,
                  artifact_path: str | None = None, input_example: Any = None,
                  signature: Signature | None = None,
                  metrics: Mapping[str, float] | None = None, flavor: str | None = None,
                  description: str | None = None,
                  tags: Mapping[str, str] | None = None,
                  features: Sequence[str] | None = None,
                  full_feature_names: bool = False) -> ModelVersion: ...

    @overload
    def log_model(self, run_id: str, model: object, *, name: None = None,
                  artifact_path: str | None = None, input_example: Any = None,
                  signature: Signature | None = None,
                  metrics: Mapping[str, float] | None = None, flavor: str | None = None,
                  description: str | None = None,
                  tags: Mapping[str, str] | None = None,
                  features: Sequence[str] | None = None,
                  full_feature_names: bool = False) -> LoggedModel: ...

    def log_model(
        self,
        run_id: str,
        model: object,
        *,
        name: str | None = None,
        artifact_path: str | None = None,
        input_example: Any = None,
        signature: Signature | None = None,
        metrics: Mapping[str, float] | None = None,
        flavor: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        features: Sequence[str] | None = None,
        full_feature_names: bool = False,
    ) -> ModelVersion | LoggedModel:
        """Package ``model`` into the run's artifacts; with ``name``, register a new version.

        ``features``: the feature references the model was trained on (as given to
        ``ratchet.features.training_set``): the model is then served from entity keys, the
        server fetching its features (``ratchet.packaging.model_features``)."""
        from ratchet.artifacts import normalize_artifact_path
        from ratchet.packaging import save_model

        model_features = None
        if features is not None:
            from ratchet.packaging.model_features import model_features as describe

            model_features = describe(features, full_feature_names=full_feature_names,
                                      lookup=self._feature_definition)
        run = self.tracking.get_run(run_id)
        path = normalize_artifact_path(artifact_path) if artifact_path else self._free_path(run_id)
        with tempfile.TemporaryDirectory(prefix="ratchet-model-") as tmp:
            directory = Path(tmp) / "model"
            directory.mkdir()
            manifest = save_model(
                model, directory, flavor=flavor, input_example=input_example,
                signature=signature,
                metrics=dict(metrics) if metrics is not None else _finite(run.metrics),
                features=model_features,
            )
            entries = self.tracking.log_artifacts(run_id, directory, path)
        manifest_dict = json.loads(manifest.to_json())
        content_hash = _tree_hash(entries, path)
        if name is None:
            return LoggedModel(run_id, path, content_hash, manifest_dict)
        return self.store.create_model_version(
            name, run_id=run_id, artifact_path=path, content_hash=content_hash,
            flavor=manifest.flavor, manifest=manifest_dict, description=description,
            created_by=actor_or_os_user(None), tags=tags,
        )

    def _feature_definition(self, kind: str, name: str) -> tuple[int, dict[str, Any]]:
        record = self.workspace.stores.features.get_definition(kind, name)
        return record.version, record.spec

    def _free_path(self, run_id: str) -> str:
        taken = {e.path.split("/", 1)[0] for e in self.tracking.list_artifacts(run_id)}
        if "model" not in taken:
            return "model"
        n = 2
        while f"model-{n}" in taken:
            n += 1
        return f"model-{n}"

    def register(self, source: str, name: str, *, description: str | None = None,
                 tags: Mapping[str, str] | None = None) -> ModelVersion:
        """Register a model already logged with a run (``runs:/<id>/<path>``) as a version."""
        ref = parse_model_uri(source)
        if ref.run_id is None:
            raise InvalidInput(f"register needs a runs:/ URI, got {source!r}")
        entries = self._model_entries(ref.run_id, ref.artifact_path)
        manifest = load_json(self.tracking.read_artifact(  # bounded nesting
            ref.run_id, f"{ref.artifact_path}/{MANIFEST_FILENAME}"),
            f"{source}/{MANIFEST_FILENAME}")
        return self.store.create_model_version(
            name, run_id=ref.run_id, artifact_path=ref.artifact_path,
            content_hash=_tree_hash(entries, ref.artifact_path), flavor=manifest["flavor"],
            manifest=manifest, description=description, created_by=actor_or_os_user(None), tags=tags)

    def _model_entries(self, run_id: str, artifact_path: str) -> list[ArtifactEntry]:
        entries = self.tracking.list_artifacts(run_id, artifact_path)
        if not any(e.path == f"{artifact_path}/{MANIFEST_FILENAME}" for e in entries):
            raise NotFound(f"run {run_id} has no model at {artifact_path!r} "
                           f"(no {MANIFEST_FILENAME} there)")
        return entries

    # ---------------------------------------------------------------- reading
    def get_model(self, name: str) -> RegisteredModel:
        return self.store.get_registered_model(name)

    def list_models(self) -> list[RegisteredModel]:
        return self.store.list_registered_models()

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self.store.get_model_version(name, version)

    def list_versions(self, name: str) -> list[ModelVersion]:
        return self.store.list_model_versions(name)

    def set_description(self, name: str, description: str | None,
                        version: int | None = None) -> None:
        if version is None:
            self.store.update_registered_model(name, description)
        else:
            self.store.update_model_version(name, version, description)

    def set_tag(self, name: str, key: str, value: str, version: int | None = None) -> None:
        if version is None:
            self.store.set_registered_model_tag(name, key, value)
        else:
            self.store.set_model_version_tag(name, version, key, value)

    # ---------------------------------------------------------------- aliases
    def set_alias(self, name: str, alias: str, version: int, *, reason: str | None = None,
                  actor: str | None = None) -> AliasEvent:
        """Point ``alias`` at ``version`` (creating or moving it); the move is recorded."""
        return self.store.set_alias(name, alias, int(version), actor=actor_or_os_user(actor),
                                    reason=reason)

    def delete_alias(self, name: str, alias: str, *, reason: str | None = None,
                     actor: str | None = None) -> AliasEvent:
        return self.store.delete_alias(name, alias, actor=actor_or_os_user(actor), reason=reason)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        self.store.get_registered_model(name)
        return self.store.alias_history(name, alias)

    def version_at(self, name: str, alias: str, when: datetime | int) -> int | None:
        """The version ``alias`` pointed at, at time ``when`` (None if it was unset)."""
        if not self.alias_history(name, alias):
            raise NotFound(f"model {name!r} has never had an alias {alias!r}")
        return self.store.alias_version_at(name, alias, to_ms(when))

    # ---------------------------------------------------------------- resolving and loading
    def resolve(self, uri: str) -> ResolvedModel:
        ref: ModelRef = parse_model_uri(uri)
        if ref.run_id is not None:
            entries = self._model_entries(ref.run_id, ref.artifact_path)
            return ResolvedModel(ref.run_id, ref.artifact_path,
                                 _tree_hash(entries, ref.artifact_path), None, tuple(entries))
        assert ref.name is not None
        if ref.alias is not None:
            version = self.store.resolve_alias(ref.name, ref.alias)
        elif ref.latest:
            latest = self.store.get_registered_model(ref.name).latest_version
            if latest is None:
                raise NotFound(f"model {ref.name!r} has no versions")
            version = latest
        else:
            assert ref.version is not None
            version = ref.version
        mv = self.store.get_model_version(ref.name, version)
        if mv.run_id is None:
            raise NotFound(f"{uri}: version {version} has no run holding its files")
        return ResolvedModel(mv.run_id, mv.artifact_path, mv.content_hash, mv)

    def download(self, uri: str) -> Path:
        """The model's files in a local cache directory keyed by content hash (verified)."""
        resolved = self.resolve(uri)
        entries = list(resolved.entries) if resolved.entries is not None else \
            self._model_entries(resolved.run_id, resolved.artifact_path)
        actual = _tree_hash(entries, resolved.artifact_path)
        if resolved.content_hash is not None and actual != resolved.content_hash:
            raise IntegrityError(
                f"{uri}: the files under runs:/{resolved.run_id}/{resolved.artifact_path} "
                f"hash to {actual[:12]}…, but the version records {resolved.content_hash[:12]}…")
        cache = self.tracking.settings.home / "cache" / "models" / actual
        # The cache is checked on every use, not trusted after the first: a file edited
        # under it would otherwise be loaded (and served) as this version.
        if cache.is_dir():
            if _local_tree_hash(cache) == actual:
                return cache
            _discard(cache)
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{actual[:12]}-", dir=cache.parent))
        try:
            self.tracking.download_artifacts(resolved.run_id, resolved.artifact_path, staging)
            got = _local_tree_hash(staging)
            if got != actual:
                raise IntegrityError(
                    f"{uri}: the files downloaded from runs:/{resolved.run_id}/"
                    f"{resolved.artifact_path} hash to {got[:12]}…, not {actual[:12]}…; "
                    "the artifact store is damaged or being written to"
                )
            _make_read_only(staging)
            try:
                os.rename(staging, cache)  # atomic; a concurrent loader may have won
            except OSError:
                if not cache.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if _local_tree_hash(cache) != actual:  # the concurrent winner's copy, checked too
            raise IntegrityError(
                f"{uri}: the cached model files under {cache} do not match the version's "
                "content hash; delete that directory and load again"
            )
        return cache

    def load(self, uri: str, *, trust: bool = False) -> LoadedModel:
        """Load a model by URI; ``trust=True`` is needed for code-executing formats."""
        from ratchet.packaging import load_model

        return load_model(self.download(uri), trust=trust)

    def lineage(self, uri: str) -> Lineage:
        resolved = self.resolve(uri)
        if resolved.version is None:
            raise InvalidInput(f"lineage needs a registered model URI, got {uri!r}")
        # A run deleted with force still backs the version: its lineage still shows it.
        run = (self.tracking.store.get_run(resolved.run_id, include_deleted=True)
               if resolved.run_id else None)
        return Lineage(resolved.version, run)


def _tree_hash(entries: list[ArtifactEntry], artifact_path: str) -> str:
    prefix = artifact_path + "/"
    return hash_tree((e.path[len(prefix):], e.digest) for e in entries)


def _local_tree_hash(directory: Path) -> str:
    """The tree hash of local files, computed like the one recorded at logging time."""
    # A symlink never matches: the recorded tree holds regular files only.
    return hash_tree(
        (p.relative_to(directory).as_posix(), "symlink" if p.is_symlink() else hash_file(str(p)))
        for p in directory.rglob("*")
        if p.is_symlink() or p.is_file()
    )


def _make_read_only(directory: Path) -> None:
    for p in directory.rglob("*"):
        if p.is_file() and not p.is_symlink():
            p.chmod(0o444)


def _discard(cache: Path) -> None:
    """Move a tampered cache entry aside (atomically) and delete it."""
    aside = Path(tempfile.mkdtemp(prefix=f".{cache.name[:12]}-bad-", dir=cache.parent))
    with contextlib.suppress(OSError):  # a concurrent loader moved it already
        os.rename(cache, aside / "tree")
    shutil.rmtree(aside, ignore_errors=True)


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if v == v and abs(v) != float("inf")}
