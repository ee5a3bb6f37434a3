"""Importing other tools' stores into a ratchet workspace: ``ratchet import mlflow``.

``import_mlflow(source, workspace=...)`` copies an MLflow store (SQLite, PostgreSQL or a
file store) and verifies the copy (``ratchet.importing.mlflow_import``); the file-store
reader is ``ratchet.importing.mlflow_files``, the SQL reader ``ratchet.store.mlflow_source``.
"""

from __future__ import annotations

from ratchet.importing.mlflow_import import ImportReport, import_mlflow, open_source

__all__ = ["ImportReport", "import_mlflow", "open_source"]
