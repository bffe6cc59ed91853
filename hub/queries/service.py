"""`QueryService`: telemetry series, detections and events, seen through the caller's scope.

A device outside the caller's sites answers 404, as in the asset routes; the fleet
event listing keeps to the devices of the caller's sites. Telemetry is returned so
that a chart never gets more than it can draw: `raw` and `1m` stop at `max_points`
(and say so), `auto` gives raw points when the range holds at most `max_points` of
them and otherwise merges the one-minute rollups into at most `max_points` buckets.

Example:
    >>> bucket_width(timedelta(hours=24), 500)  # 172.8 s, rounded up to whole minutes
    180
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.auth.errors import InvalidInput, NotFound
from hub.auth.principal import Principal
from hub.storage.db import transaction
from hub.storage.repositories import assets as asset_repo
from hub.storage.repositories import frames as frames_repo
from hub.storage.repositories import readings as repo
from hub.storage.repositories.frames import FrameFilter, FrameView
from hub.storage.repositories.readings import (
    Bucket,
    DetectionFilter,
    DetectionView,
    EventFilter,
    EventView,
    Point,
    Position,
    Window,
)
from hub.storage.repositories.rollups import floor_minute

Resolution = Literal["raw", "1m", "auto"]
DEFAULT_RANGE = timedelta(hours=1)
MAX_PAGE = 500
_Row = TypeVar("_Row", DetectionView, EventView, FrameView)


def bucket_width(span: timedelta, max_points: int) -> int:
    """Seconds per bucket so that `span` fits in `max_points` buckets: whole minutes, >= 60."""
    minutes = math.ceil(span.total_seconds() / max_points / 60)
    return 60 * max(1, minutes)


def encode_cursor(position: Position) -> str:
    """An opaque cursor for the row after `position` (newest-first listings).

    Example:
        >>> at = datetime(2026, 1, 1, tzinfo=UTC)
        >>> decode_cursor(encode_cursor(Position(at, "amr-7", "s.1", 9, 2))).seq
        9
    """
    micros = round(position.ts.timestamp() * 1_000_000)
    key = [micros, position.device, position.stream, position.seq, position.idx]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor stands for; 422 when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, device, stream, seq, idx = orjson.loads(raw)
        at = datetime.fromtimestamp(micros / 1_000_000, UTC)
        return Position(at, _text(device), _text(stream), _int(seq), _int(idx))
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError, OverflowError):
        raise InvalidInput("not a cursor from this listing", field="cursor") from None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(value)
    return value


@dataclass(frozen=True, slots=True)
class Series:
    """A metric over [since, until): raw `points`, or `buckets` of `bucket_s` seconds."""

    metric: str
    since: datetime
    until: datetime
    resolution: Literal["raw", "1m", "bucketed"]
    bucket_s: int | None
    points: list[Point]
    buckets: list[Bucket]
    truncated: bool


@dataclass(frozen=True, slots=True)
class Range:
    """A checked time range; `since` None means unbounded below."""

    since: datetime | None
    until: datetime | None

    @classmethod
    def of(cls, since: datetime | None, until: datetime | None) -> Range:
        """The range, or 422 when `since` is after `until`."""
        if since is not None and until is not None and since > until:
            raise InvalidInput("`from` must not be after `to`", field="from")
        return cls(since, until)


class QueryService:
    """What devices sent, for the API."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._clock = sessions, clock

    async def metrics(self, principal: Principal, device_id: str) -> list[str]:
        """The metric names the device has data for."""
        async with transaction(self._sessions) as session:
            await _visible_device(session, principal, device_id)
            return await repo.metric_names(session, device=device_id)

    async def telemetry(
        self,
        principal: Principal,
        device_id: str,
        *,
        metric: str,
        span: Range,
        resolution: Resolution,
        max_points: int,
    ) -> Series:
        """The metric over the range (default: the last hour) at the asked resolution."""
        until = span.until or self._clock()
        since = span.since or until - DEFAULT_RANGE
        Range.of(since, until)
        async with transaction(self._sessions) as session:
            await _visible_device(session, principal, device_id)
            series = _SeriesQuery(session, device_id, metric, since, until, max_points)
            if resolution == "1m":
                return await series.minutes()
            raw = await series.raw()
            if resolution == "raw" or not raw.truncated:
                return raw
            return await series.bucketed()

    async def detections(
        self,
        principal: Principal,
        device_id: str,
        where: DetectionFilter,
        *,
        span: Range,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[DetectionView], str | None]:
        """A page of the device's frame results, newest first, and the next page's cursor."""
        window = _window(span, cursor, limit)
        async with transaction(self._sessions) as session:
            await _visible_device(session, principal, device_id)
            rows = await repo.list_detections(session, device=device_id, where=where, window=window)
        return _page(rows, limit)

    async def events(
        self,
        principal: Principal,
        device_id: str | None,
        *,
        type_: str | None,
        severity: str | None,
        span: Range,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[EventView], str | None]:
        """A page of events of one device, or of every device the caller may see."""
        window = _window(span, cursor, limit)
        where = EventFilter(device=device_id, sites=principal.sites, type=type_, severity=severity)
        async with transaction(self._sessions) as session:
            if device_id is not None:
                await _visible_device(session, principal, device_id)
            rows = await repo.list_events(session, where=where, window=window)
        return _page(rows, limit)

    async def frames(
        self,
        principal: Principal,
        device_id: str | None,
        *,
        purpose: str | None,
        span: Range,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[FrameView], str | None]:
        """A page of kept frames (snapshots, captures) of one device or of the caller's sites."""
        window = _window(span, cursor, limit)
        where = FrameFilter(device=device_id, sites=principal.sites, purpose=purpose)
        async with transaction(self._sessions) as session:
            if device_id is not None:
                await _visible_device(session, principal, device_id)
            rows = await frames_repo.list_frames(session, where=where, window=window)
        return _page(rows, limit)

    async def frame_jpeg(self, principal: Principal, device_id: str, frame_id: str) -> bytes:
        """The JPEG of a kept frame; 404 when there is none (or the device is out of scope)."""
        async with transaction(self._sessions) as session:
            await _visible_device(session, principal, device_id)
            data = await frames_repo.frame_jpeg(session, device=device_id, frame_id=frame_id)
        if data is None:
            raise NotFound(f"no kept frame {frame_id!r} of {device_id!r}", code="frame_not_found")
        return data


