"""`/api/v1/.../estop|release|override|path`, site and fleet stops, command history.

| route | role |
|---|---|
| `POST /devices/{id}/estop`, `/release`, `/override`, `/path` | operator |
| `POST /sites/{id}/estop` (every active device of the site) | operator |
| `POST /fleet/estop` (every active device in the caller's scope) | operator |
| `GET /devices/{id}/commands`, `GET /commands/{cmd_id}` | viewer |

A device or site outside the caller's scope answers 404, as if it did not exist.
Every command, sent or refused, leaves an audit row naming the device; a refused
one is `denied` with why (`role_required`, `out_of_scope`, `not_found`,
`device_removed`). A fleet stop by an operator limited to sites stops the devices
of those sites: stopping is always safe, and a stop button that does less than it
says would not be.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from hub.api.deps import CurrentPrincipal
from hub.api.schemas.control import (
    CaptureBody,
    CommandDetail,
    CommandLinks,
    CommandOut,
    CommandPage,
    EstopBody,
    OverrideBody,
    PathBody,
    ReleaseBody,
    StepOut,
    StopAll,
)
from hub.api.schemas.errors import AUTHED, CONFLICT, NOT_FOUND, UNAVAILABLE
from hub.audit.middleware import mark_audited
from hub.auth.errors import ApiError, Forbidden
from hub.auth.principal import Principal, Role
from hub.control.service import ControlService
from hub.storage.repositories.commands import CommandRecord
from protocol.models import (
    CaptureParams,
    CommandParams,
    CommandType,
    EstopParams,
    OverrideParams,
    PathPlanParams,
    ReleaseParams,
    Waypoint,
)

router = APIRouter(prefix="/api/v1", tags=["control"])
SENT = {**AUTHED, **NOT_FOUND, **CONFLICT, **UNAVAILABLE}


def control_service(request: Request) -> ControlService:
    """The app's `ControlService`."""
    service: ControlService = request.app.state.control
    return service


ControlDep = Annotated[ControlService, Depends(control_service)]


def commander(action: str, target: Callable[[Request], str]) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller when an operator or admin; else audited as denied, and 403."""

    async def dependency(
        request: Request, principal: CurrentPrincipal, control: ControlDep
    ) -> Principal:
        if principal.has_role(Role.OPERATOR):
            return principal
        await control.deny(principal, action=action, target=target(request), result="role_required")
        mark_audited(request)
        raise Forbidden(
            f"commands need the operator role; you are {principal.role.value}",
            code="role_required",
            required=Role.OPERATOR.value,
            role=principal.role.value,
        )

    dependency.__name__ = f"commander_{action.replace('.', '_')}"
    return dependency


def _device(request: Request) -> str:
    return f"device:{request.path_params.get('device_id', '?')}"


def _site(request: Request) -> str:
    return f"site:{request.path_params.get('site_id', '?')}"


def _device_command(type_: CommandType) -> Callable[..., Awaitable[Principal]]:
    return commander(f"command.{type_.value}", _device)


EstopOperator = Annotated[Principal, Depends(_device_command(CommandType.ESTOP))]
ReleaseOperator = Annotated[Principal, Depends(_device_command(CommandType.RELEASE))]
OverrideOperator = Annotated[Principal, Depends(_device_command(CommandType.OVERRIDE))]
PathOperator = Annotated[Principal, Depends(_device_command(CommandType.PATH_PLAN))]
CaptureOperator = Annotated[Principal, Depends(_device_command(CommandType.CAPTURE))]
SiteOperator = Annotated[Principal, Depends(commander("command.estop_site", _site))]
FleetOperator = Annotated[Principal, Depends(commander("command.estop_fleet", lambda _: "fleet"))]


@contextmanager
def audited_by_service(request: Request) -> Iterator[None]:
    """The service wrote this request's audit rows when it answered or refused it."""
    try:
        yield
    except ApiError:
        mark_audited(request)
        raise
    mark_audited(request)


