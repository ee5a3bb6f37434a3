"""Pipelines: ``@step`` functions composed by a ``@pipeline`` function into a DAG that runs
in-process or on Ray, with caching, retries, lineage, schedules and resume."""

from __future__ import annotations

from ratchet.pipelines.materializers import (
    FileMaterializer,
    Materializer,
    PickleMaterializer,
    register_materializer,
)
from ratchet.pipelines.pipeline_definition import Pipeline, load_pipeline, pipeline
from ratchet.pipelines.run_result import PipelineResult
from ratchet.pipelines.runs import get_pipeline_run, list_pipeline_runs, resume
from ratchet.pipelines.schedules import delete_schedule, list_schedules, schedule
from ratchet.pipelines.step_definition import Step, step

__all__ = [
    "FileMaterializer",
    "Materializer",
    "PickleMaterializer",
    "Pipeline",
    "PipelineResult",
    "Step",
    "delete_schedule",
    "get_pipeline_run",
    "list_pipeline_runs",
    "list_schedules",
    "load_pipeline",
    "pipeline",
    "register_materializer",
    "resume",
    "schedule",
    "step",
]
