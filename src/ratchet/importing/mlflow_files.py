"""Reading an MLflow file store (``mlruns/``) for ``ratchet import``.

The layout, as MLflow 2.x and 3.x write it::

    <root>/<experiment_id>/meta.yaml, tags/<key>
    <root>/<experiment_id>/<run_id>/meta.yaml, params/<key>, tags/<key>,
        metrics/<key>  (lines "timestamp value step"; a key with '/' is nested directories)
    <root>/<experiment_id>/models/<model_id>/meta.yaml     (3.x logged models)
    <root>/models/<name>/meta.yaml, tags/<key>, aliases/<alias> (holds the version),
        version-<n>/meta.yaml, version-<n>/tags/<key>
    <root>/.trash/...  (deleted experiments: not read)

Every byte is untrusted: YAML is read with ``safe_load`` from bounded files, symbolic links
are never followed, and fields are type-checked. Plain records out (``store.mlflow_source``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ratchet.errors import InvalidInput, NotFound
from ratchet.store.mlflow_source import (
    DEFAULT_PAGE,
    RUN_STATUS_NAMES,
    MetricPoint,
    SourceExperiment,
    SourceLoggedModel,
    SourceModel,
    SourceRun,
    SourceVersion,
    logged_model_status,
)

MAX_META_BYTES = 1 << 20  # a meta.yaml is a few hundred bytes
MAX_VALUE_BYTES = 1 << 20  # a param or tag value
_NOT_EXPERIMENTS = frozenset({".trash", "models"})
_NOT_RUNS = frozenset({"tags", "models", "datasets", "traces"})


class FileMlflowSource:
    """An MLflow file store directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root)
        if not path.is_dir():
            raise NotFound(f"MLflow store {str(root)!r}: no such directory")
        # MLflow makes <root>/0/meta.yaml (Default) on first use: a directory with no
        # experiment folder and no models/ is another directory, not an empty store.
        if not any((child / "meta.yaml").is_file() for child in _subdirs(path.resolve())) \
                and not (path / "models").is_dir():
            raise InvalidInput(f"{str(root)!r} is not an MLflow file store: it holds no "
                               "<experiment_id>/meta.yaml (give the mlruns directory, or an "
                               "sqlite:/// or postgresql:// URL)")
        self.local_root: Path | None = path.resolve()
        self.root = self.local_root
        self.where = str(self.root)

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- tracking
    def experiments(self) -> list[SourceExperiment]:
        found = []
        for child in _subdirs(self.root):
            if child.name in _NOT_EXPERIMENTS or not (child / "meta.yaml").is_file():
                continue
            meta = read_meta(child / "meta.yaml")
            found.append(SourceExperiment(
                experiment_id=_text(meta, "experiment_id", child) or child.name,
                name=_required(meta, "name", child),
                artifact_location=_text(meta, "artifact_location", child),
                lifecycle_stage=_text(meta, "lifecycle_stage", child) or "active",
                creation_time=_int(meta, "creation_time", child),
                tags=read_values(child / "tags"),
            ))
        return sorted(found, key=lambda e: (len(e.experiment_id), e.experiment_id))

    def _experiment_dir(self, experiment_id: str) -> Path:
        if experiment_id in _NOT_EXPERIMENTS or not _plain_name(experiment_id):
            raise InvalidInput(f"{self.where}: experiment id {experiment_id!r} is not a "
                               "directory name")
        return self.root / experiment_id

    def runs(self, experiment_id: str) -> list[SourceRun]:
        found = []
        for child in _subdirs(self._experiment_dir(experiment_id)):
            if child.name in _NOT_RUNS or not (child / "meta.yaml").is_file():
                continue
            meta = read_meta(child / "meta.yaml")
            status = meta.get("status")
            found.append(SourceRun(
                run_id=_text(meta, "run_uuid", child) or _text(meta, "run_id", child)
                or child.name,
                experiment_id=experiment_id,
                name=_text(meta, "run_name", child),
                status=RUN_STATUS_NAMES.get(status, "RUNNING") if isinstance(status, int)
                else str(status or "RUNNING"),
                start_time=_int(meta, "start_time", child),
                end_time=_int(meta, "end_time", child),
                lifecycle_stage=_text(meta, "lifecycle_stage", child) or "active",
                artifact_uri=_text(meta, "artifact_uri", child),
                user_id=_text(meta, "user_id", child),
                params=read_values(child / "params"),
                tags=read_values(child / "tags"),
            ))
        return sorted(found, key=lambda r: (r.start_time or 0, r.run_id))

    def _run_dir(self, run_id: str) -> Path:
        if not _plain_name(run_id):
            raise InvalidInput(f"{self.where}: run id {run_id!r} is not a directory name")
        for exp in _subdirs(self.root):
            if exp.name not in _NOT_EXPERIMENTS and (exp / run_id / "meta.yaml").is_file():
                return exp / run_id
        raise NotFound(f"{self.where}: no run {run_id!r}")

    def metric_counts(self, run_id: str) -> dict[str, int]:
        counts = {}
        for key, path in _value_files(self._run_dir(run_id) / "metrics"):
            with open(path, "rb") as f:
                counts[key] = sum(1 for line in f if line.strip())
        return counts

    def metric_points(self, run_id: str, keys: Sequence[str] | None = None,
                      page: int = DEFAULT_PAGE) -> Iterator[list[MetricPoint]]:
        wanted = None if keys is None else set(keys)
        batch: list[MetricPoint] = []
        for key, path in sorted(_value_files(self._run_dir(run_id) / "metrics")):
            if wanted is not None and key not in wanted:
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        batch.append(parse_metric_line(key, line, f"{path}:{number}"))
                        if len(batch) >= page:
                            yield batch
                            batch = []
        if batch:
            yield batch

    # ---------------------------------------------------------------- registry
    def registered_models(self) -> list[SourceModel]:
        found = []
        for child in _subdirs(self.root / "models"):
            if not (child / "meta.yaml").is_file():
                continue
            meta = read_meta(child / "meta.yaml")
            aliases = {}
            for alias, text in read_values(child / "aliases").items():
                try:
                    aliases[alias] = int(text.strip())
                except ValueError:
                    raise InvalidInput(f"{child / 'aliases' / alias}: a version number, "
                                       f"got {text[:40]!r}") from None
            found.append(SourceModel(_required(meta, "name", child),
                                     _text(meta, "description", child),
                                     _int(meta, "creation_timestamp", child),
                                     read_values(child / "tags"), aliases))
        return sorted(found, key=lambda m: m.name)

    def model_versions(self, name: str) -> list[SourceVersion]:
        model_dir = self._model_dir(name)
        found = []
        for child in _subdirs(model_dir):
            if not child.name.startswith("version-") or not (child / "meta.yaml").is_file():
                continue
            meta = read_meta(child / "meta.yaml")
            version = _int(meta, "version", child)
            if version is None:
                raise InvalidInput(f"{child / 'meta.yaml'}: no version number")
            found.append(SourceVersion(
                name=name, version=version, source=_text(meta, "source", child),
                storage_location=_text(meta, "storage_location", child),
                run_id=_text(meta, "run_id", child),
                description=_text(meta, "description", child),
                current_stage=_text(meta, "current_stage", child),
                status=_text(meta, "status", child), tags=read_values(child / "tags"),
            ))
        return sorted(found, key=lambda v: v.version)

    def _model_dir(self, name: str) -> Path:
        for child in _subdirs(self.root / "models"):
            if (child / "meta.yaml").is_file() and read_meta(child / "meta.yaml").get(
                    "name") == name:
                return child
        raise NotFound(f"{self.where}: no registered model {name!r}")

    def logged_models(self) -> list[SourceLoggedModel]:
        found = []
        for exp in _subdirs(self.root):
            if exp.name in _NOT_EXPERIMENTS:
                continue
            for child in _subdirs(exp / "models"):
                if not (child / "meta.yaml").is_file():
                    continue
                meta = read_meta(child / "meta.yaml")
                found.append(SourceLoggedModel(
                    model_id=_text(meta, "model_id", child) or child.name,
                    experiment_id=_text(meta, "experiment_id", child) or exp.name,
                    name=_text(meta, "name", child) or "",
                    artifact_location=_text(meta, "artifact_location", child),
                    source_run_id=_text(meta, "source_run_id", child),
                    lifecycle_stage=_text(meta, "lifecycle_stage", child) or "active",
                    status=logged_model_status(meta.get("status")),
                ))
        return sorted(found, key=lambda m: m.model_id)


