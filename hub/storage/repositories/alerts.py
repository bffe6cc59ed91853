"""Alert rules, notification channels, alerts and the delivery log.

An alert is open (`active` or `acknowledged`) while its `active_key`
(`"{rule_id}:{device}"`) is set; the unique constraint on it keeps one open alert
per (rule, device), and `raise_alert` repeats that one instead of opening another.

Example:
    >>> active_key(3, "amr-7")
    '3:amr-7'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import (
    AlertChannelRow,
    AlertDeliveryRow,
    AlertRow,
    AlertRuleRow,
    Device,
    DeviceStatus,
    table_of,
)
from hub.storage.repositories.bulk import dialect_insert


def active_key(rule_id: int, device: str) -> str:
    """The dedupe key of an open alert."""
    return f"{rule_id}:{device}"


@dataclass(frozen=True, slots=True)
class RuleRecord:
    """An alert rule as stored; `condition` is the JSON form of `hub.alerts.conditions`."""

    id: int
    name: str
    type: str
    condition: dict[str, Any]
    severity: str
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """A notification channel as stored (the webhook secret included)."""

    id: int
    name: str
    kind: str
    url: str | None
    secret: str | None
    recipients: list[str]
    min_severity: str
    enabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert as stored."""

    id: int
    rule_id: int
    rule_name: str
    rule_type: str
    device: str
    site_id: str
    severity: str
    state: str
    message: str
    detail: dict[str, Any]
    count: int
    raised_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One notification attempt."""

    id: int
    alert_id: int
    channel_id: int
    channel_kind: str
    event: str
    attempt: int
    at: datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """What `list_alerts` narrows to; `sites` None means every site."""

    sites: frozenset[str] | None = None
    state: str | None = None
    severity: str | None = None
    device: str | None = None
    site: str | None = None
    rule_id: int | None = None


@dataclass(frozen=True, slots=True)
class LivenessRow:
    """A device's last contact, with its site ("" when the device is not registered)."""

    device: str
    site_id: str
    online: bool
    last_seen: datetime
    state_ts: datetime


def _rule(r: AlertRuleRow) -> RuleRecord:
    return RuleRecord(
        r.id,
        r.name,
        r.type,
        dict(r.condition),
        r.severity,
        r.enabled,
        r.description,
        r.created_at,
        r.updated_at,
    )


def _channel(c: AlertChannelRow) -> ChannelRecord:
    return ChannelRecord(
        c.id,
        c.name,
        c.kind,
        c.url,
        c.secret,
        list(c.recipients or []),
        c.min_severity,
        c.enabled,
        c.created_at,
        c.updated_at,
    )


def _alert(a: AlertRow) -> AlertRecord:
    return AlertRecord(
        id=a.id,
        rule_id=a.rule_id,
        rule_name=a.rule_name,
        rule_type=a.rule_type,
        device=a.device,
        site_id=a.site_id,
        severity=a.severity,
        state=a.state,
        message=a.message,
        detail=dict(a.detail or {}),
        count=a.count,
        raised_at=a.raised_at,
        last_seen_at=a.last_seen_at,
        acknowledged_at=a.acknowledged_at,
        acknowledged_by=a.acknowledged_by,
        resolved_at=a.resolved_at,
        resolved_by=a.resolved_by,
        updated_at=a.updated_at,
    )


def _delivery(d: AlertDeliveryRow) -> DeliveryRecord:
    return DeliveryRecord(
        d.id,
        d.alert_id,
        d.channel_id,
        d.channel_kind,
        d.event,
        d.attempt,
        d.at,
        d.ok,
        d.status_code,
        d.error,
        d.duration_ms,
    )


# --- rules ---------------------------------------------------------------------------------


@translated
async def list_rules(session: AsyncSession, *, enabled_only: bool = False) -> list[RuleRecord]:
    """Every rule by id (only the enabled ones when asked)."""
    query = select(AlertRuleRow).order_by(AlertRuleRow.id)
    if enabled_only:
        query = query.where(AlertRuleRow.enabled.is_(True))
    query = query.execution_options(populate_existing=True)
    return [_rule(r) for r in await session.scalars(query)]


@translated
async def get_rule(session: AsyncSession, *, rule_id: int) -> RuleRecord | None:
    """The rule, or None."""
    row = await session.get(AlertRuleRow, rule_id, populate_existing=True)
    return None if row is None else _rule(row)