@dataclass(frozen=True, slots=True)
class _SeriesQuery:
    session: AsyncSession
    device: str
    metric: str
    since: datetime
    until: datetime
    max_points: int

    async def raw(self) -> Series:
        points = await repo.raw_points(
            self.session,
            device=self.device,
            metric=self.metric,
            since=self.since,
            until=self.until,
            limit=self.max_points + 1,
        )
        return self._series("raw", None, points=points[: self.max_points], more=points)

    async def minutes(self) -> Series:
        rows = await repo.minute_rollups(
            self.session,
            device=self.device,
            metric=self.metric,
            since=floor_minute(self.since),
            until=self.until,
            limit=self.max_points + 1,
        )
        return self._series("1m", 60, buckets=rows[: self.max_points], more=rows)

    async def bucketed(self) -> Series:
        origin = floor_minute(self.since)
        width = bucket_width(self.until - origin, self.max_points)
        buckets = await repo.bucketed_rollups(
            self.session,
            device=self.device,
            metric=self.metric,
            origin=origin,
            until=self.until,
            width_s=width,
        )
        return self._series("bucketed", width, buckets=buckets)

    def _series(
        self,
        resolution: Literal["raw", "1m", "bucketed"],
        bucket_s: int | None,
        *,
        points: list[Point] | None = None,
        buckets: list[Bucket] | None = None,
        more: list[Point] | list[Bucket] | None = None,
    ) -> Series:
        return Series(
            metric=self.metric,
            since=self.since,
            until=self.until,
            resolution=resolution,
            bucket_s=bucket_s,
            points=points or [],
            buckets=buckets or [],
            truncated=more is not None and len(more) > self.max_points,
        )


def _window(span: Range, cursor: str | None, limit: int) -> Window:
    after = decode_cursor(cursor) if cursor is not None else None
    return Window(span.since, span.until, after, _clamp(limit) + 1)


def _clamp(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


def _page(rows: list[_Row], limit: int) -> tuple[list[_Row], str | None]:
    page = rows[: _clamp(limit)]
    return page, (encode_cursor(page[-1].position) if len(rows) > len(page) else None)


async def _visible_device(session: AsyncSession, principal: Principal, device_id: str) -> None:
    device = await asset_repo.get_device(session, device_id=device_id)
    if device is None or not principal.can_access_site(device.site_id):
        raise NotFound(f"no device {device_id!r}", code="device_not_found", device=device_id)