def command_out(command: CommandRecord) -> CommandOut:
    """The API form of a stored command."""
    return CommandOut(**_fields(command))


def _fields(c: CommandRecord) -> dict[str, object]:
    base = "/api/v1"
    return {
        "cmd_id": c.cmd_id,
        "device_id": c.device_id,
        "site_id": c.site_id,
        "type": c.type,
        "params": c.params,
        "issued_by": c.issued_by,
        "issued_at": c.issued_at,
        "expires_at": c.expires_at,
        "reason": c.reason,
        "status": c.status,
        "detail": c.detail,
        "updated_at": c.updated_at,
        "published_at": c.published_at,
        "batch": c.batch,
        "links": CommandLinks(
            self=f"{base}/commands/{c.cmd_id}",
            device=f"{base}/devices/{c.device_id}",
            history=f"{base}/devices/{c.device_id}/commands",
        ),
    }


# --- one device ----------------------------------------------------------------------------

ACCEPTED = status.HTTP_202_ACCEPTED


async def _send(
    request: Request,
    control: ControlService,
    principal: Principal,
    device_id: str,
    type_: CommandType,
    params: CommandParams,
) -> CommandOut:
    """One device command; the service writes its own audit rows."""
    with audited_by_service(request):
        sent = await control.send(principal, device_id, type_, params)
    return command_out(sent)


FOLLOW = "202: the broker has it; follow `links.self` for the device's acks."


@router.post(
    "/devices/{device_id}/estop",
    summary="Stop a device (operator)",
    description="Engage the device's latched protective stop. " + FOLLOW,
    status_code=ACCEPTED,
    response_model=CommandOut,
    responses=SENT,
)
async def estop(
    request: Request,
    device_id: str,
    principal: EstopOperator,
    control: ControlDep,
    body: EstopBody | None = None,
) -> CommandOut:
    """Signed `estop`; the robot stays stopped until a `release`."""
    params = EstopParams(reason=body.reason if body else "")
    return await _send(request, control, principal, device_id, CommandType.ESTOP, params)


@router.post(
    "/devices/{device_id}/release",
    summary="Release a device's stop (operator; reason required)",
    description="The device releases only when no local stop condition holds. " + FOLLOW,
    status_code=ACCEPTED,
    response_model=CommandOut,
    responses=SENT,
)
async def release(
    request: Request,
    device_id: str,
    body: ReleaseBody,
    principal: ReleaseOperator,
    control: ControlDep,
) -> CommandOut:
    """Signed `release` with the operator's reason."""
    params = ReleaseParams(reason=body.reason)
    return await _send(request, control, principal, device_id, CommandType.RELEASE, params)


@router.post(
    "/devices/{device_id}/override",
    summary="Drive a device for a few seconds (operator)",
    description="Velocities with a deadline: the robot stops by itself when it lapses. " + FOLLOW,
    status_code=ACCEPTED,
    response_model=CommandOut,
    responses=SENT,
)
async def override(
    request: Request,
    device_id: str,
    body: OverrideBody,
    principal: OverrideOperator,
    control: ControlDep,
) -> CommandOut:
    """Signed `override`; refused by the device while its stop is engaged."""
    params = OverrideParams(linear=body.linear, angular=body.angular, duration_s=body.duration_s)
    return await _send(request, control, principal, device_id, CommandType.OVERRIDE, params)


@router.post(
    "/devices/{device_id}/path",
    summary="Send a device along waypoints (operator)",
    description="Waypoints in the site frame; the robot stops unless done within "
    "`timeout_s`. " + FOLLOW,
    status_code=ACCEPTED,
    response_model=CommandOut,
    responses=SENT,
)
async def path(
    request: Request,
    device_id: str,
    body: PathBody,
    principal: PathOperator,
    control: ControlDep,
) -> CommandOut:
    """Signed `path_plan`; refused by the device while its stop is engaged."""
    params = PathPlanParams(
        waypoints=[Waypoint(x=w.x, y=w.y, theta=w.theta) for w in body.waypoints],
        speed=body.speed,
        timeout_s=body.timeout_s,
    )
    return await _send(request, control, principal, device_id, CommandType.PATH_PLAN, params)


