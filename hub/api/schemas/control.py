"""Bodies of the control routes: commands to devices, their history and lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from hub.api.schemas.auth import Body
from protocol.models import MAX_WAYPOINTS

CommandStatus = Literal[
    "sent", "publish_failed", "received", "executing", "done", "failed", "rejected", "expired"
]
Velocity = Annotated[float, Field(ge=-10.0, le=10.0, allow_inf_nan=False)]


def _said(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("say why the robot may move again (the reason is audited)")
    return text


class EstopBody(Body):
    """Why you stop (optional; shown in the robot's status and the audit log)."""

    reason: Annotated[str, Field(max_length=1024, examples=["person in aisle 3"])] = ""


class ReleaseBody(Body):
    """Why it is safe to move again: required, audited, shown on the robot."""

    reason: Annotated[
        str,
        Field(min_length=1, max_length=1024, examples=["aisle 3 cleared, checked on site"]),
        AfterValidator(_said),
    ]


class OverrideBody(Body):
    """Drive at these velocities for `duration_s`; the robot stops by itself after it."""

    linear: Annotated[Velocity, Field(description="m/s, forward positive.")]
    angular: Annotated[Velocity, Field(description="rad/s, counter-clockwise positive.")]
    duration_s: Annotated[float, Field(gt=0.0, le=10.0, allow_inf_nan=False)]


class WaypointIn(Body):
    """A point in the site frame (metres, radians)."""

    x: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]
    y: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]
    theta: Annotated[float, Field(ge=-10.0, le=10.0, allow_inf_nan=False)] | None = None


class PathBody(Body):
    """Follow the waypoints at `speed` (m/s); stop unless done within `timeout_s`."""

    waypoints: Annotated[list[WaypointIn], Field(min_length=1, max_length=MAX_WAYPOINTS)]
    speed: Annotated[float, Field(gt=0.0, le=10.0, allow_inf_nan=False)]
    timeout_s: Annotated[float, Field(gt=0.0, le=3600.0, allow_inf_nan=False)]


class CaptureBody(Body):
    """Upload at most `max_frames` of the frames the device's model was unsure about."""

    max_frames: Annotated[int, Field(gt=0, le=10_000)] = 100


class CommandLinks(BaseModel):
    """Where to follow the command up."""

    self: str = Field(examples=["/api/v1/commands/5f0c…"])
    device: str
    history: str


class CommandOut(BaseModel):
    """A command the hub signed and sent, and where it stands."""

    cmd_id: str
    device_id: str
    site_id: str
    type: Literal["estop", "release", "override", "path_plan", "config", "capture"]
    params: dict[str, Any]
    issued_by: str
    issued_at: datetime
    expires_at: datetime
    reason: str | None
    status: CommandStatus = Field(
        description="`sent` (stored, handed to the broker), `publish_failed` (the broker "
        "never confirmed it), then what the device reports: `received`, `executing`, "
        "`done`, `failed`, `rejected`, `expired`."
    )
    detail: str | None = Field(description="The device's words with its last status.")
    updated_at: datetime
    published_at: datetime | None = Field(
        description="When the broker confirmed it (or the publish failed)."
    )
    batch: str | None = Field(description="`site:ID` or `fleet` for a site or fleet stop.")
    links: CommandLinks


class StepOut(BaseModel):
    """One step of the lifecycle: the hub's (`sent`, `publish_failed`) or the device's."""

    status: CommandStatus
    at: datetime
    source: Literal["hub", "device"]
    detail: str | None


class CommandDetail(CommandOut):
    """A command with every step of its lifecycle, in order."""

    lifecycle: list[StepOut]


class CommandPage(BaseModel):
    """A page of a device's commands, newest first; pass `next_cursor` back as `cursor`."""

    items: list[CommandOut]
    next_cursor: str | None


class StopAll(BaseModel):
    """The stop commands a site or fleet stop sent, one per device."""

    count: int
    items: list[CommandOut]
