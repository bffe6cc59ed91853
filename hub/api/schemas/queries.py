"""Bodies of the query routes: telemetry series for charts, detections, events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class PointOut(BaseModel):
    """One raw telemetry point."""

    ts: datetime
    value: float


class BucketOut(BaseModel):
    """The points of [start, start + `bucket_s`): how many, and their min, mean and max."""

    start: datetime
    count: int
    min: float
    avg: float
    max: float


class SeriesOut(BaseModel):
    """A metric over [from, to), raw (`points`) or aggregated (`buckets`)."""

    device_id: str
    metric: str
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    resolution: Literal["raw", "1m", "bucketed"] = Field(
        description="`raw`: stored points; `1m`: the one-minute rollups; `bucketed`: the "
        "rollups merged into `bucket_s`-second buckets, at most `max_points` of them."
    )
    bucket_s: int | None = Field(description="Seconds per bucket; null for raw points.")
    points: list[PointOut] = Field(description="Raw points, oldest first (`raw` only).")
    buckets: list[BucketOut] = Field(description="Buckets, oldest first (`1m`, `bucketed`).")
    truncated: bool = Field(
        description="True when the range holds more than `max_points` points or minutes and "
        "only the oldest `max_points` are returned (`raw` and `1m`; `auto` never truncates)."
    )

    model_config = {"populate_by_name": True}


class MetricList(BaseModel):
    """The metric names a device has points or rollups of."""

    device_id: str
    metrics: list[str]


class DetectionOut(BaseModel):
    """One processed frame: the model that ran, the objects found, the zones they are in."""

    device_id: str
    ts: datetime
    frame_id: str
    camera: str
    model: dict[str, str] = Field(examples=[{"name": "yolo", "version": "1.2", "sha256": "…"}])
    classes: list[str] = Field(description="The class names present, sorted.")
    objects: list[dict[str, Any]]
    zones: dict[str, list[int]] = Field(description="Zone name → indices into `objects`.")
    latency_ms: float


class DetectionPage(BaseModel):
    """A page of detections, newest first; pass `next_cursor` back as `cursor`."""

    items: list[DetectionOut]
    next_cursor: str | None


class EventOut(BaseModel):
    """One device event."""

    device_id: str
    ts: datetime
    type: str
    severity: Literal["debug", "info", "warning", "critical"]
    detail: dict[str, Any]


class EventPage(BaseModel):
    """A page of events, newest first; pass `next_cursor` back as `cursor`."""

    items: list[EventOut]
    next_cursor: str | None
