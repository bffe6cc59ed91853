"""A small fleet with stored telemetry, detections and events, and a client to query it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from hub.auth.principal import Role
from hub.storage.db import transaction
from hub.storage.repositories import rollup_telemetry, store_envelopes
from protocol import Channel, Envelope
from protocol.models import (
    Box,
    DetectedObject,
    DetectionBatch,
    DeviceState,
    Event,
    Frame,
    FrameResult,
    ModelRef,
    Severity,
    TelemetryBatch,
    TelemetryPoint,
)
from tests.hub.assets.support import add_site, enrolled
from tests.hub.auth.support import Hub

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHA = "a" * 64


@dataclass
class Fleet:
    """`mine` in plant-a (seen by viewer `vic`), `theirs` in plant-b; `root` is admin."""

    hub: Hub
    mine: str
    theirs: str
    headers: dict[str, dict[str, str]]

    async def get(self, user: str, path: str, **params: Any) -> httpx.Response:
        """GET `/api/v1{path}` as `user` (None-valued params left out)."""
        query = {k: _param(v) for k, v in params.items() if v is not None}
        return await self.hub.client.get(f"/api/v1{path}", headers=self.headers[user], params=query)


def _param(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def fleet(hub: Hub) -> Fleet:
    """Two sites with a device each; users logged in once."""
    await add_site(hub, "plant-a")
    await add_site(hub, "plant-b")
    mine, theirs = await enrolled(hub, "plant-a", "AMR A"), await enrolled(hub, "plant-b", "AMR B")
    await hub.add_user("vic", Role.VIEWER, ["plant-a"])
    headers = {user: await hub.bearer(user) for user in ("vic", "root")}
    return Fleet(hub, mine, theirs, headers)


async def store(hub: Hub, device: str, bodies: list[Any], *, stream: str = "s1") -> None:
    """Store one envelope per body, seqs from 1, as the ingest worker would."""
    envelopes = [
        Envelope(device=device, stream=stream, seq=seq, ts=T0, kind=_channel(body), body=body)
        for seq, body in enumerate(bodies, start=1)
    ]
    async with transaction(hub.sessions) as session:
        await store_envelopes(session, envelopes=envelopes)


def _channel(body: Any) -> Channel:
    if isinstance(body, TelemetryBatch):
        return Channel.TELEMETRY
    if isinstance(body, DetectionBatch):
        return Channel.DETECTIONS
    if isinstance(body, Frame):
        return Channel.FRAMES
    if isinstance(body, DeviceState):
        return Channel.STATE
    return Channel.EVENTS


def points(metric: str, values: list[float], *, every_s: float, start: datetime = T0) -> list[Any]:
    """Telemetry batches of `values`, one every `every_s` seconds from `start`."""
    pts = [
        TelemetryPoint(ts=start + timedelta(seconds=i * every_s), metric=metric, value=v)
        for i, v in enumerate(values)
    ]
    return [TelemetryBatch(points=pts[i : i + 1000]) for i in range(0, len(pts), 1000)]


async def roll_up(hub: Hub, until: datetime) -> None:
    """Compute the one-minute rollups up to `until`, as the worker does."""
    async with transaction(hub.sessions) as session:
        await rollup_telemetry(session, since=T0 - timedelta(days=1), until=until)


def frame(
    at: datetime, classes: list[str], zones: dict[str, list[int]], model: str = "yolo"
) -> FrameResult:
    """A frame result with one object per class."""
    box = Box(x1=0.1, y1=0.1, x2=0.2, y2=0.2)
    return FrameResult(
        ts=at,
        frame_id=f"f-{at.timestamp()}",
        model=ModelRef(name=model, version="1.0", sha256=SHA),
        objects=[DetectedObject(cls=c, conf=0.9, box=box) for c in classes],
        latency_ms=12.5,
        zones=zones,
    )


def event(at: datetime, type_: str, severity: Severity = Severity.INFO, n: int = 0) -> Event:
    """A device event; `n` tells apart events of the same time and type."""
    return Event(ts=at, type=type_, severity=severity, detail={"n": n})
