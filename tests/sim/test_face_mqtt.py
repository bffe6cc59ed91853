"""The MQTT face: a simulated robot obeys `protocol.robot` on a real broker and reports back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import aiomqtt
import pytest

from protocol import decode, encode
from protocol.models import Waypoint
from protocol.robot import RobotFault, RobotOdometry, RobotPath, RobotStop, RobotVelocity
from sim.faces.mqtt import MqttFace, wait_connected
from sim.network import RobotBroker
from sim.world import RealTimeStepper, World
from tests.sim.support import world

PREFIX = "robot/r1"


class Rig:
    """A broker, a world stepped in real time, the face, and an agent-side client."""

    def __init__(self, w: World, face: MqttFace, client: aiomqtt.Client) -> None:
        self.world, self.face, self.client = w, face, client
        self.robot = w.robots["r1"]

    async def send(self, name: str, message: RobotVelocity | RobotPath | RobotStop) -> None:
        await self.client.publish(f"{PREFIX}/{name}", encode(message), qos=1)

    async def until(self, predicate: Callable[[], bool], within_s: float, what: str) -> None:
        deadline = time.monotonic() + within_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)


# Setting the rig up or down takes a second; bounded, a hang fails with where it waited.
RIG_S = 30.0


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    w = world()
    broker = RobotBroker()
    stepper = RealTimeStepper(w, rate_hz=50)
    async with contextlib.AsyncExitStack() as stack:
        async with asyncio.timeout(RIG_S):
            await broker.start()
            stack.push_async_callback(broker.stop)
            face = MqttFace(w.robots["r1"], broker.url, odom_hz=20.0, battery_period_s=0.5)
            stepper.start()
            stack.callback(stepper.stop)
            task = asyncio.create_task(face.run(), name="face")
            stack.push_async_callback(_cancelled, task)
            await wait_connected(face)
            client = await stack.enter_async_context(
                aiomqtt.Client("127.0.0.1", broker.port, identifier="agent")
            )
        try:
            yield Rig(w, face, client)
        finally:
            async with asyncio.timeout(RIG_S):
                await stack.aclose()


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel the face until it ends: a cancel that lands while its client says goodbye to
    a busy broker is swallowed when the goodbye times out (the face then reconnects)."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=1.0)


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def test_cmd_vel_drives_until_its_deadline_then_the_robot_brakes(rig: Rig) -> None:
    await rig.send("cmd_vel", RobotVelocity(linear=0.6, angular=0.0, until=_in(1.0)))
    await rig.until(lambda: rig.robot.velocity.linear > 0.3, 2, "the robot to speed up")
    await rig.until(lambda: rig.robot.velocity.linear == 0.0, 3, "the robot to stop at `until`")
    assert rig.robot.pose.x > 2.2


async def test_stop_brakes_now_without_latching(rig: Rig) -> None:
    await rig.send("cmd_vel", RobotVelocity(linear=0.8, angular=0.0, until=_in(30.0)))
    await rig.until(lambda: rig.robot.velocity.linear > 0.5, 3, "the robot to drive")
    stopped_at = time.monotonic()
    await rig.send("stop", RobotStop(at=datetime.now(UTC), reason="test"))
    await rig.until(lambda: rig.robot.velocity.linear == 0.0, 2, "the robot to halt")
    # 0.8 m/s at 1.6 m/s² is 0.5 s of braking, plus the broker's hop.
    assert time.monotonic() - stopped_at < 1.0
    assert not rig.robot.stopped  # the agent owns the latch, not the robot
    assert "stop" in rig.face.heard
    await rig.send("cmd_vel", RobotVelocity(linear=0.5, angular=0.0, until=_in(1.0)))
    await rig.until(lambda: rig.robot.velocity.linear > 0.2, 2, "the robot to drive again")


async def test_path_is_followed(rig: Rig) -> None:
    plan = RobotPath(waypoints=[Waypoint(x=4.0, y=10.0)], speed=1.0)
    await rig.send("path", plan)
    await rig.until(lambda: rig.robot.pose.x > 3.5, 6, "the robot near the waypoint")


async def test_odometry_at_its_rate_battery_and_each_new_fault_once(rig: Rig) -> None:
    for name in ("odom", "battery", "faults"):
        await rig.client.subscribe(f"{PREFIX}/{name}", qos=1)
    rig.world.set_fault("r1", "drive_fault")
    heard: dict[str, list[bytes]] = {"odom": [], "battery": [], "faults": []}
    started = time.monotonic()
    async with asyncio.timeout(5):
        async for message in rig.client.messages:
            heard[str(message.topic).rsplit("/", 1)[-1]].append(bytes(message.payload))  # type: ignore[arg-type]
            if time.monotonic() - started > 1.0:
                break
    assert 14 <= len(heard["odom"]) <= 26, len(heard["odom"])  # 20 Hz for one second
    odom = decode(heard["odom"][-1], RobotOdometry)
    assert (odom.x, odom.y) == pytest.approx((2.0, 10.0))
    assert heard["battery"]
    faults = [decode(p, RobotFault).code for p in heard["faults"]]
    assert faults == ["drive_fault"]


async def test_a_skewed_clock_reads_deadlines_against_itself(rig: Rig) -> None:
    rig.face.skew_s = 5.0  # the robot's clock runs 5 s ahead: a 2 s command has expired
    await rig.send("cmd_vel", RobotVelocity(linear=0.6, angular=0.0, until=_in(2.0)))
    await rig.until(lambda: "cmd_vel" in rig.face.heard, 2, "the command heard")
    await asyncio.sleep(0.3)
    assert rig.robot.velocity.linear == 0.0
    rig.face.skew_s = 0.0
    await rig.send("cmd_vel", RobotVelocity(linear=0.6, angular=0.0, until=_in(2.0)))
    await rig.until(lambda: rig.robot.velocity.linear > 0.2, 2, "the robot to drive")


async def test_the_face_reconnects_after_a_broker_stop() -> None:
    broker = RobotBroker()
    await broker.start()
    w = world()
    face = MqttFace(w.robots["r1"], broker.url)
    task = asyncio.create_task(face.run(), name="face")
    try:
        await wait_connected(face)
        await broker.stop_for(0.5)
        await wait_connected(face, timeout_s=10)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="agent") as client:
            await client.subscribe(f"{PREFIX}/odom")
            async with asyncio.timeout(3):
                async for message in client.messages:
                    assert decode(bytes(message.payload), RobotOdometry).x == 2.0  # type: ignore[arg-type]
                    break
    finally:
        await _cancelled(task)
        await broker.stop()
