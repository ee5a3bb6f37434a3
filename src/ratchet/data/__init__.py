"""``ratchet.data``: versioned datasets, profiles, schemas and validation.

    ds = ratchet.data.log(df, name="churn", source="warehouse.churn")   # churn@1
    ratchet.data.get_version("churn@1").to_pandas()      # "churn": the latest version
    schema = ratchet.data.infer_schema(ds)
    report = ratchet.data.validate(new_df, schema)

Heavy modules (pyarrow, DuckDB, pandera) load on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ratchet.lazy import lazy_getattr

if TYPE_CHECKING:
    from ratchet.data.catalog import DataClient, DatasetSummary, ProgressCallback
    from ratchet.data.validation import ValidationReport
    from ratchet.data.version import DatasetVersion
    from ratchet.data.version_diff import DatasetDiff
    from ratchet.workspace import Workspace

_LAZY = {
    "DataClient": "ratchet.data.catalog",
    "DatasetVersion": "ratchet.data.version",
    "DatasetDiff": "ratchet.data.version_diff",
    "ValidationReport": "ratchet.data.validation",
    "infer_schema": "ratchet.data.schema",
    "save_schema": "ratchet.data.schema",
    "load_schema": "ratchet.data.schema",
}

__all__ = [
    "DataClient",
    "DatasetDiff",
    "DatasetVersion",
    "ValidationReport",
    "client",
    "delete_version",
    "diff",
    "get_version",
    "infer_schema",
    "list_datasets",
    "list_versions",
    "load_schema",
    "log",
    "restore_version",
    "save_schema",
    "validate",
]

def client(workspace: Workspace | None = None) -> DataClient:
    """The data client of ``workspace`` (default: the ambient one,
    ``ratchet.workspace.current()``)."""
    from ratchet.data.catalog import DataClient
    from ratchet.workspace import resolve

    return resolve(workspace).client(DataClient)


def log(data: object, name: str, *, source: str | None = None, role: str | None = None,
        progress: ProgressCallback | None = None,
        workspace: Workspace | None = None) -> DatasetVersion:
    """Store ``data`` as the next version of ``name`` (identical content: the same version).

    Inside a run the run is recorded as its creator, and with ``role`` (e.g. ``"train"``)
    the run also records the version as an input.
    """
    return client(workspace).log(data, name, source=source, role=role, progress=progress)


def get_version(ref: str, *, workspace: Workspace | None = None) -> DatasetVersion:
    """``"churn"`` or ``"churn@latest"`` (the latest), ``"churn@3"`` (version 3) or
    ``"churn@<content hash prefix>"``: the reference grammar of ``ratchet.refs``."""
    return client(workspace).get(ref)


get = get_version  # the name before the list_*/get_* rule; kept for existing code


def list_versions(name: str, *, workspace: Workspace | None = None) -> list[DatasetVersion]:
    """Every version of dataset ``name``, oldest first."""
    return client(workspace).list_versions(name)


def list_datasets(*, workspace: Workspace | None = None) -> list[DatasetSummary]:
    return client(workspace).list_datasets()


def delete_version(ref: str, *, force: bool = False, workspace: Workspace | None = None) -> None:
    """Delete ``"churn@2"`` (restorable until ``ratchet gc``). Refused while a run that is
    not deleted recorded it as an input, unless ``force``."""
    from ratchet.tracking.deletion import delete_dataset_version

    delete_dataset_version(ref, force=force, workspace=client(workspace).workspace)


def restore_version(ref: str, *, workspace: Workspace | None = None) -> None:
    """Undo ``delete_version`` (until ``ratchet gc`` purged it)."""
    from ratchet.tracking.deletion import restore_dataset_version

    restore_dataset_version(ref, workspace=client(workspace).workspace)


def diff(base: str, other: str, key: Sequence[str] | str | None = None, *,
         workspace: Workspace | None = None) -> DatasetDiff:
    """Rows added/removed (by ``key`` if given), schema and distribution changes."""
    keys = [key] if isinstance(key, str) else key
    return client(workspace).diff(base, other, keys)


def validate(data: Any, schema: Any, *, fail_on_error: bool = False,
             max_examples: int = 5, workspace: Workspace | None = None) -> ValidationReport:
    """Check ``data`` (a frame, table or ``DatasetVersion``) against a pandera schema or a
    schema YAML path, reporting every failed check.

    Inside a run, the report is stored with it (``validation/<schema>.json`` and error /
    warning counts as metrics). ``fail_on_error=True`` raises ``ValidationFailed`` when an
    error-severity check fails; warn checks never raise.
    """
    from ratchet.data.validation import validate as run_checks
    from ratchet.data.version import DatasetVersion

    frame = data.to_pandas() if isinstance(data, DatasetVersion) else data
    report = run_checks(frame, schema, max_examples=max_examples)
    data_client = client(workspace)
    run_id = data_client.tracking.active_run_id()
    if run_id is not None:
        data_client.record_validation(run_id, report)
    if fail_on_error:
        report.raise_for_errors()
    return report


__getattr__ = lazy_getattr(__name__, _LAZY)
