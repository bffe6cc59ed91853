"""Sites, device groups, devices and enrollment tokens.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration must not change when the models do.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.String(63)


def _site_fk(table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["site_id"], ["sites.id"], name=f"fk_{table}_site_id_sites", ondelete=ondelete
    )


def _group_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["group_id"],
        ["device_groups.id"],
        name=f"fk_{table}_group_id_device_groups",
        ondelete="SET NULL",
    )


def _sites_and_groups() -> None:
    op.create_table(
        "sites",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sites"),
    )
    op.create_table(
        "device_groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device_groups"),
        sa.UniqueConstraint("site_id", "name", name="uq_device_groups_site_id_name"),
        _site_fk("device_groups", "CASCADE"),
    )
    op.create_index("ix_device_groups_site_id", "device_groups", ["site_id"])


def _devices() -> None:
    op.create_table(
        "devices",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("public_key", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("enrolled_at", TS, nullable=True),
        sa.Column("removed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.CheckConstraint("kind IN ('robot', 'gateway', 'camera')", name="ck_devices_kind"),
        _site_fk("devices", "RESTRICT"),
        _group_fk("devices"),
    )
    op.create_index("ix_devices_site_id", "devices", ["site_id"])
    op.create_index("ix_devices_group_id", "devices", ["group_id"])


def _enrollment_tokens() -> None:
    op.create_table(
        "enrollment_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("name_prefix", sa.String(32), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("used_by_device", ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_enrollment_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_enrollment_tokens_token_hash"),
        _site_fk("enrollment_tokens", "CASCADE"),
        _group_fk("enrollment_tokens"),
    )
    op.create_index("ix_enrollment_tokens_site_id", "enrollment_tokens", ["site_id"])


def upgrade() -> None:
    """Create the four tables."""
    _sites_and_groups()
    _devices()
    _enrollment_tokens()


def downgrade() -> None:
    """Drop everything `upgrade` created."""
    for table in ("enrollment_tokens", "devices", "device_groups", "sites"):
        op.drop_table(table)
