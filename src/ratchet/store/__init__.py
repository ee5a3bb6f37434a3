"""Storage layer: the metadata store (the only module that speaks SQL)."""

from __future__ import annotations

from ratchet.store.database import Database, open_database
from ratchet.store.dataset_store import DatasetStore
from ratchet.store.pipeline_store import PipelineStore
from ratchet.store.records import (
    AliasEvent,
    ArtifactEntry,
    CodeVersion,
    DatasetInput,
    DatasetVersionRecord,
    Experiment,
    Metric,
    ModelVersion,
    PipelineRunRecord,
    RegisteredModel,
    Run,
    StepInput,
    StepRunRecord,
    StoredOutput,
)
from ratchet.store.registry_store import RegistryStore
from ratchet.store.tracking_store import TrackingStore

__all__ = [
    "AliasEvent",
    "ArtifactEntry",
    "CodeVersion",
    "Database",
    "DatasetInput",
    "DatasetStore",
    "DatasetVersionRecord",
    "Experiment",
    "Metric",
    "ModelVersion",
    "PipelineRunRecord",
    "PipelineStore",
    "RegisteredModel",
    "RegistryStore",
    "Run",
    "StepInput",
    "StepRunRecord",
    "StoredOutput",
    "TrackingStore",
    "open_database",
]
