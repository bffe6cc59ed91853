"""The hub's tables (SQLAlchemy 2 declarative), identical on PostgreSQL and SQLite.

The idempotency key of the wire contract, `(device, stream, seq)` (plus `idx`, the
position of a point or frame inside its batch), is the primary key of every table
that stores envelopes, so `INSERT ... ON CONFLICT DO NOTHING` on it makes re-sends
harmless. Alembic migrations in `hub/storage/migrations` create the same schema;
a test fails when the two disagree.

Example:
    >>> {"telemetry", "detections", "frames", "commands"} <= set(Base.metadata.tables)
    True
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hub.storage.columns import BigId, JSONDoc, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations (and SQLite batch mode) can name them."""

DEVICE_LEN = 63
STREAM_LEN = 64
NAME_LEN = 128
SHA256_LEN = 64


class Base(DeclarativeBase):
    """Declarative base of every hub table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDoc,
        list[Any]: JSONDoc,
        list[str]: JSONDoc,
    }


def _device(*, primary_key: bool = True) -> Mapped[str]:
    return mapped_column(String(DEVICE_LEN), primary_key=primary_key)


def _stream() -> Mapped[str]:
    return mapped_column(String(STREAM_LEN), primary_key=True)


def _seq() -> Mapped[int]:
    return mapped_column(BigInteger, primary_key=True, autoincrement=False)


def _idx() -> Mapped[int]:
    return mapped_column(Integer, primary_key=True, autoincrement=False)


def table_of(model: type[Base]) -> Table:
    """The Core `Table` of a mapped class (typed, for bulk statements)."""
    table = model.__table__
    assert isinstance(table, Table)  # noqa: S101 - declarative classes map one Table
    return table


class Telemetry(Base):
    """One telemetry point; `idx` is its position in the envelope's batch."""

    __tablename__ = "telemetry"

    device: Mapped[str] = _device()
    stream: Mapped[str] = _stream()
    seq: Mapped[int] = _seq()
    idx: Mapped[int] = _idx()
    ts: Mapped[datetime]
    metric: Mapped[str] = mapped_column(String(NAME_LEN))
    value: Mapped[float] = mapped_column(Double)
    tags: Mapped[dict[str, Any]]

    __table_args__ = (
        Index("ix_telemetry_device_metric_ts", "device", "metric", "ts"),
        # Rollups and retention scan by time across devices; BRIN is tiny on PostgreSQL.
        Index("ix_telemetry_ts", "ts", postgresql_using="brin"),
    )


class Detection(Base):
    """One frame result; `classes` lists the class names present, for filtering."""

    __tablename__ = "detections"

    device: Mapped[str] = _device()
    stream: Mapped[str] = _stream()
    seq: Mapped[int] = _seq()
    idx: Mapped[int] = _idx()
    ts: Mapped[datetime]
    frame_id: Mapped[str] = mapped_column(String(NAME_LEN))
    camera: Mapped[str] = mapped_column(String(NAME_LEN))
    model_name: Mapped[str] = mapped_column(String(NAME_LEN))
    model_version: Mapped[str] = mapped_column(String(NAME_LEN))
    model_sha256: Mapped[str] = mapped_column(String(SHA256_LEN))
    objects: Mapped[list[Any]]
    zones: Mapped[dict[str, Any]]
    latency_ms: Mapped[float] = mapped_column(Double)
    classes: Mapped[list[str]]

    __table_args__ = (
        Index("ix_detections_device_ts", "device", "ts"),
        Index("ix_detections_ts", "ts", postgresql_using="brin"),
    )


class EventRow(Base):
    """One device event (`events` channel)."""

    __tablename__ = "events"

    device: Mapped[str] = _device()
    stream: Mapped[str] = _stream()
    seq: Mapped[int] = _seq()
    ts: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(NAME_LEN))
    severity: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_events_device_ts", "device", "ts"),)


class AckRow(Base):
    """One command lifecycle report (`acks` channel)."""

    __tablename__ = "acks"

    device: Mapped[str] = _device()
    stream: Mapped[str] = _stream()
    seq: Mapped[int] = _seq()
    cmd_id: Mapped[str] = mapped_column(String(NAME_LEN), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    detail: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(NAME_LEN))


class DeviceStatus(Base):
    """The newest `state` of each device (by envelope `ts`), including its last will."""

    __tablename__ = "device_status"

    device: Mapped[str] = _device()
    online: Mapped[bool] = mapped_column(Boolean)
    last_seen: Mapped[datetime]
    agent_version: Mapped[str | None] = mapped_column(String(NAME_LEN))
    state: Mapped[dict[str, Any]]
    state_ts: Mapped[datetime]


class DeadLetter(Base):
    """Input that could not be used, kept with the reason (payload capped at 64 KiB)."""

    __tablename__ = "deadletters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(256))
    device: Mapped[str | None] = mapped_column(String(DEVICE_LEN))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    truncated: Mapped[bool] = mapped_column(Boolean)


