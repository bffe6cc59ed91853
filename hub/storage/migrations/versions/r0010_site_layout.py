"""Site layouts: the floor plan (zones, shelves, docks) the dashboard's map draws.

`sites.layout` is a nullable JSON document (`hub.api.schemas.assets.SiteLayout`); sites
made before it have none.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the column type: a migration must not change when the models do.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Add `sites.layout`."""
    op.add_column("sites", sa.Column("layout", JSON, nullable=True))


def downgrade() -> None:
    """Drop `sites.layout`.

    A plain `ALTER TABLE ... DROP COLUMN` (SQLite 3.35+), not batch mode: rebuilding
    `sites` with foreign keys on would cascade-delete every site's device groups.
    """
    op.drop_column("sites", "layout")
