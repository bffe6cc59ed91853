"""Initial schema: envelope tables, device status, dead letters, watermarks, rollups.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration must not change when the models do.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _device() -> sa.Column[str]:
    return sa.Column("device", sa.String(63), nullable=False)


def _stream() -> sa.Column[str]:
    return sa.Column("stream", sa.String(64), nullable=False)


def _seq() -> sa.Column[int]:
    return sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False)


def _idx() -> sa.Column[int]:
    return sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False)


def _key(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=f"pk_{table}")


def _envelope_tables() -> None:
    op.create_table(
        "telemetry",
        *(_device(), _stream(), _seq(), _idx()),
        sa.Column("ts", TS, nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        _key("telemetry", "device", "stream", "seq", "idx"),
    )
    op.create_index("ix_telemetry_device_metric_ts", "telemetry", ["device", "metric", "ts"])
    op.create_index("ix_telemetry_ts", "telemetry", ["ts"], postgresql_using="brin")
    op.create_table(
        "detections",
        *(_device(), _stream(), _seq(), _idx()),
        sa.Column("ts", TS, nullable=False),
        sa.Column("frame_id", sa.String(128), nullable=False),
        sa.Column("camera", sa.String(128), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("objects", JSON, nullable=False),
        sa.Column("zones", JSON, nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("classes", JSON, nullable=False),
        _key("detections", "device", "stream", "seq", "idx"),
    )
    op.create_index("ix_detections_device_ts", "detections", ["device", "ts"])
    op.create_index("ix_detections_ts", "detections", ["ts"], postgresql_using="brin")
    op.create_table(
        "events",
        *(_device(), _stream(), _seq()),
        sa.Column("ts", TS, nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        _key("events", "device", "stream", "seq"),
    )
    op.create_index("ix_events_device_ts", "events", ["device", "ts"])
    op.create_table(
        "acks",
        *(_device(), _stream(), _seq()),
        sa.Column("cmd_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(128), nullable=True),
        _key("acks", "device", "stream", "seq"),
    )
    op.create_index("ix_acks_cmd_id", "acks", ["cmd_id"])


def _bookkeeping_tables() -> None:
    op.create_table(
        "device_status",
        _device(),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("agent_version", sa.String(128), nullable=True),
        sa.Column("state", JSON, nullable=False),
        sa.Column("state_ts", TS, nullable=False),
        _key("device_status", "device"),
    )
    op.create_table(
        "deadletters",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("device", sa.String(63), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        _key("deadletters", "id"),
    )
    op.create_index("ix_deadletters_received_at", "deadletters", ["received_at"])
    op.create_table(
        "received_seqs",
        _device(),
        _stream(),
        _seq(),
        _key("received_seqs", "device", "stream", "seq"),
    )
    op.create_table(
        "stream_marks",
        _device(),
        _stream(),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        _key("stream_marks", "device", "stream"),
    )
    op.create_table(
        "telemetry_rollups",
        _device(),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("minute", TS, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.Double(), nullable=False) for name in ("min", "max", "sum", "avg")),
        _key("telemetry_rollups", "device", "metric", "minute"),
    )
    op.create_index(
        "ix_telemetry_rollups_minute", "telemetry_rollups", ["minute"], postgresql_using="brin"
    )


def upgrade() -> None:
    """Create every table of the first release."""
    _envelope_tables()
    _bookkeeping_tables()


def downgrade() -> None:
    """Drop everything `upgrade` created."""
    for table in (
        "telemetry_rollups",
        "stream_marks",
        "received_seqs",
        "deadletters",
        "device_status",
        "acks",
        "events",
        "detections",
        "telemetry",
    ):
        op.drop_table(table)
