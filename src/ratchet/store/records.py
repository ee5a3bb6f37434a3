"""Plain records the store returns. Immutable; times are epoch milliseconds (UTC)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ratchet.clock import to_datetime

RUN_STATUSES = ("running", "finished", "failed", "killed")


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    description: str | None
    lifecycle: str
    created_at: int
    tags: dict[str, str] = field(default_factory=dict)
    deleted_at: int | None = None  # soft-deleted (ms); listed only on request


@dataclass(frozen=True)
class CodeVersion:
    """Where a run's code came from; captured automatically when a run starts."""

    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    git_diff_hash: str | None = None
    entry_point: str | None = None
    python_version: str | None = None
    host: str | None = None
    user: str | None = None
    packages: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class DatasetInput:
    name: str
    digest: str
    version: int | None
    role: str
    source: str | None


@dataclass(frozen=True)
class ArtifactEntry:
    path: str
    digest: str
    size: int


@dataclass(frozen=True)
class Run:
    run_id: str
    experiment_id: str
    parent_run_id: str | None
    name: str
    status: str
    start_time: int
    end_time: int | None
    error: str | None
    code: CodeVersion
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value per key
    tags: dict[str, str] = field(default_factory=dict)
    inputs: tuple[DatasetInput, ...] = ()
    deleted_at: int | None = None  # soft-deleted (ms); listed only on request

    @property
    def id(self) -> str:
        return self.run_id

    @property
    def duration_ms(self) -> int | None:
        return None if self.end_time is None else self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        started, ended = to_datetime(self.start_time), to_datetime(self.end_time)
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "parent_run_id": self.parent_run_id,
            "name": self.name,
            "status": self.status,
            "start_time": started.isoformat() if started else None,
            "end_time": ended.isoformat() if ended else None,
            "error": self.error,
            "code": {k: getattr(self.code, k) for k in CodeVersion.__dataclass_fields__},
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
            "inputs": [i.__dict__ for i in self.inputs],
            # Only a deleted run has the key (listed with include_deleted / --deleted).
            **({"deleted_at": to_datetime(self.deleted_at).isoformat()}  # type: ignore[union-attr]
               if self.deleted_at is not None else {}),
        }


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str | None
    created_at: int
    updated_at: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    latest_version: int | None = None
    deleted_at: int | None = None  # soft-deleted (ms); listed only on request


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    run_id: str | None
    artifact_path: str
    content_hash: str
    flavor: str
    manifest: dict[str, Any]
    description: str | None
    created_at: int
    created_by: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    deleted_at: int | None = None  # soft-deleted (ms); listed only on request

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class AliasEvent:
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str | None
    reason: str | None
    at: int


@dataclass(frozen=True)
class DatasetVersionRecord:
    """A stored dataset version, as the metadata store holds it."""

    name: str
    version: int
    digest: str
    size_bytes: int
    row_count: int
    schema: tuple[dict[str, Any], ...]  # [{name, type, nullable}]
    profile: dict[str, Any]
    source: str | None
    parent_version: int | None
    created_by_run: str | None
    created_at: int
    deleted_at: int | None = None  # soft-deleted (ms); listed only on request


# ---------------------------------------------------------------------------- pipelines
PIPELINE_STATUSES = ("running", "finished", "failed", "killed", "abandoned")


@dataclass(frozen=True)
class StoredOutput:
    """One materialized step output: where its bytes are and what they hash to."""

    name: str
    digest: str  # content hash: of the single file, or a tree hash over the files
    materializer: str
    files: tuple[tuple[str, str, int], ...]  # (relative path, blob digest, size)
    size: int
    inline: bytes | None = None  # a small single-file value kept in the metadata store
    dataset: tuple[str, int] | None = None  # (name, version) when stored as a dataset version
    model: tuple[str, int] | None = None  # (name, version) when registered as a model version


@dataclass(frozen=True)
class StepInput:
    name: str  # the argument (a dotted path for a reference nested in a list or dict)
    digest: str
    source_node: str
    source_output: str


@dataclass(frozen=True)
class StepRunRecord:
    step_run_id: str
    pipeline_run_id: str
    node: str
    step: str
    position: int
    status: str
    upstream: tuple[str, ...]
    params: dict[str, Any]
    code_hash: str | None
    cache_key: str | None
    cached_from: str | None
    attempts: int
    tracking_run_id: str | None
    log_digest: str | None
    error: str | None
    started_at: int | None
    ended_at: int | None
    outputs: tuple[StoredOutput, ...] = ()
    inputs: tuple[StepInput, ...] = ()

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


@dataclass(frozen=True)
class PipelineRunRecord:
    run_id: str
    pipeline: str
    ref: str | None
    params: dict[str, Any]
    status: str
    executor: str
    tracking_run_id: str | None
    resumed_from: str | None
    schedule_id: str | None
    outputs: Any
    error: str | None
    host: str | None
    pid: int | None
    started_at: int
    ended_at: int | None
    heartbeat_at: int

    @property
    def duration_ms(self) -> int | None:
        return None if self.ended_at is None else self.ended_at - self.started_at
