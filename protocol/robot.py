"""The MQTT robot contract: what the agent's `mqtt` adapter says to a robot and hears back.

A robot vendor implements these JSON messages on the robot's own broker, under a
topic prefix (default `robot/{device id}`); schemas in `protocol/schemas/robot.*.json`.

| topic | direction | model |
|---|---|---|
| `PREFIX/cmd_vel` | agent → robot | `RobotVelocity`: drive, and stop by yourself at `until` |
| `PREFIX/path` | agent → robot | `RobotPath` |
| `PREFIX/stop` | agent → robot | `RobotStop`: stop now (a zero `cmd_vel` comes with it) |
| `PREFIX/odom` | robot → agent | `RobotOdometry`, at 10 Hz or more: also the heartbeat |
| `PREFIX/battery` | robot → agent | `RobotBattery` |
| `PREFIX/faults` | robot → agent | `RobotFault` |

Example:
    >>> from datetime import UTC, datetime
    >>> RobotVelocity(linear=0.5, angular=0.0, until=datetime(2026, 1, 1, tzinfo=UTC)).linear
    0.5
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field

from protocol.models import Name, ShortText, Waypoint, WireModel

Speed = Annotated[float, Field(ge=-10.0, le=10.0)]


class RobotVelocity(WireModel):
    """`cmd_vel`: linear m/s, angular rad/s, until when (the robot stops by itself then)."""

    linear: Speed
    angular: Speed
    until: AwareDatetime


class RobotPath(WireModel):
    """`path`: follow the waypoints (site frame, metres) at `speed` m/s."""

    waypoints: Annotated[list[Waypoint], Field(min_length=1)]
    speed: Annotated[float, Field(gt=0.0, le=10.0)]


class RobotStop(WireModel):
    """`stop`: come to a standstill now."""

    at: AwareDatetime
    reason: ShortText = ""


class RobotOdometry(WireModel):
    """`odom`: pose (metres, radians) and velocity; the robot's heartbeat."""

    x: float
    y: float
    theta: float
    linear: float
    angular: float


class RobotBattery(WireModel):
    """`battery`: charge in percent and voltage."""

    percent: Annotated[float, Field(ge=0.0, le=100.0)]
    voltage: Annotated[float, Field(ge=0.0)] | None = None


class RobotFault(WireModel):
    """`faults`: a fault the robot reports."""

    code: Name
    message: ShortText = ""


ROBOT_MESSAGES: dict[str, type[WireModel]] = {
    "cmd_vel": RobotVelocity,
    "path": RobotPath,
    "stop": RobotStop,
    "odom": RobotOdometry,
    "battery": RobotBattery,
    "faults": RobotFault,
}
"""Topic suffix → message model."""
