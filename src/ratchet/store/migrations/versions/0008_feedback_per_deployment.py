"""serving: feedback is keyed on (deployment, request_id, row)

Before, the key was (request_id, row) and an upsert overwrote the deployment, so one
deployment's client could relabel another's predictions. Existing rows are kept: they were
unique on (request_id, row), so they are unique on the wider key too.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 17:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_feedback", schema=None) as batch_op:
        batch_op.drop_constraint("pk_prediction_feedback", type_="primary")
        batch_op.create_primary_key("pk_prediction_feedback",
                                    ["deployment", "request_id", "row"])


def downgrade() -> None:
    # The narrower key cannot hold one (request_id, row) for two deployments: keep the
    # newest of each.
    op.execute(
        "DELETE FROM prediction_feedback WHERE EXISTS (SELECT 1 FROM prediction_feedback "
        "AS newer WHERE newer.request_id = prediction_feedback.request_id AND "
        "newer.\"row\" = prediction_feedback.\"row\" AND (newer.received_at > "
        "prediction_feedback.received_at OR (newer.received_at = "
        "prediction_feedback.received_at AND newer.deployment > "
        "prediction_feedback.deployment)))")
    with op.batch_alter_table("prediction_feedback", schema=None) as batch_op:
        batch_op.drop_constraint("pk_prediction_feedback", type_="primary")
        batch_op.create_primary_key("pk_prediction_feedback", ["request_id", "row"])
