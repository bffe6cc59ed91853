"""Alert rules (with the default ones), notification channels, alerts and their deliveries.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration must not change when the models do.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.String(63)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NAME = sa.String(128)

# The default rules, as they were when this revision was written (editable afterwards).
DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "name": "Person in danger zone",
        "type": "zone_intrusion",
        "severity": "critical",
        "condition": {"type": "zone_intrusion", "zones": [], "classes": ["person"]},
        "description": "A device's perception rule fired for a person inside a zone.",
    },
    {
        "name": "Stop engaged",
        "type": "event",
        "severity": "warning",
        "condition": {
            "type": "event",
            "events": ["estop_engaged"],
            "resolve_on": ["estop_released"],
        },
        "description": "A device's protective stop engaged; resolved when it is released.",
    },
    {
        "name": "Device offline",
        "type": "device_offline",
        "severity": "warning",
        "condition": {"type": "device_offline", "after_s": None},
        "description": "No state from a device for longer than [alerts] offline_after_s.",
    },
    {
        "name": "Battery low",
        "type": "metric_threshold",
        "severity": "warning",
        "condition": {
            "type": "metric_threshold",
            "metric": "robot.battery.percent",
            "op": "<",
            "threshold": 20.0,
            "clear_at": 25.0,
        },
        "description": "Robot battery below 20 %; resolved at 25 %.",
    },
    {
        "name": "Buffer dropping",
        "type": "buffer_dropping",
        "severity": "warning",
        "condition": {"type": "buffer_dropping"},
        "description": "A device's outbox is full and dropping data it has not sent.",
    },
    {
        "name": "Drift over threshold",
        "type": "metric_threshold",
        "severity": "warning",
        "condition": {
            "type": "metric_threshold",
            "metric": "drift.psi",
            "op": ">=",
            "threshold": 0.25,
            "clear_at": 0.1,
        },
        "description": "A histogram of what the camera sees or the model answers drifted from "
        "the model's training baseline: PSI at or over 0.25; resolved under 0.1.",
    },
    {
        "name": "Model rejected",
        "type": "event",
        "severity": "warning",
        "condition": {
            "type": "event",
            "events": ["model_rejected"],
            "resolve_on": ["model_activated"],
        },
        "description": "A device refused a model (bad hash, signature or file).",
    },
]


def upgrade() -> None:
    """Create the alert tables and insert the default rules."""
    rules = op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("condition", JSON, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
        sa.UniqueConstraint("name", name="uq_alert_rules_name"),
    )
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("secret", sa.String(256), nullable=True),
        sa.Column("recipients", JSON, nullable=False),
        sa.Column("min_severity", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("kind IN ('webhook', 'email')", name="ck_alert_channels_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_alert_channels"),
        sa.UniqueConstraint("name", name="uq_alert_channels_name"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("rule_name", NAME, nullable=False),
        sa.Column("rule_type", sa.String(32), nullable=False),
        sa.Column("device", ID, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", NAME, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("resolved_by", NAME, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("active_key", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("active_key", name="uq_alerts_active_key"),
    )
    op.create_index("ix_alerts_rule_id", "alerts", ["rule_id"])
    op.create_index("ix_alerts_device", "alerts", ["device"])
    op.create_index("ix_alerts_site_id", "alerts", ["site_id"])
    op.create_index("ix_alerts_state_id", "alerts", ["state", "id"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("channel_kind", sa.String(16), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
    )
    op.create_index("ix_alert_deliveries_alert_id", "alert_deliveries", ["alert_id"])
    op.create_index("ix_alert_deliveries_channel_id", "alert_deliveries", ["channel_id"])
    now = datetime.now(UTC)
    op.bulk_insert(
        rules,
        [{**rule, "enabled": True, "created_at": now, "updated_at": now} for rule in DEFAULT_RULES],
    )


def downgrade() -> None:
    """Drop the alert tables."""
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
    op.drop_table("alert_channels")
    op.drop_table("alert_rules")
