"""deletion: soft delete (deleted_at) and version numbers kept across purges

Runs, experiments, registered models, model versions and dataset versions get a nullable
``deleted_at`` (ms): set by a delete, cleared by a restore, and the record is removed by
``ratchet gc``. ``registered_models.purged_version`` and ``datasets.purged_version`` keep
the highest version number gc removed, so a number is never given to new content while
its model or dataset exists.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_DELETED_AT = ("experiments", "runs", "registered_models", "model_versions",
               "dataset_versions")
_PURGED_VERSION = ("registered_models", "datasets")


def upgrade() -> None:
    for table in _DELETED_AT:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("deleted_at", sa.BigInteger(), nullable=True))
    for table in _PURGED_VERSION:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("purged_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in _PURGED_VERSION:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("purged_version")
    for table in _DELETED_AT:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("deleted_at")
