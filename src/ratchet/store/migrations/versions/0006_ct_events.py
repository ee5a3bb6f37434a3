"""continuous training: the event log

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 00:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ct_events",
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_ct_events")),
    )
    with op.batch_alter_table("ct_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ct_events_model_at"), ["model", "at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ct_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ct_events_model_at"))
    op.drop_table("ct_events")
