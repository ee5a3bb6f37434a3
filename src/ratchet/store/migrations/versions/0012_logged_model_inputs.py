"""logged model inputs: the logged models a run used (MLflow's log_inputs with models)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 08:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store created from the tables while HEAD_REVISION still named 0011 has it already.
    if sa.inspect(op.get_bind()).has_table("logged_model_inputs"):
        return
    op.create_table(
        "logged_model_inputs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"],
                                name=op.f("fk_logged_model_inputs_run_id_runs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_id"], ["logged_models.model_id"],
                                name=op.f("fk_logged_model_inputs_model_id_logged_models"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "model_id", name=op.f("pk_logged_model_inputs")),
    )
    with op.batch_alter_table("logged_model_inputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_logged_model_inputs_model_id"), ["model_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("logged_model_inputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_model_inputs_model_id"))
    op.drop_table("logged_model_inputs")