@translated
async def rule_named(session: AsyncSession, *, name: str) -> RuleRecord | None:
    """The rule called `name`, or None."""
    row = await session.scalar(select(AlertRuleRow).where(AlertRuleRow.name == name))
    return None if row is None else _rule(row)


@translated
async def insert_rule(session: AsyncSession, *, values: Mapping[str, Any]) -> int:
    """Store a new rule; returns its id."""
    result = await session.execute(insert(AlertRuleRow).values(**values).returning(AlertRuleRow.id))
    return int(result.scalar_one())


@translated
async def update_rule(session: AsyncSession, *, rule_id: int, values: Mapping[str, Any]) -> None:
    """Change some fields of a rule."""
    await session.execute(update(AlertRuleRow).where(AlertRuleRow.id == rule_id).values(**values))


@translated
async def delete_rule(session: AsyncSession, *, rule_id: int) -> bool:
    """Delete a rule (its alerts stay, with the rule's name); False when there was none."""
    result = await session.execute(delete(AlertRuleRow).where(AlertRuleRow.id == rule_id))
    return int(getattr(result, "rowcount", 0)) > 0


# --- channels ------------------------------------------------------------------------------


@translated
async def list_channels(
    session: AsyncSession, *, enabled_only: bool = False
) -> list[ChannelRecord]:
    """Every channel by id (only the enabled ones when asked)."""
    query = select(AlertChannelRow).order_by(AlertChannelRow.id)
    if enabled_only:
        query = query.where(AlertChannelRow.enabled.is_(True))
    query = query.execution_options(populate_existing=True)
    return [_channel(c) for c in await session.scalars(query)]


@translated
async def get_channel(session: AsyncSession, *, channel_id: int) -> ChannelRecord | None:
    """The channel, or None."""
    row = await session.get(AlertChannelRow, channel_id, populate_existing=True)
    return None if row is None else _channel(row)


@translated
async def channel_named(session: AsyncSession, *, name: str) -> ChannelRecord | None:
    """The channel called `name`, or None."""
    row = await session.scalar(select(AlertChannelRow).where(AlertChannelRow.name == name))
    return None if row is None else _channel(row)


@translated
async def insert_channel(session: AsyncSession, *, values: Mapping[str, Any]) -> int:
    """Store a new channel; returns its id."""
    result = await session.execute(
        insert(AlertChannelRow).values(**values).returning(AlertChannelRow.id)
    )
    return int(result.scalar_one())


@translated
async def update_channel(
    session: AsyncSession, *, channel_id: int, values: Mapping[str, Any]
) -> None:
    """Change some fields of a channel."""
    await session.execute(
        update(AlertChannelRow).where(AlertChannelRow.id == channel_id).values(**values)
    )


@translated
async def delete_channel(session: AsyncSession, *, channel_id: int) -> bool:
    """Delete a channel (its delivery log stays); False when there was none."""
    result = await session.execute(delete(AlertChannelRow).where(AlertChannelRow.id == channel_id))
    return int(getattr(result, "rowcount", 0)) > 0


# --- alerts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewAlert:
    """What raising an alert needs."""

    rule_id: int
    rule_name: str
    rule_type: str
    device: str
    site_id: str
    severity: str
    message: str
    detail: dict[str, Any]
    at: datetime