@router.post(
    "/devices/{device_id}/capture",
    summary="Ask a device for its captured frames (operator)",
    description="The agent uploads up to `max_frames` frames its model was unsure about, "
    "oldest first; they appear under `GET /api/v1/frames?purpose=capture` (and "
    "`outpost capture pull`). " + FOLLOW,
    status_code=ACCEPTED,
    response_model=CommandOut,
    responses=SENT,
)
async def capture(
    request: Request,
    device_id: str,
    body: CaptureBody,
    principal: CaptureOperator,
    control: ControlDep,
) -> CommandOut:
    """Signed `capture`; the `done` ack says how many frames were queued."""
    params = CaptureParams(max_frames=body.max_frames)
    return await _send(request, control, principal, device_id, CommandType.CAPTURE, params)


# --- many devices --------------------------------------------------------------------------


@router.post(
    "/sites/{site_id}/estop",
    summary="Stop every device of a site (operator)",
    description="One signed `estop` per active device of the site. 503 lists the devices "
    "whose stop the broker did not confirm.",
    status_code=ACCEPTED,
    response_model=StopAll,
    responses={**AUTHED, **NOT_FOUND, **UNAVAILABLE},
)
async def estop_site(
    request: Request,
    site_id: str,
    principal: SiteOperator,
    control: ControlDep,
    body: EstopBody | None = None,
) -> StopAll:
    """Stop the whole site."""
    with audited_by_service(request):
        sent = await control.estop_site(principal, site_id, reason=body.reason if body else "")
    return StopAll(count=len(sent), items=[command_out(c) for c in sent])


@router.post(
    "/fleet/estop",
    summary="Stop every device you may command (operator)",
    description="Every active device of every site in your scope (all sites when you are "
    "not limited to some). 503 lists the devices whose stop the broker did not confirm.",
    status_code=ACCEPTED,
    response_model=StopAll,
    responses={**AUTHED, **UNAVAILABLE},
)
async def estop_fleet(
    request: Request,
    principal: FleetOperator,
    control: ControlDep,
    body: EstopBody | None = None,
) -> StopAll:
    """Stop the fleet."""
    with audited_by_service(request):
        sent = await control.estop_fleet(principal, reason=body.reason if body else "")
    return StopAll(count=len(sent), items=[command_out(c) for c in sent])


# --- history -------------------------------------------------------------------------------


@router.get(
    "/devices/{device_id}/commands",
    summary="A device's commands, newest first",
    response_model=CommandPage,
    responses={**AUTHED, **NOT_FOUND},
)
async def device_commands(
    device_id: str,
    principal: CurrentPrincipal,
    control: ControlDep,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor`.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CommandPage:
    """Commands sent to the device (removed devices included), with their status."""
    page, next_cursor = await control.history(principal, device_id, cursor=cursor, limit=limit)
    return CommandPage(items=[command_out(c) for c in page], next_cursor=next_cursor)


@router.get(
    "/commands/{cmd_id}",
    summary="One command with its lifecycle",
    response_model=CommandDetail,
    responses={**AUTHED, **NOT_FOUND},
)
async def get_command(
    cmd_id: str, principal: CurrentPrincipal, control: ControlDep
) -> CommandDetail:
    """The command and each step: sent, then the device's received, executing, done..."""
    view = await control.command(principal, cmd_id)
    steps = [
        StepOut(status=s.status, at=s.at, source=s.source, detail=s.detail) for s in view.steps
    ]
    return CommandDetail(**_fields(view.command), lifecycle=steps)
