"""``ratchet import mlflow``: copy an MLflow store into a ratchet workspace, then verify.

What is copied: experiments (matched by name; a new one keeps its MLflow id when that id
is free in ratchet), runs (same run ids; statuses lowercased, start and end times kept),
params, tags, every metric point, artifacts (from local artifact locations under the roots
the user named), registered models with their tags, versions (matched by name and
version), version tags and aliases. Deleted MLflow experiments, runs and versions are not
copied.

Idempotent: a rerun compares before it writes. A run already in ratchet gets only what it
lacks: missing params and tags, artifact paths not yet indexed, and per metric key the
points ratchet does not have (counted first; when the counts differ, the multiset
difference of (step, timestamp, value)), then its final status. So a run that was still
running at the last import gets exactly its new points.

Hostile sources: every location the source names (an experiment's ``artifact_location``,
a run's ``artifact_uri``, a version's ``source``) is resolved and must lie under an
artifact root the user named (default: the directory holding the store); symbolic links
are never followed; no code in the source is run.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from ratchet.errors import InvalidInput, NotFound, RatchetError
from ratchet.hashing import hash_tree, hasher
from ratchet.registry.mlflow_tags import MODEL_ID_TAG, RUN_ID_TAG, SOURCE_TAG
from ratchet.store.mlflow_source import (
    MetricPoint,
    MlflowSource,
    SourceExperiment,
    SourceLoggedModel,
    SourceModel,
    SourceRun,
    SourceVersion,
)
from ratchet.store.records import ArtifactEntry, CodeVersion, Run

if TYPE_CHECKING:
    from ratchet.workspace import Workspace

# phase ("runs", "models"), done, total: what the CLI's progress bar shows
Progress = Callable[[str, int, int], None]

BATCH_POINTS = 50_000  # metric points per log_batch: one transaction each
BATCH_ARTIFACTS = 500  # artifact entries indexed per transaction
MANIFEST_FILENAME = "ratchet-model.json"  # = ratchet.packaging.manifest.MANIFEST_FILENAME
MLMODEL_FILENAME = "MLmodel"
LOGGED_MODELS_DIR = "models"  # a logged model's files in its run: models/<model_id>/...
ALIAS_ACTOR = "ratchet import mlflow"
# What MLflow's API answers for a version and ratchet's record has no field for, in hidden
# version tags: the names ratchet.server.mlflow.registry_messages reads (a layer above).
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # it becomes a path segment
_STATUSES = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished",
             "FAILED": "failed", "KILLED": "killed"}


def open_source(source: str) -> MlflowSource:
    """The MLflow store named by ``source``: an ``sqlite:///`` or ``postgresql://`` URL, an
    SQLite file, or a file store directory (``mlruns``, or a ``file://`` URL to one)."""
    from ratchet.importing.mlflow_files import FileMlflowSource
    from ratchet.store.mlflow_source import SqlMlflowSource, sql_url

    if source.startswith("file://"):
        return FileMlflowSource(_file_url_path(source))
    url = sql_url(source)
    return FileMlflowSource(source) if url is None else SqlMlflowSource(url)


# ------------------------------------------------------------------------ report
@dataclass
class Copied:
    """What an import wrote (or, in a dry run, would write)."""

    experiments: int = 0
    runs: int = 0
    runs_updated: int = 0
    runs_unchanged: int = 0
    params: int = 0
    tags: int = 0
    metric_points: int = 0
    artifacts: int = 0
    registered_models: int = 0
    model_versions: int = 0
    aliases: int = 0


@dataclass
class Verification:
    """Source and ratchet counts, and the runs whose digests differ."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind: (source, ratchet)
    mismatched_runs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatched_runs and all(s == r for s, r in self.counts.values())


@dataclass
class ImportReport:
    source: str
    dry_run: bool
    copied: Copied = field(default_factory=Copied)
    skipped: list[str] = field(default_factory=list)  # left out on purpose (deleted, ...)
    problems: list[str] = field(default_factory=list)  # could not be copied, and why
    verification: Verification | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "dry_run": self.dry_run,
                               "copied": asdict(self.copied), "skipped": list(self.skipped),
                               "problems": list(self.problems)}
        if self.verification is not None:
            out["verification"] = {
                "ok": self.verification.ok,
                "counts": {k: {"source": s, "ratchet": r}
                           for k, (s, r) in self.verification.counts.items()},
                "mismatched_runs": list(self.verification.mismatched_runs),
            }
        return out


# ------------------------------------------------------------------------ locations
def _file_url_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise InvalidInput(f"{uri!r}: a file URL on another host cannot be read")
    return unquote(parsed.path)


class ArtifactRoots:
    """Turns the artifact locations a source names into local directories, only under the
    roots the user allowed. ``mlflow-artifacts:`` URIs are paths under the first root
    (the MLflow server's ``--artifacts-destination``)."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [Path(r).resolve() for r in roots]

    def local_dir(self, uri: str) -> Path:
        if not self.roots:
            raise InvalidInput("no artifact root to read from: pass --artifacts-root DIR")
        if uri.startswith("mlflow-artifacts:"):
            rest = urlparse(uri).path.lstrip("/")
            path = self.roots[0] / unquote(rest)
        elif uri.startswith("file:"):
            path = Path(_file_url_path(uri))
        elif "://" in uri or (":" in uri.split("/", 1)[0] and not Path(uri).is_absolute()):
            raise InvalidInput(f"artifact location {uri!r}: only local paths, file:// and "
                               "mlflow-artifacts: locations can be imported")
        else:
            path = Path(uri)
        if not path.is_absolute():
            raise InvalidInput(f"artifact location {uri!r} is a relative path")
        real = path.resolve()  # ``..`` and symlinks resolved before the check
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise InvalidInput(f"artifact location {uri!r} is outside the artifact root "
                               f"({allowed}); not read (pass --artifacts-root to allow it)")
        return real


def _strip_file_scheme(uri: str) -> str:
    return _file_url_path(uri) if uri.startswith("file:") else uri


def under(location: str, base: str) -> str | None:
    """``location`` relative to ``base`` ("" for itself), comparing the URIs as written
    (file:// and plain paths alike), or None when it is not under it."""
    loc, root = _strip_file_scheme(location).rstrip("/"), _strip_file_scheme(base).rstrip("/")
    if loc == root:
        return ""
    if root and loc.startswith(root + "/"):
        return loc[len(root) + 1:]
    return None


# ------------------------------------------------------------------------ digests
def _value_key(value: float) -> str:
    return repr(float(value))  # nan -> 'nan', inf -> 'inf', exact otherwise


def run_digest(params: dict[str, str], tags: dict[str, str],
               points: Iterable[MetricPoint]) -> tuple[str, int]:
    """One digest of a run's params, tags and metric points (order-independent) and the
    number of points: what the verification compares between MLflow and ratchet."""
    h = hasher()
    for kind, values in (("param", params), ("tag", tags)):
        for key in sorted(values):
            h.update(f"{kind}\0{key}\0{values[key]}\n".encode())
    lines = sorted(f"metric\0{k}\0{s}\0{t}\0{_value_key(v)}\n" for k, v, s, t in points)
    for line in lines:
        h.update(line.encode())
    return h.hexdigest(), len(lines)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# ------------------------------------------------------------------------ the copier
@dataclass
class _Files:
    """Where a model version's files are: a run's artifacts at ``path``, and (for an
    MLflow 3 logged model) the local directory they are copied from first."""

    run_id: str
    path: str
    local_dir: str | None = None
    model_id: str | None = None  # an MLflow 3 logged model's


class MlflowImporter:
    def __init__(self, workspace: Workspace, source: MlflowSource, *,
                 artifacts_roots: Sequence[Path] = (), experiments: Sequence[str] = (),
                 dry_run: bool = False, progress: Progress | None = None,
                 page: int = BATCH_POINTS) -> None:
        self.ws = workspace
        self.tracking = workspace.stores.tracking
        self.registry = workspace.stores.registry
        self.blobs = workspace.blobs
        self.source = source
        roots = list(artifacts_roots) or ([source.local_root] if source.local_root else [])
        self.roots = ArtifactRoots(roots)
        self.selected = tuple(experiments)
        self.dry_run = dry_run
        self.progress = progress or (lambda phase, done, total: None)
        self.page = page
        self.report = ImportReport(source.where, dry_run)
        self._runs: dict[str, SourceRun] = {}  # imported (selected, active) source runs
        self._failed_runs: set[str] = set()
        self._experiment_ids: dict[str, str] = {}  # MLflow experiment id -> ratchet's
        self._logged: dict[str, _Files] = {}  # copied logged models: where their files are

    def run(self) -> ImportReport:
        experiments = self._selected_experiments()
        plan: list[tuple[SourceExperiment, list[SourceRun]]] = []
        for exp in experiments:
            runs = []
            for r in self.source.runs(exp.experiment_id):
                if r.lifecycle_stage == "deleted":
                    self.report.skipped.append(f"run {r.run_id}: deleted in MLflow")
                else:
                    runs.append(r)
            plan.append((exp, runs))
        total, done = sum(len(runs) for _, runs in plan), 0
        self.progress("runs", 0, total)
        for exp, runs in plan:
            exp_id = self._experiment(exp)
            if exp_id is not None:
                self._experiment_ids[exp.experiment_id] = exp_id
            for r in runs:
                self._runs[r.run_id] = r
                if exp_id is None:
                    self._failed_runs.add(r.run_id)
                else:
                    self._import_run(r, exp_id)
                done += 1
                self.progress("runs", done, total)
        self._import_registry()
        if not self.dry_run:
            self.report.verification = self.verify()
        return self.report

    # ---------------------------------------------------------------- experiments
    def _selected_experiments(self) -> list[SourceExperiment]:
        found = []
        all_experiments = self.source.experiments()
        names = {e.name for e in all_experiments}
        for name in self.selected:
            if name not in names:
                raise NotFound(f"{self.source.where}: no experiment named {name!r}")
        for exp in all_experiments:
            if self.selected and exp.name not in self.selected:
                continue
            if exp.lifecycle_stage == "deleted":
                self.report.skipped.append(f"experiment {exp.name!r}: deleted in MLflow")
                continue
            found.append(exp)
        return found

    def _experiment(self, exp: SourceExperiment) -> str | None:
        """The ratchet experiment id for ``exp`` (created if needed), or None."""
        existing = {e.name: e for e in self.tracking.list_experiments(include_deleted=True)}
        match = existing.get(exp.name)
        if match is not None:
            if match.deleted_at is not None:
                self._problem(f"experiment {exp.name!r}: deleted in ratchet; its runs were not "
                              f"copied (restore it: ratchet experiments restore {exp.name})")
                return None
            return match.experiment_id
        taken = {e.experiment_id for e in existing.values()}
        chosen = exp.experiment_id if exp.experiment_id not in taken else None
        self.report.copied.experiments += 1
        if self.dry_run:
            return exp.experiment_id
        try:
            try:
                return self.tracking.create_experiment(exp.name, tags=exp.tags or None,
                                                       experiment_id=chosen).experiment_id
            except InvalidInput:
                if chosen is None:
                    raise
                # An id ratchet does not accept: a new one.
                return self.tracking.create_experiment(exp.name, tags=exp.tags or None
                                                       ).experiment_id
        except RatchetError as exc:
            self.report.copied.experiments -= 1
            self._problem(f"experiment {exp.name!r}: {exc}; its runs were not copied")
            return None

    # ---------------------------------------------------------------- runs
    def _import_run(self, src: SourceRun, exp_id: str) -> None:
        try:
            current: Run | None = self.tracking.get_run(src.run_id, include_deleted=True)
        except NotFound:
            current = None
        except InvalidInput as exc:
            self._failed_runs.add(src.run_id)
            self._problem(f"run {src.run_id}: {exc}")
            return
        if current is not None:
            if current.experiment_id != exp_id:
                self._failed_runs.add(src.run_id)
                self._problem(f"run {src.run_id}: already in ratchet in another experiment "
                              f"({current.experiment_id}); not copied")
                return
            if current.deleted_at is not None:
                self._failed_runs.add(src.run_id)
                self.report.skipped.append(f"run {src.run_id}: deleted in ratchet")
                return
        before = asdict(self.report.copied)
        try:
            self._copy_run(src, exp_id, current)
        except RatchetError as exc:
            self._failed_runs.add(src.run_id)
            self._problem(f"run {src.run_id}: {exc}")
            return
        after = self.report.copied
        if current is None:
            after.runs += 1
        elif any(v != before[k] for k, v in asdict(after).items()):
            after.runs_updated += 1
        else:
            after.runs_unchanged += 1

    def _copy_run(self, src: SourceRun, exp_id: str, current: Run | None) -> None:
        copied = self.report.copied
        have_params = current.params if current else {}
        have_tags = current.tags if current else {}
        new_tags = {k: v for k, v in src.tags.items() if have_tags.get(k) != v}
        if current is None and not self.dry_run:
            parent = src.tags.get("mlflow.parentRunId")
            if parent is not None and not self._exists(parent):
                parent = None  # not imported (yet): the tag still names it
            self.tracking.create_run(
                exp_id, name=src.name or src.tags.get("mlflow.runName"),
                parent_run_id=parent, code=CodeVersion(user=src.user_id),
                tags=new_tags or None, start_time=src.start_time, run_id=src.run_id)
            copied.tags += len(new_tags)
            new_tags = {}
        new_params = {k: v for k, v in src.params.items() if k not in have_params}
        for k, v in src.params.items():
            if k in have_params and have_params[k] != v:
                self._problem(f"run {src.run_id}: param {k!r} is {have_params[k]!r} in ratchet "
                              f"and {v!r} in MLflow; kept ratchet's")
        if new_params and not self.dry_run:
            self.tracking.log_params(src.run_id, new_params)
        copied.params += len(new_params)
        if new_tags and not self.dry_run:
            self.tracking.set_tags(src.run_id, new_tags)
        copied.tags += len(new_tags)
        self._copy_metrics(src, exists=current is not None)
        self._copy_artifacts(src, exists=current is not None)
        # The status last: a run cut short by a crash stays running and is finished next time.
        status = new_status(src, current)
        if status is not None and not self.dry_run:
            self.tracking.set_run_status(src.run_id, status, end_time=src.end_time)

    def _exists(self, run_id: str) -> bool:
        try:
            self.tracking.require_run(run_id)
        except (NotFound, InvalidInput):
            return False
        return True

    def _copy_metrics(self, src: SourceRun, *, exists: bool) -> None:
        counts = self.source.metric_counts(src.run_id)
        if not counts:
            return
        have = {key: self.tracking.metric_window(src.run_id, key, points=1).count
                for key in counts} if exists else {}
        whole = [k for k, n in counts.items() if have.get(k, 0) == 0]
        partial = [k for k, n in counts.items() if 0 < have.get(k, 0) < n]
        for k, n in counts.items():
            if have.get(k, 0) > n:
                self._problem(f"run {src.run_id}: metric {k!r} has {have[k]} points in ratchet, "
                              f"more than MLflow's {n}; left as is")
        if whole:
            keys = None if len(whole) == len(counts) else whole
            self._log_points(src.run_id, (p for page in self.source.metric_points(
                src.run_id, keys, self.page) for p in page))
        for key in partial:
            stored = Counter((m.step, m.timestamp, _value_key(m.value))
                             for m in self.tracking.metric_history(src.run_id, key))
            self._log_points(src.run_id, _missing(stored, (
                p for page in self.source.metric_points(src.run_id, [key], self.page)
                for p in page)))

    def _log_points(self, run_id: str, points: Iterable[MetricPoint]) -> None:
        batch: list[MetricPoint] = []
        for point in points:
            batch.append(point)
            if len(batch) >= self.page:
                self._write_points(run_id, batch)
                batch = []
        if batch:
            self._write_points(run_id, batch)

    def _write_points(self, run_id: str, batch: list[MetricPoint]) -> None:
        if not self.dry_run:
            self.tracking.log_batch(run_id, batch)
        self.report.copied.metric_points += len(batch)

    def _source_files(self, uri: str | None, what: str) -> list[tuple[str, Path]]:
        """(artifact path, local file) under the location ``uri``; a location that cannot
        be read is reported, a missing directory is simply empty (nothing logged)."""
        from ratchet.artifacts import list_directory

        if not uri:
            return []
        try:
            directory = self.roots.local_dir(uri)
            return list_directory(directory) if directory.is_dir() else []
        except InvalidInput as exc:
            self._problem(f"{what}: artifacts not read: {exc}")
            return []

    def _copy_artifacts(self, src: SourceRun, *, exists: bool) -> None:
        files = self._source_files(src.artifact_uri, f"run {src.run_id}")
        self._store_files(src.run_id, "", files, exists=exists)

    def _store_files(self, run_id: str, prefix: str, files: Sequence[tuple[str, Path]], *,
                     exists: bool) -> None:
        if not files:
            return
        have = ({e.path for e in self.tracking.list_artifacts(run_id, prefix)}
                if exists and not self.dry_run else set())
        new = [(f"{prefix}/{rel}" if prefix else rel, path) for rel, path in files]
        new = [(rel, path) for rel, path in new if rel not in have]
        for chunk in _chunks(new, BATCH_ARTIFACTS):
            if not self.dry_run:
                entries = []
                for rel, path in chunk:
                    blob = self.blobs.put_file(path)
                    entries.append(ArtifactEntry(rel, blob.digest, blob.size))
                self.tracking.record_artifacts(run_id, entries)
            self.report.copied.artifacts += len(chunk)

    # ---------------------------------------------------------------- registry
    def _import_registry(self) -> None:
        models = self.source.registered_models()
        logged = {m.model_id: m for m in self.source.logged_models()}
        for one in logged.values():
            if one.experiment_id in self._experiment_ids and one.lifecycle_stage != "deleted":
                try:
                    self._import_logged_model(one)
                except RatchetError as exc:
                    self._problem(f"logged model {one.model_id}: {exc}")
        wanted = []
        for model in models:
            versions = self.source.model_versions(model.name)
            if self.selected and not any(v.run_id in self._runs for v in versions):
                continue  # none of its versions came from the chosen experiments
            wanted.append((model, versions))
        self.progress("models", 0, len(wanted))
        for done, (model, versions) in enumerate(wanted, 1):
            try:
                self._import_model(model, versions, logged)
            except RatchetError as exc:
                self._problem(f"registered model {model.name!r}: {exc}")
            self.progress("models", done, len(wanted))

    def _import_logged_model(self, model: SourceLoggedModel) -> None:
        """An MLflow 3 logged model as ratchet's logged-model record (same id), its files
        in its holder run (its source run, or one made for it) under models/<id>/."""
        if self.dry_run:
            return
        store = self.ws.stores.logged_models
        try:
            record = store.get(model.model_id, include_deleted=True)
            exists = True
        except NotFound:
            source_run = model.source_run_id
            if source_run is not None and (source_run in self._failed_runs
                                           or not self._exists(source_run)):
                source_run = None
            record = store.create(self._experiment_ids[model.experiment_id],
                                  name=model.name or None, source_run_id=source_run,
                                  model_id=model.model_id)
            exists = False
        if record.deleted_at is not None:
            self.report.skipped.append(f"logged model {model.model_id}: deleted in ratchet")
            return
        files = _Files(record.artifact_run_id, record.artifact_path, model_id=model.model_id)
        self._store_files(files.run_id, files.path,
                          self._source_files(model.artifact_location,
                                             f"logged model {model.model_id}"), exists=exists)
        if record.status != model.status:
            store.finalize(model.model_id, model.status)
        self._logged[model.model_id] = files

    def _import_model(self, model: SourceModel, versions: list[SourceVersion],
                      logged: dict[str, SourceLoggedModel]) -> None:
        copied = self.report.copied
        try:
            current = self.registry.get_registered_model(model.name, include_deleted=True)
        except NotFound:
            current = None
        if current is not None and current.deleted_at is not None:
            self._problem(f"registered model {model.name!r}: deleted in ratchet; not copied")
            return
        if current is None:
            copied.registered_models += 1
            if self.dry_run:
                copied.model_versions += sum(not v.deleted for v in versions)
                copied.aliases += len(model.aliases)
                return
            self.registry.create_registered_model(model.name, model.description,
                                                  model.tags or None)
        else:
            for key, value in model.tags.items():
                if current.tags.get(key) != value and not self.dry_run:
                    self.registry.set_registered_model_tag(model.name, key, value)
        have = {v.version: v for v in self.registry.list_model_versions(
            model.name, include_deleted=True)} if not (self.dry_run and current is None) else {}
        foreign: set[int] = set()  # numbers ratchet already gave to other files
        for version in versions:
            label = f"model {model.name!r} version {version.version}"
            if version.deleted:
                self.report.skipped.append(f"{label}: deleted in MLflow")
                continue
            if version.version in have:
                if not self._update_version(version, have[version.version], logged, label):
                    foreign.add(version.version)
                continue
            if version.version <= max(have, default=0):
                self._problem(f"{label}: not copied: ratchet's versions of this model already "
                              f"go up to {max(have)} (its numbers only grow)")
                continue
            try:
                created = self._create_version(version, logged, label)
            except RatchetError as exc:
                self._problem(f"{label}: not copied: {exc}")
                continue
            if created is not None:
                have[created] = self.registry.get_model_version(model.name, created,
                                                                include_deleted=True)
        live = self.registry.get_registered_model(model.name).aliases if not self.dry_run \
            else {}
        for alias, number in model.aliases.items():
            if live.get(alias) == number:
                continue
            if number not in have or number in foreign:
                self._problem(f"model {model.name!r}: alias {alias!r} points at version "
                              f"{number}, which was not copied")
                continue
            if not self.dry_run:
                self.registry.set_alias(model.name, alias, number, actor=ALIAS_ACTOR,
                                        reason=f"imported from MLflow ({self.source.where})")
            copied.aliases += 1

    def _update_version(self, version: SourceVersion, current: Any,
                        logged: dict[str, SourceLoggedModel], label: str) -> bool:
        """Bring an already copied version's tags up to date; False (and a problem) when
        ratchet's version of that number holds other files."""
        files = self._version_files(version, logged)
        if isinstance(files, str) or (current.run_id, current.artifact_path) != (
                files.run_id, files.path):
            self._problem(f"{label}: ratchet already has a version {version.version} of other "
                          f"files (run {current.run_id}, {current.artifact_path!r}); not merged")
            return False
        for key, value in version.tags.items():
            if current.tags.get(key) != value and not self.dry_run:
                self.registry.set_model_version_tag(version.name, version.version, key, value)
        return True

    def _create_version(self, version: SourceVersion, logged: dict[str, SourceLoggedModel],
                        label: str) -> int | None:
        files = self._version_files(version, logged)
        if isinstance(files, str):
            self._problem(f"{label}: not copied: {files}")
            return None
        if files.run_id in self._failed_runs or not (files.run_id in self._runs
                                                      or self._exists(files.run_id)):
            self._problem(f"{label}: not copied: its run {files.run_id} is not in ratchet")
            return None
        if files.local_dir is not None:  # a logged model: its files join its run's artifacts
            self._store_files(files.run_id, files.path,
                              self._source_files(files.local_dir, label), exists=True)
        self.report.copied.model_versions += 1
        if self.dry_run:
            return version.version
        entries = self.tracking.list_artifacts(files.run_id, files.path)
        names = {e.path[len(files.path) + 1:]: e for e in entries}
        if MANIFEST_FILENAME in names:
            manifest = json.loads(self.blobs.read_bytes(names[MANIFEST_FILENAME].digest))
        elif MLMODEL_FILENAME in names:
            manifest, entry = self._write_manifest(files, names, label)
            entries.append(entry)
        else:
            self.report.copied.model_versions -= 1
            self._problem(f"{label}: not copied: no {MLMODEL_FILENAME} in run {files.run_id} "
                          f"at {files.path!r}")
            return None
        content_hash = hash_tree((e.path[len(files.path) + 1:], e.digest) for e in entries)
        tags = dict(version.tags)
        if files.model_id is not None:  # MLflow's API shows it as a logged model's version
            tags[MODEL_ID_TAG] = files.model_id
            tags[SOURCE_TAG] = f"models:/{files.model_id}"
            if version.run_id:
                tags[RUN_ID_TAG] = version.run_id
        created = self.registry.create_model_version(
            version.name, run_id=files.run_id, artifact_path=files.path,
            content_hash=content_hash, flavor=str(manifest.get("flavor", "mlflow")),
            manifest=manifest, description=version.description, created_by=None,
            tags=tags or None, version=version.version)
        return created.version

    def _write_manifest(self, files: _Files, names: dict[str, ArtifactEntry], label: str
                        ) -> tuple[dict[str, Any], ArtifactEntry]:
        """Write ratchet's manifest beside MLflow's MLmodel (a new artifact of the run)."""
        try:
            from ratchet.packaging.mlflow_format import manifest_for_mlflow_model
        except ImportError:
            raise InvalidInput("this ratchet cannot read MLflow's model format yet "
                               "(ratchet.packaging.mlflow_format)") from None
        text = self.blobs.read_bytes(names[MLMODEL_FILENAME].digest).decode("utf-8", "replace")
        manifest = manifest_for_mlflow_model(text, label, files=sorted(names))
        blob = self.blobs.put_bytes(manifest.to_json().encode())
        entry = ArtifactEntry(f"{files.path}/{MANIFEST_FILENAME}", blob.digest, blob.size)
        self.tracking.record_artifacts(files.run_id, [entry])
        self.report.copied.artifacts += 1
        return json.loads(manifest.to_json()), entry

    def _version_files(self, version: SourceVersion, logged: dict[str, SourceLoggedModel]
                       ) -> _Files | str:
        """Where the version's files are, or why that cannot be told."""
        from ratchet.artifacts import normalize_artifact_path

        source = version.source or ""
        if source.startswith("runs:/"):
            run_id, _, path = source[len("runs:/"):].partition("/")
            try:
                return _Files(run_id, normalize_artifact_path(path))
            except InvalidInput as exc:
                return f"source {source!r}: {exc}"
        if source.startswith("models:/"):
            model_id = source[len("models:/"):].strip("/")
            if model_id in logged:
                return self._logged_files(logged[model_id])
            return f"source {source!r} names no logged model of this store"
        location = version.storage_location or source
        if not location:
            return "it has no source"
        for model in logged.values():
            if model.artifact_location and under(location, model.artifact_location) == "":
                return self._logged_files(model)
        runs = [self._runs[version.run_id]] if version.run_id in self._runs else []
        runs += [r for r in self._runs.values() if r.run_id != version.run_id]
        for r in runs:
            rel = under(location, r.artifact_uri) if r.artifact_uri else None
            if rel:
                try:
                    return _Files(r.run_id, normalize_artifact_path(rel))
                except InvalidInput as exc:
                    return f"source {location!r}: {exc}"
        return (f"its files ({location!r}) are not under the artifacts of any copied run "
                "or logged model")

    def _logged_files(self, model: SourceLoggedModel) -> _Files | str:
        if model.model_id in self._logged:  # copied with its record: files already there
            return self._logged[model.model_id]
        if not model.source_run_id:
            return (f"logged model {model.model_id} was logged outside a run; ratchet keeps "
                    "a model's files in a run")
        if not model.artifact_location:
            return f"logged model {model.model_id} has no artifact location"
        if not _MODEL_ID.fullmatch(model.model_id):
            return f"logged model id {model.model_id!r} is not an id"
        return _Files(model.source_run_id, f"{LOGGED_MODELS_DIR}/{model.model_id}",
                      model.artifact_location, model.model_id)

    # ---------------------------------------------------------------- verification
    def verify(self) -> Verification:
        """Counts of experiments, runs, params, tags, metric points, artifacts, versions and
        aliases in the source (what was selected) and in ratchet, and a digest per run."""
        result = Verification()
        counts = {k: [0, 0] for k in ("experiments", "runs", "params", "tags", "metric_points",
                                      "artifacts", "model_versions", "aliases")}
        exp_ids = {r.experiment_id for r in self._runs.values()}
        names = {e.name for e in self.tracking.list_experiments()}
        for exp in self._selected_experiments_quiet():
            counts["experiments"][0] += 1
            counts["experiments"][1] += exp.name in names
        del exp_ids
        for src in self._runs.values():
            counts["runs"][0] += 1
            counts["params"][0] += len(src.params)
            counts["tags"][0] += len(src.tags)
            src_digest, src_points = run_digest(src.params, src.tags, (
                p for page in self.source.metric_points(src.run_id, None, self.page)
                for p in page))
            counts["metric_points"][0] += src_points
            files = self._source_files_quiet(src.artifact_uri)
            counts["artifacts"][0] += len(files)
            try:
                run = self.tracking.get_run(src.run_id)
            except (NotFound, InvalidInput):
                result.mismatched_runs.append(src.run_id)
                continue
            counts["runs"][1] += 1
            params = {k: v for k, v in run.params.items() if k in src.params}
            tags = {k: v for k, v in run.tags.items() if k in src.tags}
            counts["params"][1] += len(params)
            counts["tags"][1] += len(tags)
            points = [(m.key, m.value, m.step, m.timestamp) for key in run.metrics
                      for m in self.tracking.metric_history(src.run_id, key)]
            digest, n = run_digest(params, tags, points)
            counts["metric_points"][1] += n
            if digest != src_digest:
                result.mismatched_runs.append(src.run_id)
            indexed = {e.path: e.size for e in self.tracking.list_artifacts(src.run_id)}
            counts["artifacts"][1] += sum(indexed.get(rel) == path.stat().st_size
                                          for rel, path in files)
        for model in self.source.registered_models():
            versions = [v for v in self.source.model_versions(model.name) if not v.deleted]
            if self.selected and not any(v.run_id in self._runs for v in versions):
                continue
            try:
                current = self.registry.get_registered_model(model.name)
                have = {v.version: v.run_id
                        for v in self.registry.list_model_versions(model.name)}
            except NotFound:
                current, have = None, {}
            counts["model_versions"][0] += len(versions)
            counts["model_versions"][1] += sum(  # the number, and the same run's files
                v.version in have and v.run_id in (None, have[v.version]) for v in versions)
            counts["aliases"][0] += len(model.aliases)
            if current is not None:
                counts["aliases"][1] += sum(current.aliases.get(a) == n
                                            for a, n in model.aliases.items())
        result.counts = {k: (s, r) for k, (s, r) in counts.items()}
        return result

    def _selected_experiments_quiet(self) -> list[SourceExperiment]:
        return [e for e in self.source.experiments() if e.lifecycle_stage != "deleted"
                and (not self.selected or e.name in self.selected)]

    def _source_files_quiet(self, uri: str | None) -> list[tuple[str, Path]]:
        from ratchet.artifacts import list_directory

        try:
            directory = self.roots.local_dir(uri) if uri else None
            return list_directory(directory) if directory and directory.is_dir() else []
        except InvalidInput:
            return []

    def _problem(self, message: str) -> None:
        self.report.problems.append(message)


def new_status(src: SourceRun, current: Run | None) -> str | None:
    """The status to give the ratchet run (None: it is right already). A new run starts
    running, so a running MLflow run needs nothing; MLflow's SCHEDULED is running."""
    status = _STATUSES.get(src.status.upper(), "running")
    if current is None:
        return None if status == "running" else status
    if status != current.status:
        return status
    ended = status != "running" and src.end_time is not None
    return status if ended and src.end_time != current.end_time else None


def _missing(stored: Counter[tuple[int, int, str]],
             points: Iterable[MetricPoint]) -> Iterator[MetricPoint]:
    """The points not already stored (a multiset difference on step, time and value)."""
    for point in points:
        mark = (point[2], point[3], _value_key(point[1]))
        if stored[mark] > 0:
            stored[mark] -= 1
        else:
            yield point


def import_mlflow(source: str, *, workspace: Workspace | None = None,
                  artifacts_roots: Sequence[str | Path] = (), experiments: Sequence[str] = (),
                  dry_run: bool = False, progress: Progress | None = None) -> ImportReport:
    """Copy the MLflow store ``source`` into the workspace (default: the ambient one) and
    verify the copy; see the module's docstring."""
    from ratchet.workspace import resolve

    ws = resolve(workspace)
    store = open_source(source)
    try:
        return MlflowImporter(ws, store, artifacts_roots=[Path(r) for r in artifacts_roots],
                              experiments=experiments, dry_run=dry_run,
                              progress=progress).run()
    finally:
        store.close()
