"""One-minute telemetry rollups: count, min, max, sum and avg per device, metric, minute."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hub.storage.columns import UTCDateTime
from hub.storage.errors import translated
from hub.storage.models import Telemetry, TelemetryRollup
from hub.storage.repositories.bulk import dialect_insert

UPSERT_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Rollup:
    """One minute of one metric of one device (`minute` is the minute's start, UTC)."""

    device: str
    metric: str
    minute: datetime
    count: int
    min: float
    max: float
    sum: float
    avg: float


def floor_minute(ts: datetime) -> datetime:
    """`ts` truncated to its minute.

    Example:
        >>> from datetime import UTC
        >>> floor_minute(datetime(2026, 1, 1, 12, 34, 56, 789, tzinfo=UTC)).isoformat()
        '2026-01-01T12:34:00+00:00'
    """
    return ts.replace(second=0, microsecond=0)


def _minute_of(dialect: str) -> ColumnElement[datetime]:
    # Literals, not bound parameters: GROUP BY must repeat the SELECT expression exactly.
    if dialect == "postgresql":
        unit: ColumnElement[str] = literal_column("'minute'")
        zone: ColumnElement[str] = literal_column("'UTC'")
        expression: ColumnElement[Any] = func.date_trunc(unit, Telemetry.ts, zone)
    else:  # SQLite stores UTC text "YYYY-MM-DD HH:MM:SS.ffffff"
        expression = func.strftime(literal_column("'%Y-%m-%d %H:%M:00.000000'"), Telemetry.ts)
    return type_coerce(expression, UTCDateTime()).label("minute")


@translated
async def rollup_telemetry(
    session: AsyncSession, *, since: datetime, until: datetime
) -> list[Rollup]:
    """Compute and upsert the rollups of every minute in [since, until); return them.

    Both bounds are floored to the minute, so a minute is always rolled up whole;
    pass `until` = now to leave the running minute alone. Recomputing a minute
    replaces its row (late points are then counted); a minute without points keeps
    whatever row it had (raw data may have been removed by retention).

    Example:
        >>> async def last_closed_minutes(session, now):
        ...     return await rollup_telemetry(session, since=now - timedelta(minutes=3), until=now)
    """
    conn = await session.connection()
    rollups = await _compute(conn, floor_minute(since), floor_minute(until))
    await _upsert(conn, rollups)
    return rollups


async def _compute(conn: AsyncConnection, since: datetime, until: datetime) -> list[Rollup]:
    minute = _minute_of(conn.dialect.name)
    query = (
        select(
            Telemetry.device,
            Telemetry.metric,
            minute,
            func.count(),
            func.min(Telemetry.value),
            func.max(Telemetry.value),
            func.sum(Telemetry.value),
        )
        .where(Telemetry.ts >= since, Telemetry.ts < until)
        .group_by(Telemetry.device, Telemetry.metric, minute)
        .order_by(Telemetry.device, Telemetry.metric, minute)
    )
    rows = (await conn.execute(query)).all()
    return [
        Rollup(device, metric, at, count, low, high, total, total / count)
        for device, metric, at, count, low, high, total in rows
    ]


async def _upsert(conn: AsyncConnection, rollups: Sequence[Rollup]) -> None:
    insert = dialect_insert(conn)
    for start in range(0, len(rollups), UPSERT_CHUNK):
        part = [asdict(r) for r in rollups[start : start + UPSERT_CHUNK]]
        statement = insert(TelemetryRollup).values(part)
        new = statement.excluded
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["device", "metric", "minute"],
                set_={name: new[name] for name in ("count", "min", "max", "sum", "avg")},
            )
        )
