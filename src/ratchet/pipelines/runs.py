"""Recorded pipeline runs: look them up, list them, resume a failed one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.errors import InvalidInput
from ratchet.pipelines.run_result import PipelineResult
from ratchet.store.records import PIPELINE_STATUSES

if TYPE_CHECKING:
    from ratchet.executors.base import Executor
    from ratchet.store import PipelineStore
    from ratchet.tracking.client import TrackingClient
    from ratchet.workspace import Workspace


def _clients(workspace: Workspace | None) -> tuple[TrackingClient, PipelineStore]:
    from ratchet.tracking.client import TrackingClient
    from ratchet.workspace import resolve

    workspace = resolve(workspace)
    return workspace.client(TrackingClient), workspace.stores.pipelines


def get_pipeline_run(run_id: str, *, workspace: Workspace | None = None) -> PipelineResult:
    """A pipeline run by id (or unique prefix), with its steps."""
    tracking, store = _clients(workspace)
    record = store.get_pipeline_run(run_id)
    return PipelineResult(record, store.step_runs(record.run_id), tracking)


def list_pipeline_runs(pipeline: str | None = None, *, status: str | None = None,
                       limit: int = 50, workspace: Workspace | None = None
                       ) -> list[PipelineResult]:
    """Pipeline runs, newest first, each as ``get_pipeline_run`` returns it (with its
    steps; the stored record is ``.record``). Marks runs whose process died (no
    heartbeat) as abandoned first."""
    from ratchet.pipelines.runner import reap_abandoned

    if status is not None and status not in PIPELINE_STATUSES:
        raise InvalidInput(f"unknown pipeline run status {status!r}; one of "
                           f"{', '.join(PIPELINE_STATUSES)}")
    tracking, store = _clients(workspace)
    reap_abandoned(store)
    return [PipelineResult(record, store.step_runs(record.run_id), tracking)
            for record in store.list_pipeline_runs(pipeline, status=status, limit=limit)]


def resume(run_id: str, *, executor: str | Executor | None = None,
           workspace: Workspace | None = None) -> PipelineResult:
    """Run a failed (or abandoned, or killed) pipeline run again with the same parameters.

    Steps that finished in it are reused whatever their cache settings; the rest run.
    The new run records ``resumed_from``.
    """
    from ratchet.pipelines.pipeline_definition import load_pipeline
    from ratchet.pipelines.runner import PipelineRunner, reap_abandoned

    _, store = _clients(workspace)
    reap_abandoned(store)
    record = store.get_pipeline_run(run_id)
    if record.status == "running":
        raise InvalidInput(f"pipeline run {record.run_id} is still running (its heartbeat is "
                           "fresh); wait for it or stop it before resuming")
    if record.status == "finished":
        raise InvalidInput(f"pipeline run {record.run_id} finished; nothing to resume")
    if record.ref is None:
        raise InvalidInput(f"pipeline run {record.run_id} ({record.pipeline!r}) cannot be "
                           "rebuilt from its record: the pipeline was defined where it cannot "
                           "be imported again (inside a function, an interactive session), "
                           "or its parameters are not JSON values; re-run it instead")
    pipeline = load_pipeline(record.ref)
    runner = PipelineRunner(pipeline, record.params, executor=executor,
                            resume_from=record.run_id, workspace=workspace,
                            schedule_id=record.schedule_id)
    return runner.run()
