"""Kept frames: rule-hit snapshots for the dashboard, captures for labelling.

Agents send a JPEG when a local rule fires (`snapshot`, annotated) and, on a
`capture` command, the frames their model was unsure about (`capture`); the hub
keeps both for `[retention] frames_days`. Listings carry the model's objects for
each frame (its pre-labels); the JPEG is a separate `GET`. Viewer or above; a device
outside the caller's sites answers 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from hub.api.deps import CurrentPrincipal
from hub.api.routes.queries import Cursor, From, Limit, QueriesDep, To
from hub.api.schemas.errors import AUTHED, NOT_FOUND
from hub.api.schemas.frames import FrameOut, FramePage, Purpose
from hub.auth.principal import Principal
from hub.queries.service import QueryService, Range
from hub.storage.repositories.frames import FrameView

router = APIRouter(prefix="/api/v1", tags=["queries"])
SCOPED = {**AUTHED, **NOT_FOUND}
PurposeQuery = Annotated[Purpose | None, Query(description="Only snapshots, or only captures.")]
FrameId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


@router.get(
    "/devices/{device_id}/frames",
    summary="A device's kept frames (snapshots, captures), newest first",
    response_model=FramePage,
    responses=SCOPED,
)
async def device_frames(
    request: Request,
    device_id: str,
    principal: CurrentPrincipal,
    queries: QueriesDep,
    purpose: PurposeQuery = None,
    since: From = None,
    to: To = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> FramePage:
    """The device's newest snapshot is `?purpose=snapshot&limit=1`."""
    span = Range.of(since, to)
    return await _page(request, queries, principal, device_id, purpose, span, cursor, limit)


@router.get(
    "/frames",
    summary="Kept frames of every device in your sites, newest first",
    response_model=FramePage,
    responses=AUTHED,
)
async def frames(
    request: Request,
    principal: CurrentPrincipal,
    queries: QueriesDep,
    purpose: PurposeQuery = None,
    since: From = None,
    to: To = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> FramePage:
    """What `outpost capture pull` reads (`?purpose=capture`)."""
    span = Range.of(since, to)
    return await _page(request, queries, principal, None, purpose, span, cursor, limit)


@router.get(
    "/devices/{device_id}/frames/{frame_id}.jpg",
    summary="The JPEG of a kept frame",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The JPEG"},
        **SCOPED,
    },
)
async def frame_jpeg(
    device_id: str, frame_id: FrameId, principal: CurrentPrincipal, queries: QueriesDep
) -> Response:
    """Cacheable: a frame never changes."""
    data = await queries.frame_jpeg(principal, device_id, frame_id)
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"}
    )


async def _page(
    request: Request,
    queries: QueryService,
    principal: Principal,
    device_id: str | None,
    purpose: str | None,
    span: Range,
    cursor: str | None,
    limit: int,
) -> FramePage:
    rows, next_cursor = await queries.frames(
        principal, device_id, purpose=purpose, span=span, cursor=cursor, limit=limit
    )
    return FramePage(items=[_out(request, r) for r in rows], next_cursor=next_cursor)


def _out(request: Request, view: FrameView) -> FrameOut:
    device = view.position.device
    return FrameOut(
        device_id=device,
        ts=view.position.ts,
        frame_id=view.frame_id,
        camera=view.camera,
        purpose="capture" if view.purpose == "capture" else "snapshot",
        width=view.width,
        height=view.height,
        size=view.size,
        url=str(request.url_for("frame_jpeg", device_id=device, frame_id=view.frame_id)),
        model=view.model,
        objects=view.objects,
    )
