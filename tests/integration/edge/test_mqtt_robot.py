"""The MQTT robot adapter against a robot on its own Mosquitto, commanded through another.

The hub link is one private Mosquitto (so the test can kill it), the robot's broker
another; the robot is a client in the test that records every `cmd_vel` and
publishes `odom` at 20 Hz as its heartbeat.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import orjson
import pytest

from protocol.models import EstopParams, OverrideParams
from tests.integration.edge.robotrig import (
    LINK_TIMEOUT_S,
    ODOM,
    PERIOD_S,
    CommandType,
    Recorder,
    drive,
    send,
    start_robot_agent,
    watchdog_trials,
)
from tests.integration.harness import AgentProcess, PrivateBroker, wait_for


@dataclass
class Robot(Recorder):
    """Records what the agent tells it; publishes odometry while the test runs."""

    url: str = ""
    prefix: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        host, port = self.url.removeprefix("mqtt://").split(":")
        async with aiomqtt.Client(host, int(port), identifier="robot") as client:
            await client.subscribe(f"{self.prefix}/cmd_vel", qos=1)
            await client.subscribe(f"{self.prefix}/stop", qos=1)
            odom = asyncio.create_task(self._odom(client))
            receive = asyncio.create_task(self._receive(client))
            await asyncio.to_thread(self._stop.wait)
            odom.cancel()
            receive.cancel()

    async def _odom(self, client: aiomqtt.Client) -> None:
        while True:
            await client.publish(f"{self.prefix}/odom", orjson.dumps(ODOM))
            await asyncio.sleep(0.05)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            name = str(message.topic).rsplit("/", 1)[-1]
            self.heard(name, orjson.loads(message.payload))  # type: ignore[arg-type]

    def close(self) -> None:
        self._stop.set()


@pytest.fixture
def rig(tmp_path: Path, run_id: str) -> Iterator[tuple[PrivateBroker, Robot, AgentProcess, str]]:
    device = f"robot-{run_id}"
    hub_broker, robot_broker = PrivateBroker(tmp_path / "hub"), PrivateBroker(tmp_path / "robot")
    hub_broker.start()
    robot_broker.start()
    robot = Robot(url=robot_broker.url, prefix=f"robot/{device}")
    thread = threading.Thread(target=robot.run, daemon=True)
    thread.start()
    try:
        agent = start_robot_agent(
            tmp_path,
            device,
            hub_broker,
            robot,
            robot={"adapter": "mqtt", "url": robot_broker.url},
            safety={"link_timeout_s": LINK_TIMEOUT_S, "control_period_s": PERIOD_S},
        )
        yield hub_broker, robot, agent, device
        agent.ensure_stopped()
    finally:
        robot.close()
        thread.join(5)
        hub_broker.kill()
        robot_broker.kill()


@pytest.mark.timeout(120)
def test_override_runs_out_and_estop_stops_and_latches(rig: tuple) -> None:
    hub_broker, robot, _agent, device = rig
    started = drive(hub_broker.url, device, robot, 0.4, 1)
    wait_for(lambda: robot.first_zero_after(started) is not None, 5, "the deadline stop")
    lapsed = robot.first_zero_after(started) - started  # type: ignore[operator]
    assert lapsed < 1.0 + 0.5, f"override ran {lapsed:.2f} s for a 1 s duration"

    drive(hub_broker.url, device, robot, 0.3, 5)
    sent = time.monotonic()
    send(hub_broker.url, device, CommandType.ESTOP, EstopParams(reason="test"))
    wait_for(lambda: robot.first_zero_after(sent) is not None, 5, "the zero velocity")
    send(
        hub_broker.url,
        device,
        CommandType.OVERRIDE,
        OverrideParams(linear=0.9, angular=0, duration_s=1),
    )
    time.sleep(1.0)
    assert all(v != 0.9 for _at, v in robot.velocities), "moved while the stop was latched"


@pytest.mark.timeout(600)
def test_hub_link_lost_while_moving_stops_within_the_watchdog(rig: tuple) -> None:
    hub_broker, robot, _agent, device = rig
    print("\n" + watchdog_trials(hub_broker, device, robot))
