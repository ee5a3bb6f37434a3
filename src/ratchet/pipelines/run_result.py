"""``PipelineResult``: a pipeline run as recorded, with its outputs loadable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.errors import NotFound
from ratchet.store.records import PipelineRunRecord, StepRunRecord

if TYPE_CHECKING:
    from ratchet.tracking.client import TrackingClient


@dataclass
class PipelineResult:
    record: PipelineRunRecord
    steps: list[StepRunRecord]
    tracking: TrackingClient

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def pipeline(self) -> str:
        return self.record.pipeline

    def step(self, node: str) -> StepRunRecord:
        for record in self.steps:
            if record.node == node:
                return record
        raise NotFound(f"pipeline run {self.run_id} has no step {node!r}; its steps: "
                       f"{', '.join(s.node for s in self.steps)}")

    def load(self, node: str, output: str = "output") -> Any:
        """The stored value of one step output."""
        from ratchet.pipelines.stored_values import load_value

        record = self.step(node)
        for stored in record.outputs:
            if stored.name == output:
                return load_value(stored, self.tracking.blobs)
        raise NotFound(f"step {node!r} of pipeline run {self.run_id} has no output "
                       f"{output!r} (status {record.status}); outputs: "
                       f"{', '.join(o.name for o in record.outputs) or 'none'}")

    @property
    def output(self) -> Any:
        """What the pipeline function returned, with step outputs loaded."""
        return self._decode(self.record.outputs)

    def _decode(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"$ref"}:
                node, output = value["$ref"]
                return self.load(node, output)
            return {k: self._decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._decode(v) for v in value]
        return value

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for s in self.steps:
            counts[s.status] = counts.get(s.status, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        return f"PipelineResult({self.pipeline!r}, run_id={self.run_id!r}, " \
               f"status={self.status!r}, steps: {summary})"
