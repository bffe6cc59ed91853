"""Per-device drift references: what each camera normally shows under a model.

The default "Drift over threshold" rule moves from the training-baseline PSI (which a
healthy camera on a real site exceeds) to `drift.psi_input` against the device's own
reference, unless an admin already edited it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration must not change when the models do.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
RULE = "Drift over threshold"
BEFORE = {
    "type": "metric_threshold",
    "metric": "drift.psi",
    "op": ">=",
    "threshold": 0.25,
    "clear_at": 0.1,
}
AFTER = {
    "type": "metric_threshold",
    "metric": "drift.psi_input",
    "op": ">=",
    "threshold": 0.5,
    "clear_at": 0.2,
}
AFTER_TEXT = (
    "What a camera sees (brightness, contrast or sharpness) drifted from what it normally "
    "shows under its model: PSI against the device's own reference at or over 0.5; "
    "resolved under 0.2."
)
BEFORE_TEXT = (
    "A histogram of what the camera sees or the model answers drifted from "
    "the model's training baseline: PSI at or over 0.25; resolved under 0.1."
)
_rules = sa.table(
    "alert_rules",
    sa.column("id", sa.Integer()),
    sa.column("name", sa.String(128)),
    sa.column("condition", JSON),
    sa.column("description", sa.Text()),
)


def upgrade() -> None:
    """Create `drift_references`."""
    op.create_table(
        "drift_references",
        sa.Column("device", sa.String(63), nullable=False),
        sa.Column("camera", sa.String(128), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("windows", sa.Integer(), nullable=False),
        sa.Column("last_window_ms", sa.BigInteger(), nullable=False),
        sa.Column("histograms", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("device", "camera", "model_sha256", name="pk_drift_references"),
    )
    _swap_rule(BEFORE, AFTER, AFTER_TEXT)


def downgrade() -> None:
    """Drop `drift_references`; the default drift rule goes back if it is still ours."""
    _swap_rule(AFTER, BEFORE, BEFORE_TEXT)
    op.drop_table("drift_references")


def _swap_rule(old: dict[str, object], new: dict[str, object], text: str) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_rules.c.id, _rules.c.condition).where(_rules.c.name == RULE))
    for rule_id, condition in rows.all():
        if condition == old:
            bind.execute(
                sa.update(_rules)
                .where(_rules.c.id == rule_id)
                .values(condition=new, description=text)
            )
