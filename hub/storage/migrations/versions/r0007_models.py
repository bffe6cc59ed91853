"""The model registry: pushed versions, rollouts, their devices, current assignments.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration must not change when the models do.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.String(63)
NAME = sa.String(128)


def upgrade() -> None:
    """Create `model_versions`, `rollouts`, `rollout_devices` and `model_assignments`."""
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("version", NAME, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("card", JSON, nullable=False),
        sa.Column("manifest", JSON, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
    )
    op.create_index("ix_model_versions_sha256", "model_versions", ["sha256"])
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("target", JSON, nullable=False),
        sa.Column("canary_percent", sa.Integer(), nullable=False),
        sa.Column("auto_promote", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("canary_active_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model_versions.id"],
            name="fk_rollouts_model_id_model_versions",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
    )
    op.create_index("ix_rollouts_model_id", "rollouts", ["model_id"])
    op.create_table(
        "rollout_devices",
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("device_id", ID, nullable=False),
        sa.Column("canary", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assigned_at", TS, nullable=True),
        sa.Column("previous_model_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name="fk_rollout_devices_rollout_id_rollouts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rollout_id", "device_id", name="pk_rollout_devices"),
    )
    op.create_table(
        "model_assignments",
        sa.Column("device_id", ID, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("assigned_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model_versions.id"],
            name="fk_model_assignments_model_id_model_versions",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("device_id", name="pk_model_assignments"),
    )
    op.create_index("ix_model_assignments_model_id", "model_assignments", ["model_id"])


def downgrade() -> None:
    """Drop the registry's tables."""
    op.drop_table("model_assignments")
    op.drop_table("rollout_devices")
    op.drop_table("rollouts")
    op.drop_table("model_versions")
