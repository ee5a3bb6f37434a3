"""The explicit tracking client. The fluent API (``ratchet.start_run`` …) is a thin layer
over one of these; every piece of state, including the stack of active runs, lives here.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.clock import now_ms
from ratchet.errors import InvalidInput, NotFound
from ratchet.store import (
    ArtifactEntry,
    DatasetInput,
    Experiment,
    Metric,
    Run,
)
from ratchet.tracking import code_version
from ratchet.workspace import Workspace
from ratchet.workspace import resolve as resolve_workspace

if TYPE_CHECKING:
    from ratchet.artifacts import BlobStore

DEFAULT_EXPERIMENT = "default"
MAX_ERROR_CHARS = 20_000


class ActiveRun:
    """The handle ``start_run`` returns; a context manager that ends the run."""

    def __init__(self, client: TrackingClient, run: Run) -> None:
        self.client = client
        self.id = run.run_id
        self.experiment_id = run.experiment_id
        self.name = run.name
        self._ended = False

    @property
    def run_id(self) -> str:
        return self.id

    @property
    def info(self) -> Run:
        return self.client.get_run(self.id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        clean_exit = isinstance(exc, SystemExit) and exc.code in (0, None)
        if exc_type is None or clean_exit:
            self.end("finished")
        elif issubclass(exc_type, KeyboardInterrupt | SystemExit):
            self.end("killed", error=exc_type.__name__)
        else:
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            self.end("failed", error=text[-MAX_ERROR_CHARS:])

    def log_input(self, dataset: Any, role: str = "input") -> None:
        """Record that this run read ``dataset`` (a ``DatasetVersion`` or ``DatasetInput``)."""
        self.client.log_input(self.id, dataset, role=role)

    def end(self, status: str = "finished", error: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self.client._pop_active(self.id)
        self.client.end_run(self.id, status, error=error)

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r}, name={self.name!r})"


class TrackingClient:
    def __init__(self, workspace: Workspace | None = None) -> None:
        self.workspace = resolve_workspace(workspace)
        self.settings = self.workspace.settings
        self.store = self.workspace.stores.tracking
        self._active: ContextVar[tuple[str, ...]] = ContextVar(
            f"ratchet_active_runs_{id(self)}", default=())
        self.workspace.adopt(self)  # the first one made is the one the other clients share

    @property
    def blobs(self) -> BlobStore:
        return self.workspace.blobs

    # ---------------------------------------------------------------- experiments
    def create_experiment(self, name: str, description: str | None = None,
                          tags: Mapping[str, str] | None = None) -> Experiment:
        return self.store.create_experiment(name, description, tags)

    def get_experiment(self, name_or_id: str) -> Experiment:
        return self.store.get_experiment(name_or_id)

    def list_experiments(self) -> list[Experiment]:
        return self.store.list_experiments()

    def run_counts(self) -> dict[str, int]:
        """Number of runs per experiment id."""
        return self.store.run_counts()

    # ---------------------------------------------------------------- run lifecycle
    def create_run(self, experiment: str | None = None, *, name: str | None = None,
                   parent_run_id: str | None = None,
                   tags: Mapping[str, str] | None = None) -> Run:
        """A new run in state ``running``, with its code version captured."""
        exp = self.store.get_or_create_experiment(experiment or DEFAULT_EXPERIMENT)
        return self.store.create_run(exp.experiment_id, name=name, parent_run_id=parent_run_id,
                                     code=code_version.capture(), tags=tags)

    def start_run(self, experiment: str | None = None, *, name: str | None = None,
                  nested: bool = False, run_id: str | None = None,
                  tags: Mapping[str, str] | None = None) -> ActiveRun:
        """Start (or, with ``run_id``, resume) a run and make it the active one."""
        stack = self._active.get()
        if stack and not nested and run_id is None:
            raise InvalidInput(
                f"run {stack[-1]} is already active; end it first or pass nested=True "
                "to start a child run"
            )
        if run_id is not None:
            run = self.store.get_run(run_id)
            self.store.set_run_status(run_id, "running")
        else:
            if nested and stack and experiment is None:
                experiment = self.store.get_run(stack[-1]).experiment_id
            run = self.create_run(experiment, name=name,
                                  parent_run_id=stack[-1] if nested and stack else None,
                                  tags=tags)
        self._active.set((*stack, run.run_id))
        return ActiveRun(self, run)

    @contextmanager
    def activate(self, run_id: str) -> Iterator[None]:
        """Make an existing run the active one in this context (thread) for a block,
        without changing its status: a pipeline step's run while the step executes."""
        token = self._active.set((*self._active.get(), run_id))
        try:
            yield
        finally:
            self._active.reset(token)

    def _pop_active(self, run_id: str) -> None:
        self._active.set(tuple(r for r in self._active.get() if r != run_id))

    def end_active_run(self, status: str = "finished") -> str:
        """End the innermost active run; returns its id."""
        run_id = self.active_run_id()
        if run_id is None:
            raise InvalidInput("no active run to end")
        self._pop_active(run_id)
        self.end_run(run_id, status)
        return run_id

    def active_run_id(self) -> str | None:
        stack = self._active.get()
        return stack[-1] if stack else None

    def end_run(self, run_id: str, status: str = "finished", *, error: str | None = None) -> None:
        self.store.set_run_status(run_id, status, error=error, end_time=now_ms())

    def get_run(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def child_runs(self, run_id: str) -> list[Run]:
        return [self.store.get_run(r) for r in self.store.child_runs(run_id)]

    # ---------------------------------------------------------------- logging
    def log_param(self, run_id: str, key: str, value: object) -> None:
        self.store.log_params(run_id, {key: value})

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        self.store.log_params(run_id, params)

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0,
                   timestamp: int | None = None) -> None:
        self.store.log_metric(run_id, key, value, step, timestamp)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0,
                    timestamp: int | None = None) -> None:
        ts = timestamp or now_ms()
        self.store.log_batch(run_id, [(k, v, step, ts) for k, v in metrics.items()])

    def log_batch(self, run_id: str, metrics: Sequence[Metric | tuple[str, float, int, int]] = (),
                  params: Mapping[str, object] | None = None,
                  tags: Mapping[str, object] | None = None) -> None:
        """Many points at once; metrics as ``Metric`` or ``(key, value, step, timestamp)``."""
        if params:
            self.store.log_params(run_id, params)
        if tags:
            self.store.set_tags(run_id, tags)
        if metrics:
            self.store.log_batch(run_id, [
                (m.key, m.value, m.step, m.timestamp) if isinstance(m, Metric) else m
                for m in metrics])

    def set_tag(self, run_id: str, key: str, value: object) -> None:
        self.store.set_tags(run_id, {key: value})

    def set_tags(self, run_id: str, tags: Mapping[str, object]) -> None:
        self.store.set_tags(run_id, tags)

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.store.metric_history(run_id, key)

    def log_input(self, run_id: str, dataset: Any, role: str | None = None) -> None:
        """Record that the run read a dataset version.

        ``dataset`` is a ``DatasetInput`` or anything with ``as_input(role)`` (a
        ``ratchet.data.DatasetVersion``); ``role`` names its use, e.g. ``"train"``.
        """
        if hasattr(dataset, "as_input"):
            dataset = dataset.as_input(role or "input")
        elif not isinstance(dataset, DatasetInput):
            raise InvalidInput(f"log_input needs a dataset version, got {type(dataset).__name__}")
        elif role is not None and role != dataset.role:
            dataset = DatasetInput(dataset.name, dataset.digest, dataset.version, role,
                                   dataset.source)
        self.store.log_input(run_id, dataset)

    # ---------------------------------------------------------------- artifacts
    def log_artifact(self, run_id: str, local_path: str | Path,
                     artifact_path: str | None = None) -> ArtifactEntry:
        """Store one file; ``artifact_path`` is its name in the run (default: file name)."""
        from ratchet.artifacts import normalize_artifact_path

        path = Path(local_path)
        if path.is_symlink():
            raise InvalidInput(f"{path} is a symlink; symlinks are not followed")
        if not path.is_file():
            raise NotFound(f"no file at {path}")
        name = normalize_artifact_path(artifact_path or path.name)
        self.store.require_run(run_id)  # before uploading anything
        blob = self.blobs.put_file(path)
        entry = ArtifactEntry(name, blob.digest, blob.size)
        self.store.record_artifacts(run_id, [entry])
        return entry

    def log_artifacts(self, run_id: str, local_dir: str | Path,
                      artifact_path: str | None = None) -> list[ArtifactEntry]:
        """Store every file below a directory, under ``artifact_path/`` if given."""
        from ratchet.artifacts import list_directory, normalize_artifact_path

        directory = Path(local_dir)
        if not directory.is_dir():
            raise NotFound(f"no directory at {directory}")
        prefix = normalize_artifact_path(artifact_path) + "/" if artifact_path else ""
        self.store.require_run(run_id)  # before uploading anything
        entries = []
        for rel, file in list_directory(directory):
            blob = self.blobs.put_file(file)
            entries.append(ArtifactEntry(normalize_artifact_path(prefix + rel), blob.digest,
                                         blob.size))
        # Indexed last, in one transaction: a reader sees all of the directory or none.
        self.store.record_artifacts(run_id, entries)
        return entries

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactEntry]:
        from ratchet.artifacts import normalize_artifact_path

        return self.store.list_artifacts(run_id, normalize_artifact_path(path) if path else "")

    def download_artifacts(self, run_id: str, path: str, dest: str | Path) -> Path:
        """Fetch a file or a directory of artifacts into ``dest``, verifying every hash."""
        from ratchet.artifacts import normalize_artifact_path, safe_join

        name = normalize_artifact_path(path)
        entries = self.store.list_artifacts(run_id, name)
        if not entries:
            raise NotFound(f"run {run_id} has no artifact {name!r}")
        dest = Path(dest)
        if len(entries) == 1 and entries[0].path == name:
            target = dest / Path(name).name if dest.is_dir() else dest
            return self.blobs.fetch(entries[0].digest, target)
        for entry in entries:
            rel = entry.path[len(name) + 1:]
            target = safe_join(dest, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.blobs.fetch(entry.digest, target)
        return dest

    def read_artifact(self, run_id: str, path: str) -> bytes:
        from ratchet.artifacts import normalize_artifact_path

        name = normalize_artifact_path(path)
        for entry in self.store.list_artifacts(run_id, name):
            if entry.path == name:
                return self.blobs.read_bytes(entry.digest)
        raise NotFound(f"run {run_id} has no artifact file {name!r}")

    # ---------------------------------------------------------------- search
    def search_runs(self, filter: str | None = None, *, experiments: Sequence[str] | None = None,
                    order_by: Sequence[str] | None = None, max_results: int = 1000,
                    page_token: str | None = None,
                    statuses: Sequence[str] | None = None,
                    include_deleted: bool = False) -> tuple[list[Run], str | None]:
        """Runs matching a filter, as one page plus the token for the next page (deleted
        runs only with ``include_deleted``)."""
        exp_ids = None
        if experiments is not None:
            exp_ids = [self.store.get_experiment(e, include_deleted=include_deleted)
                       .experiment_id for e in experiments]
        return self.store.search_runs(exp_ids, filter, order_by, max_results, page_token,
                                      statuses, include_deleted=include_deleted)
