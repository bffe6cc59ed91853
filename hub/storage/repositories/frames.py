"""Kept frames (rule-hit snapshots, captures): listings without the JPEG, and the JPEG alone.

Each listed frame carries the objects the device's model reported for it (the
`detections` row with the same device and frame id), which is what a capture needs
to be pre-labelled.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import Detection, Device, FrameRow
from hub.storage.repositories.readings import Position, Window, older_than, windowed

_ORDER = (FrameRow.ts, FrameRow.device, FrameRow.stream, FrameRow.seq)


@dataclass(frozen=True, slots=True)
class FrameFilter:
    """Which frames: of one device, or of the caller's sites (None: every site)."""

    device: str | None = None
    sites: Collection[str] | None = None
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class FrameView:
    """A kept frame without its bytes, and what the model saw in it (if it was sent)."""

    position: Position
    frame_id: str
    camera: str
    purpose: str
    width: int
    height: int
    size: int
    model: dict[str, str] | None
    objects: list[Any]


def _scope(where: FrameFilter) -> ColumnElement[bool]:
    if where.device is not None:
        return FrameRow.device == where.device
    if where.sites is None:
        return true()
    if not where.sites:
        return false()
    return FrameRow.device.in_(select(Device.id).where(Device.site_id.in_(sorted(where.sites))))


@translated
async def list_frames(
    session: AsyncSession, *, where: FrameFilter, window: Window
) -> list[FrameView]:
    """A page of kept frames, newest first, older than `window.after`."""
    query = select(
        FrameRow.ts,
        FrameRow.device,
        FrameRow.stream,
        FrameRow.seq,
        FrameRow.frame_id,
        FrameRow.camera,
        FrameRow.purpose,
        FrameRow.width,
        FrameRow.height,
        func.length(FrameRow.jpeg).label("size"),
    ).where(_scope(where))
    if where.purpose is not None:
        query = query.where(FrameRow.purpose == where.purpose)
    if window.after is not None:
        query = query.where(older_than(_ORDER, window.after.key()[:4]))
    query = windowed(query.order_by(*(c.desc() for c in _ORDER)), FrameRow.ts, window)
    rows = (await session.execute(query)).all()
    seen = await _detections(session, {(r.device, r.frame_id) for r in rows})
    views = []
    for r in rows:
        detection = seen.get((r.device, r.frame_id))
        views.append(
            FrameView(
                position=Position(r.ts, r.device, r.stream, r.seq),
                frame_id=r.frame_id,
                camera=r.camera,
                purpose=r.purpose,
                width=r.width,
                height=r.height,
                size=r.size,
                model=detection[0] if detection else None,
                objects=detection[1] if detection else [],
            )
        )
    return views


async def _detections(
    session: AsyncSession, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[dict[str, str], list[Any]]]:
    if not keys:
        return {}
    match = [and_(Detection.device == d, Detection.frame_id == f) for d, f in sorted(keys)]
    query = select(
        Detection.device,
        Detection.frame_id,
        Detection.model_name,
        Detection.model_version,
        Detection.objects,
    ).where(or_(*match))
    return {
        (r.device, r.frame_id): ({"name": r.model_name, "version": r.model_version}, r.objects)
        for r in await session.execute(query)
    }


@translated
async def frame_jpeg(session: AsyncSession, *, device: str, frame_id: str) -> bytes | None:
    """The newest kept JPEG of `device` with `frame_id`, or None."""
    query = (
        select(FrameRow.jpeg)
        .where(FrameRow.device == device, FrameRow.frame_id == frame_id)
        .order_by(FrameRow.ts.desc())
        .limit(1)
    )
    data = (await session.execute(query)).scalar_one_or_none()
    return bytes(data) if data is not None else None
