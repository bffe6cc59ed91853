"""Reads of the data plane for the query API: telemetry and rollups, detections, events.

Detections and events are listed newest first with a keyset `Position` (the sort key
of the last row returned), so pages never repeat or skip rows while new ones arrive.
Telemetry buckets are aggregated from the one-minute rollups in SQL, so a chart of a
month reads one row per bucket, not one per point.

Example:
    >>> from datetime import UTC, datetime
    >>> Position(datetime(2026, 1, 1, tzinfo=UTC), "amr-7", "s1", 4, 0).key()[1:]
    ('amr-7', 's1', 4, 0)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    TextClause,
    and_,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    text,
    true,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import Detection, Device, EventRow, Telemetry, TelemetryRollup


@dataclass(frozen=True, slots=True)
class Position:
    """Where a newest-first listing stopped: the sort key of its last row."""

    ts: datetime
    device: str
    stream: str
    seq: int
    idx: int = 0

    def key(self) -> tuple[datetime, str, str, int, int]:
        """The sort key, as a tuple."""
        return (self.ts, self.device, self.stream, self.seq, self.idx)


@dataclass(frozen=True, slots=True)
class Point:
    """One raw telemetry point."""

    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Bucket:
    """Aggregated telemetry over [start, start + width)."""

    start: datetime
    count: int
    min: float
    max: float
    avg: float


@dataclass(frozen=True, slots=True)
class DetectionView:
    """One stored frame result."""

    position: Position
    frame_id: str
    camera: str
    model_name: str
    model_version: str
    model_sha256: str
    objects: list[Any]
    zones: dict[str, Any]
    latency_ms: float
    classes: list[str]


@dataclass(frozen=True, slots=True)
class EventView:
    """One stored device event."""

    position: Position
    type: str
    severity: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Window:
    """Filters common to the listings: a time range [since, until) and the page."""

    since: datetime | None
    until: datetime | None
    after: Position | None
    limit: int


def older_than(columns: Sequence[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """`columns < values` compared as a tuple (spelt out: SQLite's row values bind untyped)."""
    head, value = columns[0], values[0]
    if len(columns) == 1:
        return head < value  # type: ignore[no-any-return]
    return or_(head < value, and_(head == value, older_than(columns[1:], values[1:])))


def windowed(query: Select[Any], ts: Any, window: Window) -> Select[Any]:
    if window.since is not None:
        query = query.where(ts >= window.since)
    if window.until is not None:
        query = query.where(ts < window.until)
    return query.limit(window.limit)


# --- telemetry -----------------------------------------------------------------------------


@translated
async def raw_points(
    session: AsyncSession,
    *,
    device: str,
    metric: str,
    since: datetime,
    until: datetime,
    limit: int,
) -> list[Point]:
    """Up to `limit` points of `metric` in [since, until), oldest first."""
    query = (
        select(Telemetry.ts, Telemetry.value)
        .where(
            Telemetry.device == device,
            Telemetry.metric == metric,
            Telemetry.ts >= since,
            Telemetry.ts < until,
        )
        .order_by(Telemetry.ts, Telemetry.stream, Telemetry.seq, Telemetry.idx)
        .limit(limit)
    )
    return [Point(ts, value) for ts, value in await session.execute(query)]


@translated
async def minute_rollups(
    session: AsyncSession,
    *,
    device: str,
    metric: str,
    since: datetime,
    until: datetime,
    limit: int,
) -> list[Bucket]:
    """Up to `limit` one-minute rollups of `metric` whose minute starts in [since, until)."""
    r = TelemetryRollup
    query = (
        select(r.minute, r.count, r.min, r.max, r.avg)
        .where(r.device == device, r.metric == metric, r.minute >= since, r.minute < until)
        .order_by(r.minute)
        .limit(limit)
    )
    return [Bucket(*row) for row in await session.execute(query)]


def _epoch(dialect: str, column: Any) -> ColumnElement[float]:
    if dialect == "postgresql":
        return cast(func.extract("epoch", column), Float)
    # SQLite stores UTC text; strftime('%s') reads it as UTC seconds.
    return cast(func.strftime("%s", column), Float)


@translated
async def bucketed_rollups(
    session: AsyncSession,
    *,
    device: str,
    metric: str,
    origin: datetime,
    until: datetime,
    width_s: int,
) -> list[Bucket]:
    """The rollups of [origin, until) merged into buckets of `width_s` (a multiple of 60).

    Bucket n covers [origin + n·width, origin + (n+1)·width); `origin` is a whole minute.
    """
    r = TelemetryRollup
    dialect = (await session.connection()).dialect.name
    offset = _epoch(dialect, r.minute) - literal(origin.timestamp())
    index = func.floor(offset / literal(float(width_s))).label("bucket")
    query = (
        select(index, func.sum(r.count), func.min(r.min), func.max(r.max), func.sum(r.sum))
        .where(r.device == device, r.metric == metric, r.minute >= origin, r.minute < until)
        .group_by(index)
        .order_by(index)
    )
    return [
        Bucket(
            origin + timedelta(seconds=int(n) * width_s), int(count), low, high, total / int(count)
        )
        for n, count, low, high, total in await session.execute(query)
        if count
    ]


@translated
async def metric_names(session: AsyncSession, *, device: str) -> list[str]:
    """Every metric the device has points or rollups of, sorted."""
    raw = select(Telemetry.metric).where(Telemetry.device == device).distinct()
    rolled = select(TelemetryRollup.metric).where(TelemetryRollup.device == device).distinct()
    names = await session.scalars(union(raw, rolled))
    return sorted(names)


# --- detections ----------------------------------------------------------------------------


def _has_class(dialect: str, cls: str) -> TextClause:
    each = (
        "jsonb_array_elements_text(detections.classes) AS c(value)"
        if dialect == "postgresql"
        else "json_each(detections.classes) AS c"
    )
    sql = f"EXISTS (SELECT 1 FROM {each} WHERE c.value = :cls)"  # noqa: S608 - fixed fragments
    return text(sql).bindparams(cls=cls)


def _in_zone(dialect: str, zone: str) -> TextClause:
    """Frames with at least one object inside `zone`."""
    pg = dialect == "postgresql"
    each = "jsonb_each(detections.zones)" if pg else "json_each(detections.zones)"
    length = "jsonb_array_length" if pg else "json_array_length"
    sql = f"EXISTS (SELECT 1 FROM {each} AS z WHERE z.key = :zone AND {length}(z.value) > 0)"  # noqa: S608 - fixed fragments
    return text(sql).bindparams(zone=zone)


@dataclass(frozen=True, slots=True)
class DetectionFilter:
    """Which frame results to list (None: any)."""

    cls: str | None = None
    zone: str | None = None
    model: str | None = None


_DETECTION_ORDER = (Detection.ts, Detection.device, Detection.stream, Detection.seq, Detection.idx)


@translated
async def list_detections(
    session: AsyncSession, *, device: str, where: DetectionFilter, window: Window
) -> list[DetectionView]:
    """A page of the device's frame results, newest first, older than `window.after`."""
    dialect = (await session.connection()).dialect.name
    query = select(Detection).where(Detection.device == device)
    if where.cls is not None:
        query = query.where(_has_class(dialect, where.cls))
    if where.zone is not None:
        query = query.where(_in_zone(dialect, where.zone))
    if where.model is not None:
        query = query.where(Detection.model_name == where.model)
    if window.after is not None:
        query = query.where(older_than(_DETECTION_ORDER, window.after.key()))
    query = windowed(query.order_by(*(c.desc() for c in _DETECTION_ORDER)), Detection.ts, window)
    return [_detection(row) for row in await session.scalars(query)]


def _detection(row: Detection) -> DetectionView:
    return DetectionView(
        position=Position(row.ts, row.device, row.stream, row.seq, row.idx),
        frame_id=row.frame_id,
        camera=row.camera,
        model_name=row.model_name,
        model_version=row.model_version,
        model_sha256=row.model_sha256,
        objects=list(row.objects),
        zones=dict(row.zones),
        latency_ms=row.latency_ms,
        classes=list(row.classes),
    )


# --- events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to list: one device, or the devices of `sites` (None: every device)."""

    device: str | None = None
    sites: Collection[str] | None = None
    type: str | None = None
    severity: str | None = None


_EVENT_ORDER = (EventRow.ts, EventRow.device, EventRow.stream, EventRow.seq)


def _event_scope(where: EventFilter) -> ColumnElement[bool]:
    if where.device is not None:
        return EventRow.device == where.device
    if where.sites is None:
        return true()
    if not where.sites:
        return false()
    in_sites = select(Device.id).where(Device.site_id.in_(sorted(where.sites)))
    return EventRow.device.in_(in_sites)


@translated
async def list_events(
    session: AsyncSession, *, where: EventFilter, window: Window
) -> list[EventView]:
    """A page of events, newest first, older than `window.after`."""
    query = select(EventRow).where(_event_scope(where))
    if where.type is not None:
        query = query.where(EventRow.type == where.type)
    if where.severity is not None:
        query = query.where(EventRow.severity == where.severity)
    if window.after is not None:
        query = query.where(older_than(_EVENT_ORDER, window.after.key()[:4]))
    query = windowed(query.order_by(*(c.desc() for c in _EVENT_ORDER)), EventRow.ts, window)
    return [
        EventView(
            Position(row.ts, row.device, row.stream, row.seq), row.type, row.severity, row.detail
        )
        for row in await session.scalars(query)
    ]