# -------------------------------------------------------------------- parsing (pure)
def parse_metric_line(key: str, line: str, where: str) -> MetricPoint:
    """One line of a metric file: ``timestamp value [step]`` (old files have no step)."""
    parts = line.split()
    if len(parts) not in (2, 3):
        raise InvalidInput(f"{where}: a metric line is 'timestamp value step', got "
                           f"{line[:60]!r}")
    try:
        timestamp, value = int(parts[0]), float(parts[1])
        step = int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        raise InvalidInput(f"{where}: a metric line is 'timestamp value step' (numbers), "
                           f"got {line[:60]!r}") from None
    return key, (math.nan if math.isnan(value) else value), step, timestamp


def read_meta(path: Path) -> dict[str, Any]:
    """A meta.yaml as a mapping: bounded, ``safe_load`` (no tags that build objects)."""
    import yaml

    text = _read_bounded(path, MAX_META_BYTES)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: a mapping of fields, got {type(data).__name__}")
    return data


def read_values(directory: Path) -> dict[str, str]:
    """Files under ``directory`` as {key: content}; a key with '/' is nested directories."""
    return {key: _read_bounded(path, MAX_VALUE_BYTES) for key, path in _value_files(directory)}


def _value_files(directory: Path) -> list[tuple[str, Path]]:
    """(key, file) for every regular file below ``directory``; symlinks are not followed."""
    if directory.is_symlink() or not directory.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]
        for name in filenames:
            path = base / name
            if not path.is_symlink() and path.is_file():
                found.append((path.relative_to(directory).as_posix(), path))
    return sorted(found)


def _read_bounded(path: Path, limit: int) -> str:
    if path.is_symlink():
        raise InvalidInput(f"{path} is a symbolic link; an MLflow store's files are read "
                           "only where they are")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{path} is larger than {limit} bytes")
    return data.decode("utf-8", errors="replace")


def _subdirs(directory: Path) -> list[Path]:
    if directory.is_symlink() or not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.is_symlink())


def _plain_name(text: str) -> bool:
    return bool(text) and "/" not in text and "\\" not in text and text not in (".", "..")


def _text(meta: dict[str, Any], key: str, where: Path) -> str | None:
    value = meta.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"{where / 'meta.yaml'}: field {key!r} must be text, got "
                           f"{type(value).__name__}")
    return str(value)


def _required(meta: dict[str, Any], key: str, where: Path) -> str:
    value = _text(meta, key, where)
    if value is None:
        raise InvalidInput(f"{where / 'meta.yaml'}: no {key!r} field")
    return value


def _int(meta: dict[str, Any], key: str, where: Path) -> int | None:
    value = meta.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"{where / 'meta.yaml'}: field {key!r} must be a whole number")
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{where / 'meta.yaml'}: field {key!r} must be a whole number, "
                           f"got {value!r}") from None
