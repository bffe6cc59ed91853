"""The one interface every robot adapter implements (MQTT, ROS 2, WebSocket).

`stop()` must be idempotent and fast: the safety supervisor calls it on every
stop decision, however often. `set_velocity` carries its own deadline so that a
robot (or adapter) that stops hearing from the agent stops by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from edge_agent.errors import AgentError
from protocol.models import Waypoint


class RobotUnavailable(AgentError):
    """The adapter cannot carry out a motion command (none configured, robot gone)."""


class RobotAdapter(Protocol):
    """What the agent needs from a robot."""

    @property
    def heard_at(self) -> datetime | None:
        """When the robot was last heard from (its heartbeat); None: never."""

    @property
    def hardware_stop(self) -> str | None:
        """Why the robot's own e-stop input holds the stop; None: released or none."""

    async def stop(self) -> None:
        """Bring the robot to a standstill now."""

    async def set_velocity(self, linear: float, angular: float, until: datetime) -> None:
        """Drive at these velocities until `until`."""

    async def follow_path(self, waypoints: Sequence[Waypoint], speed: float) -> None:
        """Start following the waypoints at `speed`."""


class NoRobot:
    """The agent runs on a gateway or a camera box: no robot to move.

    Stops are recorded by the supervisor (and reported) but there is nothing to
    stop; motion commands fail with a clear reason instead of pretending.
    """

    @property
    def heard_at(self) -> datetime | None:
        """Always now: there is nothing that could go silent."""
        return datetime.now(UTC)

    @property
    def hardware_stop(self) -> str | None:
        """No robot, no e-stop input."""
        return None

    async def stop(self) -> None:
        """Nothing to stop."""

    async def set_velocity(self, linear: float, angular: float, until: datetime) -> None:
        """Refuse: there is no robot."""
        raise RobotUnavailable("no robot adapter is configured on this device ([robot] adapter)")

    async def follow_path(self, waypoints: Sequence[Waypoint], speed: float) -> None:
        """Refuse: there is no robot."""
        raise RobotUnavailable("no robot adapter is configured on this device ([robot] adapter)")
