"""Reads the API needs: a device's status, a metric's points over time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import DeviceStatus, Telemetry

MAX_RANGE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class StatusView:
    """A device's newest state as stored in `device_status`."""

    device: str
    online: bool
    last_seen: datetime
    agent_version: str | None
    state: dict[str, Any]
    state_ts: datetime


@dataclass(frozen=True, slots=True)
class Sample:
    """One stored telemetry point."""

    ts: datetime
    value: float
    tags: dict[str, Any]


@translated
async def latest_status(session: AsyncSession, *, device: str) -> StatusView | None:
    """The stored status of `device`, or None when it never sent a state."""
    row = await session.get(DeviceStatus, device, populate_existing=True)
    if row is None:
        return None
    return StatusView(
        row.device, row.online, row.last_seen, row.agent_version, dict(row.state), row.state_ts
    )


@translated
async def telemetry_range(
    session: AsyncSession,
    *,
    device: str,
    metric: str,
    since: datetime,
    until: datetime,
    limit: int = 10_000,
) -> list[Sample]:
    """Points of `metric` from `device` in [since, until), oldest first, at most `limit`."""
    query = (
        select(Telemetry.ts, Telemetry.value, Telemetry.tags)
        .where(
            Telemetry.device == device,
            Telemetry.metric == metric,
            Telemetry.ts >= since,
            Telemetry.ts < until,
        )
        .order_by(Telemetry.ts, Telemetry.stream, Telemetry.seq, Telemetry.idx)
        .limit(max(0, min(limit, MAX_RANGE_LIMIT)))
    )
    return [Sample(ts, value, dict(tags)) for ts, value, tags in await session.execute(query)]
