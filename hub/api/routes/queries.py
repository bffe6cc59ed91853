"""`GET` routes over what devices sent: telemetry for charts, detections, events.

Every route needs a login (viewer or above). A device outside the caller's sites
answers 404, as if it did not exist; `GET /events` lists the events of the devices
of the caller's sites only. Times are ISO-8601 with an offset (`2026-01-01T12:00:00Z`);
ranges are [from, to). Listings are newest first, paged with `next_cursor`.
Command history is `GET /devices/{id}/commands` (control).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, AwareDatetime

from hub.api.deps import CurrentPrincipal
from hub.api.schemas.auth import refuse_nul
from hub.api.schemas.errors import AUTHED, NOT_FOUND
from hub.api.schemas.queries import (
    BucketOut,
    DetectionOut,
    DetectionPage,
    EventOut,
    EventPage,
    MetricList,
    PointOut,
    SeriesOut,
)
from hub.queries.service import QueryService, Range, Resolution, decode_cursor
from hub.storage.repositories.readings import DetectionFilter, DetectionView, EventView

router = APIRouter(prefix="/api/v1", tags=["queries"])
SCOPED = {**AUTHED, **NOT_FOUND}
Severity = Literal["debug", "info", "warning", "critical"]


def query_service(request: Request) -> QueryService:
    """The app's `QueryService`."""
    service: QueryService = request.app.state.queries
    return service


QueriesDep = Annotated[QueryService, Depends(query_service)]


def _in_utc(value: datetime | None) -> datetime | None:
    """The time in UTC; 422 for one that UTC cannot hold (year 1 with +11:00, say)."""
    try:
        return None if value is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


def _a_cursor(value: str | None) -> str | None:
    """422 unless `value` is a cursor of these listings (checked here: it reaches SQL)."""
    if value is not None:
        position = decode_cursor(value)
        refuse_nul([position.device, position.stream])
    return value


From = Annotated[
    AwareDatetime | None,
    Query(alias="from", description="Start (inclusive), with an offset."),
    AfterValidator(_in_utc),
]
To = Annotated[
    AwareDatetime | None,
    Query(description="End (exclusive), with an offset."),
    AfterValidator(_in_utc),
]
Cursor = Annotated[
    str | None, Query(max_length=400, description="`next_cursor`."), AfterValidator(_a_cursor)
]
Limit = Annotated[int, Query(ge=1, le=500)]
Name = Annotated[str | None, Query(min_length=1, max_length=128)]


@router.get(
    "/devices/{device_id}/telemetry",
    summary="A metric over time, raw or aggregated for a chart",
    response_model=SeriesOut,
    response_model_by_alias=True,
    responses=SCOPED,
)
async def telemetry(
    device_id: str,
    principal: CurrentPrincipal,
    queries: QueriesDep,
    metric: Annotated[str, Query(min_length=1, max_length=128)],
    since: From = None,
    to: To = None,
    resolution: Annotated[
        Resolution,
        Query(
            description="`raw` points, `1m` rollups, or `auto`: raw points when the range "
            "holds at most `max_points`, else rollups merged into at most `max_points` buckets."
        ),
    ] = "auto",
    max_points: Annotated[int, Query(ge=2, le=10_000)] = 500,
) -> SeriesOut:
    """Defaults: the last hour to now. Rollups cover minutes the hub has rolled up."""
    series = await queries.telemetry(
        principal,
        device_id,
        metric=metric,
        span=Range.of(since, to),
        resolution=resolution,
        max_points=max_points,
    )
    return SeriesOut(
        device_id=device_id,
        metric=series.metric,
        from_=series.since,
        to=series.until,
        resolution=series.resolution,
        bucket_s=series.bucket_s,
        points=[PointOut(ts=p.ts, value=p.value) for p in series.points],
        buckets=[
            BucketOut(start=b.start, count=b.count, min=b.min, avg=b.avg, max=b.max)
            for b in series.buckets
        ],
        truncated=series.truncated,
    )


@router.get(
    "/devices/{device_id}/metrics",
    summary="The metric names a device has data for",
    response_model=MetricList,
    responses=SCOPED,
)
async def metrics(device_id: str, principal: CurrentPrincipal, queries: QueriesDep) -> MetricList:
    """Names seen in raw points or rollups, sorted."""
    return MetricList(device_id=device_id, metrics=await queries.metrics(principal, device_id))


@router.get(
    "/devices/{device_id}/detections",
    summary="A device's detections, newest first",
    response_model=DetectionPage,
    responses=SCOPED,
)
async def detections(
    device_id: str,
    principal: CurrentPrincipal,
    queries: QueriesDep,
    cls: Annotated[Name, Query(description="Frames with an object of this class.")] = None,
    zone: Annotated[Name, Query(description="Frames with an object inside this zone.")] = None,
    model: Annotated[Name, Query(description="Frames processed by this model (its name).")] = None,
    since: From = None,
    to: To = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> DetectionPage:
    """Frame results of the device in [from, to) that match every filter given."""
    page, next_cursor = await queries.detections(
        principal,
        device_id,
        DetectionFilter(cls=cls, zone=zone, model=model),
        span=Range.of(since, to),
        cursor=cursor,
        limit=limit,
    )
    return DetectionPage(items=[_detection(d) for d in page], next_cursor=next_cursor)


@router.get(
    "/devices/{device_id}/events",
    summary="A device's events, newest first",
    response_model=EventPage,
    responses=SCOPED,
)
async def device_events(
    device_id: str,
    principal: CurrentPrincipal,
    queries: QueriesDep,
    type: Name = None,
    severity: Severity | None = None,
    since: From = None,
    to: To = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> EventPage:
    """Events of the device in [from, to) that match every filter given."""
    page, next_cursor = await queries.events(
        principal,
        device_id,
        type_=type,
        severity=severity,
        span=Range.of(since, to),
        cursor=cursor,
        limit=limit,
    )
    return EventPage(items=[_event(e) for e in page], next_cursor=next_cursor)


@router.get(
    "/events",
    summary="Events of every device you may see, newest first",
    response_model=EventPage,
    responses=AUTHED,
)
async def events(
    principal: CurrentPrincipal,
    queries: QueriesDep,
    type: Name = None,
    severity: Severity | None = None,
    since: From = None,
    to: To = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> EventPage:
    """Events of the devices of your sites (every device when you are not limited to some)."""
    page, next_cursor = await queries.events(
        principal,
        None,
        type_=type,
        severity=severity,
        span=Range.of(since, to),
        cursor=cursor,
        limit=limit,
    )
    return EventPage(items=[_event(e) for e in page], next_cursor=next_cursor)


def _detection(d: DetectionView) -> DetectionOut:
    return DetectionOut(
        device_id=d.position.device,
        ts=d.position.ts,
        frame_id=d.frame_id,
        camera=d.camera,
        model={"name": d.model_name, "version": d.model_version, "sha256": d.model_sha256},
        classes=d.classes,
        objects=d.objects,
        zones=d.zones,
        latency_ms=d.latency_ms,
    )


def _event(e: EventView) -> EventOut:
    return EventOut(
        device_id=e.position.device,
        ts=e.position.ts,
        type=e.type,
        severity=e.severity,
        detail=e.detail,
    )
