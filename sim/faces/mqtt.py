"""A simulated robot's MQTT face: the robot side of `protocol.robot` on the robot's broker.

Under `PREFIX` (default `robot/{robot id}`) it hears `cmd_vel`, `path` and `stop`, and
publishes `odom` (at `odom_hz`, the heartbeat), `battery` (1 Hz) and `faults` (each new
fault of the robot, once). `stop` brakes the robot now without latching it: the agent's
safety supervisor owns the latch, so the next `cmd_vel` or `path` moves it again.

`skew_s` makes the robot's clock run ahead (positive) or behind: a `cmd_vel` deadline is
read against the skewed clock, as a robot with a wrong clock would.

Example:
    face = MqttFace(world.robots["robot-1"], "mqtt://127.0.0.1:1883")
    task = asyncio.create_task(face.run(), name="face-robot-1")
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiomqtt

from protocol import DecodeError, decode, encode
from protocol.backoff import Backoff
from protocol.robot import (
    RobotBattery,
    RobotFault,
    RobotOdometry,
    RobotPath,
    RobotStop,
    RobotVelocity,
)
from protocol.transport import NO_DELAY
from sim.world import SimRobot

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
FULL_VOLTS, EMPTY_VOLTS = 25.2, 21.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def voltage_of(percent: float) -> float:
    """A lithium pack's voltage at a charge, linear between empty and full.

    >>> voltage_of(50.0)
    23.1
    """
    return round(EMPTY_VOLTS + (FULL_VOLTS - EMPTY_VOLTS) * percent / 100.0, 3)


class MqttFace:
    """Connects one `SimRobot` to an MQTT broker as a robot speaking `protocol.robot`."""

    def __init__(
        self,
        robot: SimRobot,
        url: str,
        *,
        prefix: str | None = None,
        odom_hz: float = 10.0,
        battery_period_s: float = 1.0,
        clock: Clock = _utcnow,
    ) -> None:
        self.robot, self.url = robot, url
        self.prefix = (prefix or f"robot/{robot.id}").rstrip("/")
        self.odom_period_s, self.battery_period_s = 1.0 / odom_hz, battery_period_s
        self.skew_s = 0.0
        self.heard: dict[str, float] = {}
        """Topic suffix → `time.time()` when it was last heard (tests measure latency)."""
        self.connected = asyncio.Event()
        self._clock = clock
        self._reported: set[str] = set()

    def now(self) -> datetime:
        """The robot's clock: the real one plus `skew_s`."""
        return self._clock() + timedelta(seconds=self.skew_s)

    async def run(self) -> None:
        """Stay connected (reconnecting with backoff) until cancelled."""
        url = urlsplit(self.url)
        backoff = Backoff(0.2, 3.0)
        while True:
            try:
                async with aiomqtt.Client(
                    url.hostname or "127.0.0.1",
                    url.port or 1883,
                    identifier=f"outpost-sim-{self.robot.id}",
                    timeout=5,
                    socket_options=NO_DELAY,
                ) as client:
                    for name in ("cmd_vel", "path", "stop"):
                        await client.subscribe(f"{self.prefix}/{name}", qos=1)
                    backoff.reset()
                    self.connected.set()
                    logger.info("robot %s: MQTT face up on %s", self.robot.id, self.url)
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._receive(client), name=f"{self.robot.id}-receive")
                        tg.create_task(self._publish(client), name=f"{self.robot.id}-publish")
            except* (aiomqtt.MqttError, OSError) as group:
                logger.info("robot %s: broker %s: %s", self.robot.id, self.url, group.exceptions[0])
            finally:
                self.connected.clear()
            await asyncio.sleep(backoff.next())

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
            self.handle(str(message.topic).rsplit("/", 1)[-1], data)

    def handle(self, name: str, payload: bytes) -> None:
        """Obey one message from the agent (invalid ones are logged and ignored)."""
        self.heard[name] = time.time()
        robot = self.robot
        try:
            if name == "cmd_vel":
                cmd = decode(payload, RobotVelocity)
                duration = (cmd.until - self.now()).total_seconds()
                if duration <= 0.0 or (cmd.linear == 0.0 and cmd.angular == 0.0):
                    robot.drive(0.0, 0.0, duration_s=0.0)
                else:
                    robot.drive(cmd.linear, cmd.angular, duration_s=duration)
            elif name == "path":
                plan = decode(payload, RobotPath)
                robot.follow_path([(w.x, w.y) for w in plan.waypoints], plan.speed)
            elif name == "stop":
                decode(payload, RobotStop)
                robot.stop()  # brake now ...
                robot.release()  # ... but the agent owns the latch
        except DecodeError as exc:
            logger.warning("robot %s: invalid %s: %s", robot.id, name, str(exc)[:200])

    async def _publish(self, client: aiomqtt.Client) -> None:
        next_battery = 0.0
        while True:
            await client.publish(f"{self.prefix}/odom", encode(self.odometry()), qos=0, timeout=2)
            now = time.monotonic()
            if now >= next_battery:
                next_battery = now + self.battery_period_s
                charge = self.robot.battery.percent
                battery = RobotBattery(percent=charge, voltage=voltage_of(charge))
                await client.publish(f"{self.prefix}/battery", encode(battery), qos=0, timeout=2)
            for fault in self.new_faults():
                await client.publish(f"{self.prefix}/faults", encode(fault), qos=1, timeout=2)
            await asyncio.sleep(self.odom_period_s)

    def odometry(self) -> RobotOdometry:
        """What the robot's odometry says now."""
        pose, velocity = self.robot.pose, self.robot.velocity
        return RobotOdometry(
            x=pose.x, y=pose.y, theta=pose.heading, linear=velocity.linear, angular=velocity.angular
        )

    def new_faults(self) -> list[RobotFault]:
        """Faults raised since the last call (a cleared one is reported again if it returns)."""
        faults = set(self.robot.faults)
        new = sorted(faults - self._reported)
        self._reported = faults
        return [RobotFault(code=f, message=f"simulated robot {self.robot.id}: {f}") for f in new]


async def wait_connected(face: MqttFace, timeout_s: float = 10.0) -> None:
    """Wait until the face is connected to its broker."""
    async with asyncio.timeout(timeout_s):
        await face.connected.wait()
