"""The MQTT robot adapter: JSON on the robot's own broker, a contract a vendor can implement.

Topics under `[robot] topic_prefix` (default `robot/{device id}`) carry the JSON
messages of `protocol.robot` (schemas in `protocol/schemas/robot.*.json`): the agent
publishes `cmd_vel`, `path` and `stop`; the robot publishes `odom`, `battery` and
`faults`.

The robot should publish `odom` at 10 Hz or more: while it moves, silence longer
than `[safety] heartbeat_timeout_s` makes the agent engage the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiomqtt

from edge_agent.config import AgentSettings
from edge_agent.robot.base import RobotUnavailable
from protocol import DecodeError, Event, KnownEvent, Severity, TelemetryPoint, decode, encode
from protocol.backoff import Backoff
from protocol.models import Waypoint, WireModel
from protocol.robot import ROBOT_MESSAGES, RobotFault, RobotPath, RobotStop, RobotVelocity

logger = logging.getLogger(__name__)


class MqttRobot:
    """A robot reached through its own MQTT broker."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        on_point: Callable[[TelemetryPoint], None],
        on_event: Callable[[Event], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        cfg = settings.robot
        self._cfg, self._clock = cfg, clock
        self.prefix = (cfg.topic_prefix or f"robot/{settings.device.id}").rstrip("/")
        self._client_id = f"outpost-agent-{settings.device.id}"
        self._on_point, self._on_event = on_point, on_event
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._heard_at: datetime | None = None
        self.stopped = True

    @property
    def heard_at(self) -> datetime | None:
        """When the robot last published anything (odom is its heartbeat)."""
        return self._heard_at

    def topic(self, name: str) -> str:
        """PREFIX/name."""
        return f"{self.prefix}/{name}"

    async def run(self) -> None:
        """Stay connected to the robot's broker; forward its telemetry; repeat stops."""
        backoff = Backoff(0.2, 5.0)
        url = urlsplit(self._cfg.url)
        while True:
            try:
                async with aiomqtt.Client(
                    url.hostname or "127.0.0.1",
                    url.port or 1883,
                    username=self._cfg.username or None,
                    password=self._cfg.password or None,
                    identifier=self._client_id,
                    timeout=5,
                ) as client:
                    for name in ("odom", "battery", "faults"):
                        await client.subscribe(self.topic(name), qos=0)
                    self._client = client
                    self._connected.set()
                    backoff.reset()
                    if self.stopped:  # whatever the robot did while we were away
                        await self._send_stop(client, "agent reconnected while stopped")
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                logger.warning("robot broker at %s: %s", self._cfg.url, exc)
            finally:
                self._client = None
                self._connected.clear()
            await asyncio.sleep(backoff.next())

    async def _serve(self, client: aiomqtt.Client) -> None:
        repeat = asyncio.create_task(self._repeat_stop(client))
        try:
            async for message in client.messages:
                self._received(str(message.topic), message.payload)
        finally:
            repeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await repeat

    async def _repeat_stop(self, client: aiomqtt.Client) -> None:
        if self._cfg.stop_repeat_hz <= 0:
            return
        while True:
            await asyncio.sleep(1.0 / self._cfg.stop_repeat_hz)
            if self.stopped:
                await self._publish(client, "cmd_vel", _zero(self._clock()))

    def _received(self, topic: str, payload: object) -> None:
        now = self._clock()
        self._heard_at = now  # anything the robot says proves it is alive
        name = topic.rsplit("/", 1)[-1]
        model = ROBOT_MESSAGES.get(name)
        if model is None:
            return
        try:
            message = decode(payload if isinstance(payload, bytes | bytearray) else b"", model)
        except DecodeError as exc:
            logger.warning("robot sent an invalid %s: %s", name, str(exc)[:200])
            return
        if isinstance(message, RobotFault):
            detail = {"code": message.code, "message": message.message}
            self._on_event(
                Event(ts=now, type=KnownEvent.ROBOT_FAULT, severity=Severity.WARNING, detail=detail)
            )
            return
        for key, value in message.model_dump(exclude_none=True).items():
            self._on_point(TelemetryPoint(ts=now, metric=f"robot.{name}.{key}", value=value))

    async def stop(self) -> None:
        """Stop now; remembered, so the stop is repeated and re-sent after a reconnect."""
        self.stopped = True
        client = self._client
        if client is not None:
            await self._send_stop(client, "stop")

    async def set_velocity(self, linear: float, angular: float, until: datetime) -> None:
        """Drive until `until` (the robot must stop by itself after it)."""
        client = self._require()
        self.stopped = False
        await self._publish(
            client, "cmd_vel", RobotVelocity(linear=linear, angular=angular, until=until)
        )

    async def follow_path(self, waypoints: Sequence[Waypoint], speed: float) -> None:
        """Send the path."""
        client = self._require()
        self.stopped = False
        await self._publish(client, "path", RobotPath(waypoints=list(waypoints), speed=speed))

    def _require(self) -> aiomqtt.Client:
        if self._client is None:
            raise RobotUnavailable(f"the robot's broker at {self._cfg.url} is not connected")
        return self._client

    async def _send_stop(self, client: aiomqtt.Client, reason: str) -> None:
        now = self._clock()
        await self._publish(client, "cmd_vel", _zero(now))
        await self._publish(client, "stop", RobotStop(at=now, reason=reason))

    async def _publish(self, client: aiomqtt.Client, name: str, message: WireModel) -> None:
        try:
            await client.publish(self.topic(name), encode(message), qos=1, timeout=2)
        except aiomqtt.MqttError as exc:
            logger.warning("robot broker: publishing %s failed: %s", name, exc)


def _zero(now: datetime) -> RobotVelocity:
    return RobotVelocity(linear=0.0, angular=0.0, until=now)
