"""What every connected robot adapter shares: the `protocol.robot` messages.

The MQTT and WebSocket adapters send these messages as JSON; the ROS 2 adapter
turns them into ROS messages. A subclass owns the connection: it keeps
`connected()` true while it can send, implements `_send(name, message)`, and
calls `_received(name, payload)` (JSON) or `_heard(name, message)` (a model) for
what the robot says. This class turns the supervisor's calls into messages,
repeats the zero velocity while stopped (and, with `_hold`, the drive while
moving), and turns the robot's messages into telemetry, fault events and the
heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from edge_agent.config import AgentSettings, RobotSection
from edge_agent.robot.base import RobotUnavailable
from protocol import DecodeError, Event, KnownEvent, Severity, TelemetryPoint, decode
from protocol.models import Waypoint, WireModel
from protocol.robot import ROBOT_MESSAGES, RobotFault, RobotPath, RobotStop, RobotVelocity

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LinkedRobot:
    """Base of the robot adapters that keep a connection to the robot."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        on_point: Callable[[TelemetryPoint], None],
        on_event: Callable[[Event], None],
        clock: Clock = _utcnow,
    ) -> None:
        self._device = settings.device.id
        self._cfg: RobotSection = settings.robot
        self._clock = clock
        self._on_point, self._on_event = on_point, on_event
        self._heard_at: datetime | None = None
        self.stopped = True

    @property
    def heard_at(self) -> datetime | None:
        """When the robot last said anything (odom is its heartbeat)."""
        return self._heard_at

    @property
    def hardware_stop(self) -> str | None:
        """The JSON contract has no e-stop input (use `[safety] hardware_input`)."""
        return None

    def connected(self) -> bool:
        """Whether messages can be sent now."""
        raise NotImplementedError

    async def run(self) -> None:
        """Keep the link to the robot up until cancelled."""
        raise NotImplementedError

    async def _send(self, name: str, message: WireModel) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop now; remembered, so the stop is repeated and re-sent after a reconnect."""
        self.stopped = True
        if self.connected():
            await self._send_stop("stop")

    async def set_velocity(self, linear: float, angular: float, until: datetime) -> None:
        """Drive until `until` (the robot must stop by itself after it)."""
        self._require()
        self.stopped = False
        await self._send("cmd_vel", RobotVelocity(linear=linear, angular=angular, until=until))

    async def follow_path(self, waypoints: Sequence[Waypoint], speed: float) -> None:
        """Send the path."""
        self._require()
        self.stopped = False
        await self._send("path", RobotPath(waypoints=list(waypoints), speed=speed))

    def _require(self) -> None:
        if not self.connected():
            raise RobotUnavailable(f"the robot at {self._cfg.url} is not connected")

    async def _send_stop(self, reason: str) -> None:
        now = self._clock()
        await self._send("cmd_vel", RobotVelocity(linear=0.0, angular=0.0, until=now))
        await self._send("stop", RobotStop(at=now, reason=reason))

    async def _on_connected(self) -> None:
        """Call once connected: whatever the robot did while we were away, stop it."""
        if self.stopped:
            await self._send_stop("agent reconnected while stopped")

    @contextlib.asynccontextmanager
    async def _repeating_stop(self) -> AsyncIterator[None]:
        """While the block runs, repeat the zero velocity whenever stopped."""
        task = asyncio.create_task(self._repeat_stop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _repeat_stop(self) -> None:
        if self._cfg.stop_repeat_hz <= 0:
            return
        while True:
            await asyncio.sleep(1.0 / self._cfg.stop_repeat_hz)
            if not self.connected():
                continue
            if self.stopped:
                zero = RobotVelocity(linear=0.0, angular=0.0, until=self._clock())
                await self._send("cmd_vel", zero)
            else:
                await self._hold()

    async def _hold(self) -> None:
        """While moving, at the repeat rate: nothing here (the JSON robots hold `until`
        themselves); a subclass whose robot needs the command repeated repeats it."""

    def _received(self, name: str, payload: bytes) -> None:
        """A JSON message from the robot."""
        self._heard_at = self._clock()  # anything the robot says proves it is alive
        model = ROBOT_MESSAGES.get(name)
        if model is None:
            return
        try:
            message = decode(payload, model)
        except DecodeError as exc:
            logger.warning("robot sent an invalid %s: %s", name, str(exc)[:200])
            return
        self._heard(name, message)

    def _heard(self, name: str, message: WireModel) -> None:
        """A message from the robot: a fault becomes an event, the rest telemetry."""
        now = self._clock()
        self._heard_at = now
        if isinstance(message, RobotFault):
            detail = {"code": message.code, "message": message.message}
            self._on_event(
                Event(ts=now, type=KnownEvent.ROBOT_FAULT, severity=Severity.WARNING, detail=detail)
            )
            return
        for key, value in message.model_dump(exclude_none=True).items():
            self._on_point(TelemetryPoint(ts=now, metric=f"robot.{name}.{key}", value=value))
