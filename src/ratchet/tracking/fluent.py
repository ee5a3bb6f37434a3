"""The fluent API: module-level functions over a default ``TrackingClient``.

It keeps no state of its own: the default client is looked up by the settings that
select it (working directory and ``RATCHET_*`` variables), and the active-run stack lives
in that client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ratchet.errors import InvalidInput
from ratchet.store import ArtifactEntry, DatasetInput, Metric, Run
from ratchet.tracking.client import ActiveRun, TrackingClient
from ratchet.workspace import Workspace
from ratchet.workspace import resolve as resolve_workspace


def client(workspace: Workspace | None = None) -> TrackingClient:
    """The tracking client of ``workspace`` (default: the ambient one,
    ``ratchet.workspace.current()``). The functions that act on the active run use the
    ambient workspace: choose another with ``ratchet.workspace.use(workspace)``."""
    return resolve_workspace(workspace).client(TrackingClient)


def _active() -> str:
    run_id = client().active_run_id()
    if run_id is None:
        raise InvalidInput("no active run: wrap the code in `with ratchet.start_run(): ...`")
    return run_id


def start_run(experiment: str | None = None, *, name: str | None = None, nested: bool = False,
              run_id: str | None = None, tags: Mapping[str, str] | None = None) -> ActiveRun:
    """Start a run (a child run with ``nested=True``); use it as a context manager."""
    return client().start_run(experiment, name=name, nested=nested, run_id=run_id, tags=tags)


def active_run_id() -> str | None:
    return client().active_run_id()


def end_run(status: str = "finished") -> None:
    """End the active run started without ``with``."""
    client().end_active_run(status)


def log_param(key: str, value: object) -> None:
    client().log_param(_active(), key, value)


def log_params(params: Mapping[str, object]) -> None:
    client().log_params(_active(), params)


def log_metric(key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
    client().log_metric(_active(), key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, float], step: int = 0,
                timestamp: int | None = None) -> None:
    client().log_metrics(_active(), metrics, step, timestamp)


def log_batch(metrics: Sequence[Metric | tuple[str, float, int, int]] = (),
              params: Mapping[str, object] | None = None,
              tags: Mapping[str, object] | None = None) -> None:
    client().log_batch(_active(), metrics, params, tags)


def set_tag(key: str, value: object) -> None:
    client().set_tag(_active(), key, value)


def set_tags(tags: Mapping[str, object]) -> None:
    client().set_tags(_active(), tags)


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> ArtifactEntry:
    return client().log_artifact(_active(), local_path, artifact_path)


def log_artifacts(local_dir: str | Path, artifact_path: str | None = None) -> list[ArtifactEntry]:
    return client().log_artifacts(_active(), local_dir, artifact_path)


def log_input(dataset: DatasetInput | Any, role: str | None = None) -> None:
    """Record that the active run read ``dataset`` (a ``ratchet.data.DatasetVersion``)."""
    client().log_input(_active(), dataset, role=role)


def get_run(run_id: str, *, workspace: Workspace | None = None) -> Run:
    return client(workspace).get_run(run_id)


class RunPage(list[Run]):
    """One page of search results; ``next_page_token`` fetches the next (None: no more)."""

    def __init__(self, runs: list[Run], next_page_token: str | None) -> None:
        super().__init__(runs)
        self.next_page_token = next_page_token


def search_runs(filter: str | None = None, *, experiments: Sequence[str] | None = None,
                order_by: Sequence[str] | None = None, max_results: int = 1000,
                page_token: str | None = None, include_deleted: bool = False,
                workspace: Workspace | None = None) -> RunPage:
    """Runs matching ``filter`` (see docs/api.md), ``max_results`` at a time.

    The result is a list of runs with a ``next_page_token`` for the following page.
    Deleted runs are left out unless ``include_deleted``.
    """
    runs, token = client(workspace).search_runs(
        filter, experiments=experiments, order_by=order_by, max_results=max_results,
        page_token=page_token, include_deleted=include_deleted)
    return RunPage(runs, token)
