"""Frames the hub keeps: rule-hit snapshots and captures for labelling.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration must not change when the models do.
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create `frames`."""
    op.create_table(
        "frames",
        sa.Column("device", sa.String(63), nullable=False),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("frame_id", sa.String(128), nullable=False),
        sa.Column("camera", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("device", "stream", "seq", name="pk_frames"),
    )
    op.create_index("ix_frames_device_purpose_ts", "frames", ["device", "purpose", "ts"])
    op.create_index("ix_frames_purpose_ts", "frames", ["purpose", "ts"])


def downgrade() -> None:
    """Drop `frames`."""
    op.drop_table("frames")