class ReceivedSeq(Base):
    """A seq stored for a stream and not yet covered by its watermark."""

    __tablename__ = "received_seqs"

    device: Mapped[str] = _device()
    stream: Mapped[str] = _stream()
    seq: Mapped[int] = _seq()


class StreamMark(Base):
    """The `ingested` watermark: highest contiguous seq stored for a stream."""

    __tablename__ = "stream_marks"

    device: Mapped[str] = _device()
    stream: Mapped[str] = _stream()
    seq: Mapped[int] = mapped_column(BigInteger)


class TelemetryRollup(Base):
    """One minute of one metric of one device: count, min, max, sum, avg."""

    __tablename__ = "telemetry_rollups"

    device: Mapped[str] = _device()
    metric: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    min: Mapped[float] = mapped_column(Double)
    max: Mapped[float] = mapped_column(Double)
    sum: Mapped[float] = mapped_column(Double)
    avg: Mapped[float] = mapped_column(Double)

    __table_args__ = (Index("ix_telemetry_rollups_minute", "minute", postgresql_using="brin"),)


class DeviceCredential(Base):
    """A device's MQTT login for the embedded broker: the username is the device id.

    Only an argon2 hash of the password is kept; `revoked_at` set means refused.
    """

    __tablename__ = "device_credentials"

    device: Mapped[str] = _device()
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


ROLE_LEN = 16
USERNAME_LEN = 64


class User(Base):
    """A person (or service account) who uses the API, with a role and an optional site scope.

    `sites` None means every site; `token_version` is bumped when the password, role,
    scope or disabled flag changes, which invalidates the user's outstanding tokens.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(USERNAME_LEN), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(ROLE_LEN))
    sites: Mapped[list[str] | None] = mapped_column(JSONDoc)
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean)
    token_version: Mapped[int] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="role"),)


class ApiKey(Base):
    """An API key: `prefix` finds the row, only a SHA-256 of the secret is kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(SHA256_LEN))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RefreshToken(Base):
    """One refresh token of a login session (`family`); single use, kept as a SHA-256."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(SHA256_LEN))
    token_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditRow(Base):
    """One audit record; `hash` chains it to the row before (`prev_hash`).

    `id` is assigned by the writer (previous id + 1) under a lock, so ids have no
    gaps and a deleted row shows as one. `detail` is canonical JSON text, hashed as
    stored.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(NAME_LEN))
    role: Mapped[str | None] = mapped_column(String(ROLE_LEN))
    action: Mapped[str] = mapped_column(String(256))
    target: Mapped[str | None] = mapped_column(String(512))
    decision: Mapped[str] = mapped_column(String(8))
    result: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(SHA256_LEN))
    hash: Mapped[str] = mapped_column(String(SHA256_LEN))


PUBLIC_KEY_LEN = 64


class Site(Base):
    """A place devices belong to (a plant, a warehouse); users are scoped to sites."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(DEVICE_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime]
    layout: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    """Its floor plan (`hub.api.schemas.assets.SiteLayout` as JSON); null for none."""


class DeviceGroup(Base):
    """A named group of devices inside one site (a line, a fleet); names unique per site."""

    __tablename__ = "device_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(
        String(DEVICE_LEN), ForeignKey("sites.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("site_id", "name"),)


class Device(Base):
    """A robot, gateway or camera of a site; `removed_at` set means removed (id stays taken)."""

    __tablename__ = "devices"

    id: Mapped[str] = _device()
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    kind: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[str] = mapped_column(
        String(DEVICE_LEN), ForeignKey("sites.id", ondelete="RESTRICT"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_groups.id", ondelete="SET NULL"), index=True
    )
    labels: Mapped[dict[str, Any]]
    public_key: Mapped[str | None] = mapped_column(String(PUBLIC_KEY_LEN))
    created_at: Mapped[datetime]
    enrolled_at: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("kind IN ('robot', 'gateway', 'camera')", name="kind"),)


class EnrollmentToken(Base):
    """A single-use, expiring enrollment token; only a SHA-256 of the token is kept."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(SHA256_LEN), unique=True)
    site_id: Mapped[str] = mapped_column(
        String(DEVICE_LEN), ForeignKey("sites.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_groups.id", ondelete="SET NULL")
    )
    name_prefix: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by_device: Mapped[str | None] = mapped_column(String(DEVICE_LEN))


COMMAND_ID_LEN = 64
STATUS_LEN = 16


class CommandRow(Base):
    """A command the hub signed and sent, with its current lifecycle state.

    `status` starts `sent`; `publish_failed` when the broker never confirmed it; then
    the device's acks advance it (`status_rank` only grows, so acks arriving late or
    twice never move it back). The per-ack history stays in `acks` (by `cmd_id`).
    """

    __tablename__ = "commands"

    cmd_id: Mapped[str] = mapped_column(String(COMMAND_ID_LEN), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(DEVICE_LEN))
    site_id: Mapped[str] = mapped_column(String(DEVICE_LEN), index=True)
    type: Mapped[str] = mapped_column(String(STATUS_LEN))
    params: Mapped[dict[str, Any]]
    issued_by: Mapped[str] = mapped_column(String(NAME_LEN))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    sig: Mapped[str] = mapped_column(String(NAME_LEN))
    batch: Mapped[str | None] = mapped_column(String(NAME_LEN))
    status: Mapped[str] = mapped_column(String(STATUS_LEN))
    status_rank: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    publish_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_commands_device_id_issued_at", "device_id", "issued_at"),)


