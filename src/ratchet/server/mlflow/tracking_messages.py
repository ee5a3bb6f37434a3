"""ratchet's tracking records as MLflow's proto3-JSON messages, and back where MLflow's
fields have to round-trip through a ratchet record.

- ``experiment``: ``Experiment`` (``artifact_location`` is ``mlflow-artifacts:/<id>``);
- ``run`` / ``run_info``: ``Run`` with its latest metric points (``Metric``: value, step
  and timestamp), params, tags (``mlflow.runName`` always the run's name) and inputs;
- ``dataset_input`` / ``mlflow_dataset_input``: MLflow's ``DatasetInput`` kept in ratchet's
  ``DatasetInput`` (name, digest, role = the ``mlflow.data.context`` tag, and the fields
  ratchet has no column for as JSON in ``source``), and read back unchanged.

Pure functions over records; no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ratchet.server.mlflow.locations import SCHEME, run_artifact_uri
from ratchet.server.mlflow.protocol import double, invalid, key_values, message
from ratchet.store.records import DatasetInput, Experiment, Metric, Run

RUN_NAME_TAG = "mlflow.runName"
CONTEXT_TAG = "mlflow.data.context"
DEFAULT_INPUT_ROLE = "input"
# ratchet's DatasetInput.source holding MLflow's dataset fields: {"mlflow_dataset": {...}}.
_MLFLOW_SOURCE_KEY = "mlflow_dataset"
_DATASET_FIELDS = ("source_type", "source", "schema", "profile")

# ratchet's run statuses (lowercase) and MLflow's RunStatus names.
STATUS_TO_MLFLOW = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED",
                    "killed": "KILLED"}
STATUS_FROM_MLFLOW = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished",
                      "FAILED": "failed", "KILLED": "killed"}


def experiment_artifact_location(experiment_id: str) -> str:
    return f"{SCHEME}/{experiment_id}"


def lifecycle_stage(deleted_at: int | None) -> str:
    return "active" if deleted_at is None else "deleted"


def experiment(exp: Experiment) -> dict[str, Any]:
    return message(
        experiment_id=exp.experiment_id,
        name=exp.name,
        artifact_location=experiment_artifact_location(exp.experiment_id),
        lifecycle_stage=lifecycle_stage(exp.deleted_at),
        # ratchet keeps no update time: creation (or deletion) is the last change it knows.
        last_update_time=exp.deleted_at or exp.created_at,
        creation_time=exp.created_at,
        tags=key_values(exp.tags),
    )


def mlflow_status(status: str) -> str:
    return STATUS_TO_MLFLOW.get(status, "RUNNING")


def ratchet_status(status: str) -> str:
    """MLflow's status name -> ratchet's; anything else is INVALID_PARAMETER_VALUE."""
    found = STATUS_FROM_MLFLOW.get(status.upper()) if isinstance(status, str) else None
    if found is None:
        raise invalid(f"Invalid run status {status!r}: expected one of "
                      f"{', '.join(STATUS_FROM_MLFLOW)}")
    return found


def run_info(run: Run) -> dict[str, Any]:
    return message(
        run_id=run.run_id,
        run_uuid=run.run_id,
        run_name=run.name,
        experiment_id=run.experiment_id,
        user_id=run.code.user or "",
        status=mlflow_status(run.status),
        start_time=run.start_time,
        end_time=run.end_time,
        artifact_uri=run_artifact_uri(run.experiment_id, run.run_id),
        lifecycle_stage=lifecycle_stage(run.deleted_at),
    )


def metric(point: Metric) -> dict[str, Any]:
    return {"key": point.key, "value": double(point.value), "timestamp": point.timestamp,
            "step": point.step}


def run_tags(run: Run) -> dict[str, str]:
    """The run's tags plus the ones MLflow derives from ratchet's columns."""
    tags = dict(run.tags)
    tags[RUN_NAME_TAG] = run.name  # the run's name is the truth (renamed on either side)
    if run.parent_run_id:
        tags.setdefault("mlflow.parentRunId", run.parent_run_id)
    if run.code.user:
        tags.setdefault("mlflow.user", run.code.user)
    if run.code.git_commit:
        tags.setdefault("mlflow.source.git.commit", run.code.git_commit)
    if run.code.entry_point:
        tags.setdefault("mlflow.source.name", run.code.entry_point)
    return tags


def run(run: Run, latest: Iterable[Metric], outputs: Iterable[tuple[str, int]] = (),
        model_inputs: Iterable[str] = ()) -> dict[str, Any]:
    """A ``Run`` message; ``latest`` are the run's latest metric points (one per key),
    ``outputs`` the ``(model_id, step)`` of the logged models it output and
    ``model_inputs`` the ids of those it used (MLflow 3)."""
    data = message(
        metrics=[metric(p) for p in sorted(latest, key=lambda p: p.key)],
        params=key_values(dict(sorted(run.params.items()))),
        tags=key_values(run_tags(run)),
    )
    inputs = message(dataset_inputs=[mlflow_dataset_input(i) for i in run.inputs],
                     model_inputs=[{"model_id": model_id} for model_id in model_inputs])
    model_outputs = [{"model_id": model_id, "step": step} for model_id, step in outputs]
    return message(info=run_info(run), data=data, inputs=inputs,
                   outputs=message(model_outputs=model_outputs))


# ---------------------------------------------------------------------------- datasets
def dataset_input(fields: Mapping[str, Any]) -> DatasetInput:
    """MLflow's ``DatasetInput`` JSON ({"tags": [...], "dataset": {...}}) as ratchet's
    record; INVALID_PARAMETER_VALUE when its dataset lacks a name or digest."""
    dataset = fields.get("dataset")
    if not isinstance(dataset, dict):
        raise invalid("Invalid value for parameter 'datasets': each needs a 'dataset' object")
    name, digest = dataset.get("name"), dataset.get("digest")
    if not isinstance(name, str) or not name or not isinstance(digest, str) or not digest:
        raise invalid("Invalid value for parameter 'datasets': a dataset needs a name and "
                      "a digest (strings)")
    tags = _tag_map(fields.get("tags"), "datasets[].tags")
    kept = {k: dataset[k] for k in _DATASET_FIELDS if isinstance(dataset.get(k), str)}
    source = json.dumps({_MLFLOW_SOURCE_KEY: {**kept, "tags": tags}}, sort_keys=True)
    return DatasetInput(name=name, digest=digest, version=None,
                        role=tags.get(CONTEXT_TAG) or DEFAULT_INPUT_ROLE, source=source)


def mlflow_dataset_input(record: DatasetInput) -> dict[str, Any]:
    """A ratchet input as MLflow's ``DatasetInput``: MLflow's own fields when it logged
    them, else ratchet's (source type ``ratchet``, the role as the context tag)."""
    kept = _mlflow_fields(record.source)
    if kept is not None:
        tags = kept.pop("tags", {})
        dataset = message(name=record.name, digest=record.digest,
                          **{k: v for k, v in kept.items() if k in _DATASET_FIELDS})
        return message(tags=key_values(tags), dataset=dataset)
    dataset = message(name=record.name, digest=record.digest, source_type="ratchet",
                      source=record.source or "")
    return message(tags=key_values({CONTEXT_TAG: record.role}), dataset=dataset)


def _mlflow_fields(source: str | None) -> dict[str, Any] | None:
    if not source or not source.startswith("{"):
        return None
    try:
        data = json.loads(source)
    except ValueError:
        return None
    kept = data.get(_MLFLOW_SOURCE_KEY) if isinstance(data, dict) else None
    return dict(kept) if isinstance(kept, dict) else None


def _tag_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise invalid(f"Invalid value for parameter '{where}': a list of tags expected")
    tags = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise invalid(f"Invalid value for parameter '{where}': each tag needs a key")
        raw = item.get("value", "")
        tags[item["key"]] = raw if isinstance(raw, str) else str(raw)
    return tags


__all__ = ["CONTEXT_TAG", "RUN_NAME_TAG", "STATUS_FROM_MLFLOW", "STATUS_TO_MLFLOW",
           "dataset_input", "experiment", "experiment_artifact_location", "lifecycle_stage",
           "metric", "mlflow_dataset_input", "mlflow_status", "ratchet_status", "run",
           "run_info", "run_tags"]
