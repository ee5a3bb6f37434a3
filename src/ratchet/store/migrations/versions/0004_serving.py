"""serving: deployments, plan revisions, prediction feedback

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_deployments")),
    )
    op.create_table(
        "deployment_plans",
        sa.Column("deployment", sa.String(length=256), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment"],
            ["deployments.name"],
            name=op.f("fk_deployment_plans_deployment_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deployment", "revision", name=op.f("pk_deployment_plans")),
    )
    op.create_table(
        "prediction_feedback",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("deployment", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "row", name=op.f("pk_prediction_feedback")),
    )
    with op.batch_alter_table("prediction_feedback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prediction_feedback_deployment_received_at"),
            ["deployment", "received_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("prediction_feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prediction_feedback_deployment_received_at"))
    op.drop_table("prediction_feedback")
    op.drop_table("deployment_plans")
    op.drop_table("deployments")