# --- alerts

ALERT_KEY_LEN = 200


class AlertRuleRow(Base):
    """An alert rule: a condition (`type` and its JSON `condition`), severity, on or off."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    condition: Mapped[dict[str, Any]]
    severity: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AlertChannelRow(Base):
    """Where alerts are sent: a webhook (URL and HMAC secret) or e-mail addresses."""

    __tablename__ = "alert_channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(String(256))
    recipients: Mapped[list[str]]
    min_severity: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (CheckConstraint("kind IN ('webhook', 'email')", name="kind"),)


class AlertRow(Base):
    """One alert of one rule on one device, from raised to resolved.

    `active_key` is `"{rule_id}:{device}"` while the alert is not resolved and NULL
    after: its unique constraint is what deduplicates alerts per (rule, device).
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(Integer, index=True)
    rule_name: Mapped[str] = mapped_column(String(NAME_LEN))
    rule_type: Mapped[str] = mapped_column(String(32))
    device: Mapped[str] = mapped_column(String(DEVICE_LEN), index=True)
    site_id: Mapped[str] = mapped_column(String(DEVICE_LEN), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]]
    count: Mapped[int] = mapped_column(Integer)
    raised_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(NAME_LEN))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(NAME_LEN))
    updated_at: Mapped[datetime]
    active_key: Mapped[str | None] = mapped_column(String(ALERT_KEY_LEN), unique=True)

    __table_args__ = (Index("ix_alerts_state_id", "state", "id"),)


class AlertDeliveryRow(Base):
    """One attempt to notify a channel of an alert: the delivery log."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigInteger, index=True)
    channel_id: Mapped[int] = mapped_column(Integer, index=True)
    channel_kind: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Double)


# --- model registry


class ModelVersionRow(Base):
    """One pushed model version: its artifact's sha256 and size, card and signed manifest.

    A (name, version) never changes once pushed; the artifact lives in the registry's
    store under its sha256.
    """

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    version: Mapped[str] = mapped_column(String(NAME_LEN))
    sha256: Mapped[str] = mapped_column(String(SHA256_LEN), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    card: Mapped[dict[str, Any]]
    manifest: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("name", "version"),)


class RolloutRow(Base):
    """A rollout of one model version to a target, canary first; `state` as in `hub.registry`."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True
    )
    target: Mapped[dict[str, Any]]
    canary_percent: Mapped[int] = mapped_column(Integer)
    auto_promote: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(STATUS_LEN))
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    canary_active_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class RolloutDeviceRow(Base):
    """One device of a rollout: canary or not, when assigned, what it ran before."""

    __tablename__ = "rollout_devices"

    rollout_id: Mapped[int] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[str] = _device()
    canary: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(STATUS_LEN))
    assigned_at: Mapped[datetime | None]
    previous_model_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)


class ModelAssignmentRow(Base):
    """The model each device is assigned now (what its retained `model` topic carries)."""

    __tablename__ = "model_assignments"

    device_id: Mapped[str] = _device()
    model_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True
    )
    rollout_id: Mapped[int | None] = mapped_column(Integer)
    assigned_at: Mapped[datetime]


# --- frames


class FrameRow(Base):
    """A JPEG a device sent and the hub keeps: a rule-hit snapshot or a capture for labelling.

    Frames sent for inference by devices without a model are routed, not kept here.
    """

    __tablename__ = "frames"

    device: Mapped[str] = _device()
    stream: Mapped[str] = _stream()
    seq: Mapped[int] = _seq()
    ts: Mapped[datetime]
    frame_id: Mapped[str] = mapped_column(String(NAME_LEN))
    camera: Mapped[str] = mapped_column(String(NAME_LEN))
    purpose: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("ix_frames_device_purpose_ts", "device", "purpose", "ts"),
        Index("ix_frames_purpose_ts", "purpose", "ts"),
    )


# --- drift


class DriftReference(Base):
    """What a device's camera normally shows under one model: the mean of its first drift
    windows, learned by the drift worker; `drift.psi` compares each later window with it."""

    __tablename__ = "drift_references"

    device: Mapped[str] = _device()
    camera: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    model_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    windows: Mapped[int] = mapped_column(Integer)
    """How many windows were folded in; the reference is in use from `reference_windows`."""
    last_window_ms: Mapped[int] = mapped_column(BigInteger)
    """The newest window folded in (a window read again after a restart is not folded twice)."""
    histograms: Mapped[dict[str, list[float]]] = mapped_column(JSONDoc)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
