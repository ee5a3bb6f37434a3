"""Delete and restore runs, experiments, model versions, models and dataset versions.

A delete hides a record (listings skip it, a lookup says it is deleted and how to restore
it) and keeps it whole; ``ratchet gc`` purges it for good, frees its blobs and makes its
name reusable. Deletes that would break something live are refused unless ``force=True``
(see :mod:`ratchet.store.deletion` for the rules).

    ratchet.delete_run(run_id)                  ratchet.restore_run(run_id)
    ratchet.models.delete_version("churn", 3)   ratchet.models.restore_version("churn", 3)
    ratchet.data.delete_version("churn@2")      ratchet.gc(dry_run=True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    from ratchet.store.deletion import DeletionStore
    from ratchet.workspace import Workspace


def deletion_store(workspace: Workspace | None = None) -> DeletionStore:
    """The deletion store of ``workspace`` (default: the ambient one)."""
    from ratchet.workspace import resolve

    return resolve(workspace).stores.deletion


def _run_id(run_id: str, workspace: Workspace | None) -> str:
    from ratchet.workspace import resolve

    return resolve(workspace).stores.tracking.resolve_run_id(run_id)


def delete_run(run_id: str, *, force: bool = False,
               workspace: Workspace | None = None) -> list[str]:
    """Soft-delete a run and its nested runs; returns their ids. Refused (``Conflict``)
    while a model version registered from it is not deleted or a deployment serves it,
    unless ``force``."""
    return deletion_store(workspace).delete_run(_run_id(run_id, workspace), force=force)


def restore_run(run_id: str, *, workspace: Workspace | None = None) -> list[str]:
    """Undo ``delete_run`` (with the nested runs deleted with it); returns their ids."""
    return deletion_store(workspace).restore_run(_run_id(run_id, workspace))


def delete_experiment(name_or_id: str, *, force: bool = False,
                      workspace: Workspace | None = None) -> list[str]:
    """Soft-delete an experiment and its runs; returns the runs' ids."""
    return deletion_store(workspace).delete_experiment(name_or_id, force=force)


def restore_experiment(name_or_id: str, *, workspace: Workspace | None = None) -> list[str]:
    """Undo ``delete_experiment`` (with the runs deleted with it); returns their ids."""
    return deletion_store(workspace).restore_experiment(name_or_id)


def delete_model_version(name: str, version: int, *, force: bool = False,
                         workspace: Workspace | None = None) -> None:
    """Soft-delete a model version. Refused while an alias points at it or a deployment's
    current plan serves it, unless ``force`` (which also removes its aliases)."""
    deletion_store(workspace).delete_model_version(name, _version(version), force=force)


def restore_model_version(name: str, version: int, *,
                          workspace: Workspace | None = None) -> None:
    deletion_store(workspace).restore_model_version(name, _version(version))


def delete_model(name: str, *, force: bool = False,
                 workspace: Workspace | None = None) -> None:
    """Soft-delete a registered model and its versions (same refusals as a version)."""
    deletion_store(workspace).delete_registered_model(name, force=force)


def restore_model(name: str, *, workspace: Workspace | None = None) -> None:
    deletion_store(workspace).restore_registered_model(name)


def delete_dataset_version(ref: str, *, force: bool = False,
                           workspace: Workspace | None = None) -> None:
    """Soft-delete ``name@version``. Refused while a run that is not deleted recorded it
    as an input (lineage), unless ``force``."""
    name, version = _dataset_ref(ref)
    deletion_store(workspace).delete_dataset_version(name, version, force=force)


def restore_dataset_version(ref: str, *, workspace: Workspace | None = None) -> None:
    name, version = _dataset_ref(ref)
    deletion_store(workspace).restore_dataset_version(name, version)


def _version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(f"a version is a whole number from 1, got {version!r}")
    return version


def _dataset_ref(ref: str) -> tuple[str, int]:
    from ratchet.refs import parse_reference

    parsed = parse_reference(ref, "dataset")
    if parsed.version is None:
        raise InvalidInput(f"give a dataset version as name@number (like churn@2), got {ref!r}")
    return parsed.name, parsed.version