@translated
async def raise_alert(session: AsyncSession, *, alert: NewAlert) -> tuple[AlertRecord, bool]:
    """Open an alert, or repeat the open one of the same (rule, device); True when new.

    Two hub workers may raise the same alert at once: the insert that loses the race on
    `active_key` does nothing (it waits for the winner's commit), and the loser repeats
    the winner's alert instead of failing its batch.
    """
    key = active_key(alert.rule_id, alert.device)
    insert_ = dialect_insert(await session.connection())
    while True:
        row = await session.scalar(
            select(AlertRow)
            .where(AlertRow.active_key == key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is not None:
            row.count += 1
            row.last_seen_at = max(row.last_seen_at, alert.at)
            row.message, row.detail, row.updated_at = alert.message, alert.detail, alert.at
            await session.flush()
            return _alert(row), False
        inserted = await session.scalar(
            insert_(AlertRow)
            .values(
                rule_id=alert.rule_id,
                rule_name=alert.rule_name,
                rule_type=alert.rule_type,
                device=alert.device,
                site_id=alert.site_id,
                severity=alert.severity,
                state="active",
                message=alert.message,
                detail=alert.detail,
                count=1,
                raised_at=alert.at,
                last_seen_at=alert.at,
                updated_at=alert.at,
                active_key=key,
            )
            .on_conflict_do_nothing(index_elements=[AlertRow.active_key])
            .returning(AlertRow.id)
        )
        if inserted is not None:
            created = await get_alert(session, alert_id=int(inserted))
            assert created is not None  # noqa: S101 - inserted just now
            return created, True


@translated
async def open_alert(session: AsyncSession, *, rule_id: int, device: str) -> AlertRecord | None:
    """The open alert of (rule, device), or None."""
    row = await session.scalar(
        select(AlertRow)
        .where(AlertRow.active_key == active_key(rule_id, device))
        .execution_options(populate_existing=True)
    )
    return None if row is None else _alert(row)


@translated
async def open_keys(session: AsyncSession, *, rule_ids: Sequence[int]) -> set[tuple[int, str]]:
    """(rule, device) of every open alert of these rules."""
    if not rule_ids:
        return set()
    query = select(AlertRow.rule_id, AlertRow.device).where(
        AlertRow.active_key.is_not(None), AlertRow.rule_id.in_(rule_ids)
    )
    return {(r.rule_id, r.device) for r in await session.execute(query)}


@translated
async def set_state(
    session: AsyncSession, *, alert_id: int, state: str, by: str, at: datetime
) -> AlertRecord | None:
    """Move an alert to `acknowledged` or `resolved` (resolving frees its dedupe key)."""
    values: dict[str, Any] = {"state": state, "updated_at": at}
    if state == "acknowledged":
        values |= {"acknowledged_at": at, "acknowledged_by": by}
    else:
        values |= {"resolved_at": at, "resolved_by": by, "active_key": None}
    await session.execute(update(AlertRow).where(AlertRow.id == alert_id).values(**values))
    return await get_alert(session, alert_id=alert_id)


@translated
async def get_alert(session: AsyncSession, *, alert_id: int) -> AlertRecord | None:
    """The alert, or None."""
    row = await session.get(AlertRow, alert_id, populate_existing=True)
    return None if row is None else _alert(row)


@translated
async def list_alerts(
    session: AsyncSession, *, where: AlertFilter, before_id: int | None, limit: int
) -> list[AlertRecord]:
    """Up to `limit` alerts, newest first, with ids below `before_id`."""
    query = select(AlertRow).order_by(AlertRow.id.desc()).limit(limit)
    if where.sites is not None:
        query = query.where(AlertRow.site_id.in_(sorted(where.sites)))
    conditions = {
        AlertRow.state: where.state,
        AlertRow.severity: where.severity,
        AlertRow.device: where.device,
        AlertRow.site_id: where.site,
        AlertRow.rule_id: where.rule_id,
    }
    for column, value in conditions.items():
        if value is not None:
            query = query.where(column == value)
    if before_id is not None:
        query = query.where(AlertRow.id < before_id)
    query = query.execution_options(populate_existing=True)
    return [_alert(a) for a in await session.scalars(query)]


# --- devices -------------------------------------------------------------------------------


@translated
async def device_sites(session: AsyncSession, *, devices: Sequence[str]) -> dict[str, str]:
    """The site of each registered device among `devices`."""
    if not devices:
        return {}
    query = select(Device.id, Device.site_id).where(Device.id.in_(sorted(set(devices))))
    return {r.id: r.site_id for r in await session.execute(query)}


@translated
async def liveness(session: AsyncSession) -> list[LivenessRow]:
    """Last contact of every device that reported, except removed ones."""
    query = select(
        DeviceStatus.device,
        Device.site_id,
        Device.removed_at,
        DeviceStatus.online,
        DeviceStatus.last_seen,
        DeviceStatus.state_ts,
    ).outerjoin(Device, Device.id == DeviceStatus.device)
    return [
        LivenessRow(r.device, r.site_id or "", r.online, r.last_seen, r.state_ts)
        for r in await session.execute(query)
        if r.removed_at is None
    ]


# --- deliveries ----------------------------------------------------------------------------


@translated
async def insert_delivery(session: AsyncSession, *, values: Mapping[str, Any]) -> None:
    """Log one notification attempt."""
    await session.execute(insert(table_of(AlertDeliveryRow)), [dict(values)])


@translated
async def list_deliveries(
    session: AsyncSession, *, alert_id: int, limit: int = 200
) -> list[DeliveryRecord]:
    """The alert's notification attempts, oldest first."""
    query = (
        select(AlertDeliveryRow)
        .where(AlertDeliveryRow.alert_id == alert_id)
        .order_by(AlertDeliveryRow.id)
        .limit(limit)
    )
    return [_delivery(d) for d in await session.scalars(query)]
