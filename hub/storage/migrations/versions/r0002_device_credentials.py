"""Device credentials for the embedded broker's login and topic ACL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """One row per device: the argon2 hash of its MQTT password, and when it was revoked."""
    op.create_table(
        "device_credentials",
        sa.Column("device", sa.String(63), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("device", name="pk_device_credentials"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("device_credentials")
