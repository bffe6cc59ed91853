"""Commands the hub signed and sent, with their lifecycle state.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration must not change when the models do.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.String(63)


def upgrade() -> None:
    """Create `commands`."""
    op.create_table(
        "commands",
        sa.Column("cmd_id", sa.String(64), nullable=False),
        sa.Column("device_id", ID, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("issued_by", sa.String(128), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("sig", sa.String(128), nullable=False),
        sa.Column("batch", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_rank", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.Column("publish_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("cmd_id", name="pk_commands"),
    )
    op.create_index("ix_commands_site_id", "commands", ["site_id"])
    op.create_index("ix_commands_device_id_issued_at", "commands", ["device_id", "issued_at"])


def downgrade() -> None:
    """Drop `commands`."""
    op.drop_table("commands")
