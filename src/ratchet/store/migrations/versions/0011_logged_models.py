"""logged models: MLflow 3's logged models, their params, tags, metrics and run outputs

A logged model's files are artifacts ``models/<model_id>/...`` of its holder run
(``artifact_run_id``: its source run, or a run made for it); ``logged_model_outputs`` links a
run to the models it produced (MLflow's ``log_outputs``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 08:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_MODEL_ID = sa.String(length=64)
_ID = sa.String(length=32)


def _model_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["model_id"], ["logged_models.model_id"],
                                   name=op.f(f"fk_{table}_model_id_logged_models"),
                                   ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "logged_models",
        sa.Column("model_id", _MODEL_ID, nullable=False),
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("artifact_run_id", _ID, nullable=False),
        sa.Column("artifact_path", sa.String(length=1024), nullable=False),
        sa.Column("source_run_id", _ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("model_type", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.experiment_id"],
                                name=op.f("fk_logged_models_experiment_id_experiments"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["artifact_run_id"], ["runs.run_id"],
                                name=op.f("fk_logged_models_artifact_run_id_runs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["source_run_id"], ["runs.run_id"],
                                name=op.f("fk_logged_models_source_run_id_runs"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_logged_models")),
    )
    with op.batch_alter_table("logged_models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_logged_models_experiment_id_created_at"),
                              ["experiment_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_logged_models_artifact_run_id"),
                              ["artifact_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_logged_models_source_run_id"),
                              ["source_run_id"], unique=False)
    op.create_table(
        "logged_model_params",
        sa.Column("model_id", _MODEL_ID, nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.String(length=6000), nullable=False),
        _model_fk("logged_model_params"),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_logged_model_params")),
    )
    op.create_table(
        "logged_model_tags",
        sa.Column("model_id", _MODEL_ID, nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        _model_fk("logged_model_tags"),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_logged_model_tags")),
    )
    op.create_table(
        "logged_model_metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("model_id", _MODEL_ID, nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("dataset_name", sa.String(length=256), nullable=True),
        sa.Column("dataset_digest", sa.String(length=64), nullable=True),
        _model_fk("logged_model_metrics"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"],
                                name=op.f("fk_logged_model_metrics_run_id_runs"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logged_model_metrics")),
    )
    with op.batch_alter_table("logged_model_metrics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_logged_model_metrics_model_id_key"),
                              ["model_id", "key"], unique=False)
    op.create_table(
        "logged_model_outputs",
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("model_id", _MODEL_ID, nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"],
                                name=op.f("fk_logged_model_outputs_run_id_runs"),
                                ondelete="CASCADE"),
        _model_fk("logged_model_outputs"),
        sa.PrimaryKeyConstraint("run_id", "model_id", name=op.f("pk_logged_model_outputs")),
    )
    with op.batch_alter_table("logged_model_outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_logged_model_outputs_model_id"), ["model_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("logged_model_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_model_outputs_model_id"))
    op.drop_table("logged_model_outputs")
    with op.batch_alter_table("logged_model_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_model_metrics_model_id_key"))
    op.drop_table("logged_model_metrics")
    op.drop_table("logged_model_tags")
    op.drop_table("logged_model_params")
    with op.batch_alter_table("logged_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_models_source_run_id"))
        batch_op.drop_index(batch_op.f("ix_logged_models_artifact_run_id"))
        batch_op.drop_index(batch_op.f("ix_logged_models_experiment_id_created_at"))
    op.drop_table("logged_models")
