"""feature store: definitions (versioned), materializations, training-set lineage

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("feature_definitions"):
        return
    op.create_table(
        "feature_definitions",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("kind", "name", "version", name=op.f("pk_feature_definitions")),
    )
    op.create_table(
        "feature_materializations",
        sa.Column("materialization_id", sa.String(length=32), nullable=False),
        sa.Column("view", sa.String(length=256), nullable=False),
        sa.Column("view_version", sa.BigInteger(), nullable=False),
        sa.Column("online_store", sa.String(length=512), nullable=False),
        sa.Column("start_at", sa.BigInteger(), nullable=True),
        sa.Column("end_at", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("materialization_id",
                                name=op.f("pk_feature_materializations")),
    )
    with op.batch_alter_table("feature_materializations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feature_materializations_view_online_store_end_at"),
                              ["view", "online_store", "end_at"], unique=False)
    op.create_table(
        "feature_training_sets",
        sa.Column("dataset_name", sa.String(length=256), nullable=False),
        sa.Column("dataset_version", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_name", "dataset_version", "kind", "name",
                                name=op.f("pk_feature_training_sets")),
    )
    with op.batch_alter_table("feature_training_sets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feature_training_sets_kind_name"),
                              ["kind", "name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feature_training_sets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feature_training_sets_kind_name"))
    op.drop_table("feature_training_sets")
    with op.batch_alter_table("feature_materializations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feature_materializations_view_online_store_end_at"))
    op.drop_table("feature_materializations")
    op.drop_table("feature_definitions")
