"""The MQTT robot adapter against a robot on its own Mosquitto, commanded through another.

The hub link is one private Mosquitto (so the test can kill it), the robot's broker
another; the robot is a client in the test that records every `cmd_vel` and
publishes `odom` at 20 Hz as its heartbeat.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import orjson
import pytest

from protocol import Channel, CommandType, encode, topic
from protocol.commands import new_command
from protocol.models import EstopParams, OverrideParams, ReleaseParams
from protocol.signing import generate_private_key, public_key_to_text, sign
from tests.integration.harness import AgentProcess, PrivateBroker, agent_config, wait_for

HUB_KEY = generate_private_key()
LINK_TIMEOUT_S = 1.0
PERIOD_S = 0.05
TRIALS = int(os.environ.get("OUTPOST_TEST_WATCHDOG_TRIALS", "50"))


@dataclass
class Recorder:
    """What a robot in a test was told: velocities with their arrival time, stops."""

    velocities: list[tuple[float, float]] = field(default_factory=list)  # (at, linear)
    stops: int = 0

    def heard(self, name: str, body: dict) -> None:
        if name == "stop":
            self.stops += 1
        elif name == "cmd_vel":
            self.velocities.append((time.monotonic(), float(body["linear"])))

    def last_linear(self) -> float | None:
        return self.velocities[-1][1] if self.velocities else None

    def first_zero_after(self, t: float) -> float | None:
        return next((at for at, v in self.velocities if at >= t and v == 0.0), None)


ODOM = {"x": 1.0, "y": 2.0, "theta": 0.0, "linear": 0.0, "angular": 0.0}


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


def _status(data: Path) -> dict:
    try:
        return orjson.loads((data / "status.json").read_bytes())
    except (OSError, ValueError):
        return {}


def start_robot_agent(
    tmp_path: Path,
    device: str,
    hub_broker: PrivateBroker,
    recorder: Recorder,
    **sections: dict,
) -> AgentProcess:
    """Start an agent for `device` on the hub broker, with its robot sections; wait until
    the robot got the agent's initial stop and the hub link is up."""
    cfg = agent_config(
        tmp_path / "agent.toml",
        device=device,
        data_dir=tmp_path / "data",
        mqtt_url=hub_broker.url,
        hub={"public_key": public_key_to_text(HUB_KEY.public_key())},
        **sections,
    )
    agent = AgentProcess(cfg, tmp_path / "agent.log")
    agent.start()
    try:
        wait_for(lambda: recorder.stops > 0, 20, "the agent's initial stop at the robot")
        wait_for(
            lambda: _status(tmp_path / "data").get("link", {}).get("state") == "up", 20, "hub link"
        )
    except BaseException:
        agent.ensure_stopped()
        raise
    return agent


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


def _send(url: str, device: str, type_: CommandType, params: object) -> None:
    now = datetime.now(UTC)
    cmd = new_command(device, type_, params, issued_by="op", now=now, ttl=timedelta(seconds=30))  # type: ignore[arg-type]

    async def publish() -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        async with aiomqtt.Client(host, int(port), identifier=f"op-{device}") as client:
            await client.publish(topic(device, Channel.CMD), encode(sign(cmd, HUB_KEY)), qos=1)

    asyncio.run(publish())


def _drive(url: str, device: str, robot: Recorder, linear: float, duration_s: float) -> float:
    """Send an override and wait until the robot drives at `linear`; when it started."""
    params = OverrideParams(linear=linear, angular=0, duration_s=duration_s)
    _send(url, device, CommandType.OVERRIDE, params)
    wait_for(lambda: robot.last_linear() == linear, 20, f"the robot driving at {linear}")
    return time.monotonic()


@pytest.mark.timeout(120)
def test_override_runs_out_and_estop_stops_and_latches(rig: tuple) -> None:
    hub_broker, robot, _agent, device = rig
    started = _drive(hub_broker.url, device, robot, 0.4, 1)
    wait_for(lambda: robot.first_zero_after(started) is not None, 5, "the deadline stop")
    lapsed = robot.first_zero_after(started) - started  # type: ignore[operator]
    assert lapsed < 1.0 + 0.5, f"override ran {lapsed:.2f} s for a 1 s duration"

    _drive(hub_broker.url, device, robot, 0.3, 5)
    sent = time.monotonic()
    _send(hub_broker.url, device, CommandType.ESTOP, EstopParams(reason="test"))
    wait_for(lambda: robot.first_zero_after(sent) is not None, 5, "the zero velocity")
    _send(
        hub_broker.url,
        device,
        CommandType.OVERRIDE,
        OverrideParams(linear=0.9, angular=0, duration_s=1),
    )
    time.sleep(1.0)
    assert all(v != 0.9 for _at, v in robot.velocities), "moved while the stop was latched"


@pytest.mark.timeout(600)
def test_hub_link_lost_while_moving_stops_within_the_watchdog(rig: tuple, tmp_path: Path) -> None:
    hub_broker, robot, _agent, device = rig
    data = tmp_path / "data"
    delays = []
    for _ in range(TRIALS):
        _drive(hub_broker.url, device, robot, 0.2, 10)
        killed = time.monotonic()
        hub_broker.kill()
        wait_for(lambda k=killed: robot.first_zero_after(k) is not None, 10, "the watchdog stop")  # type: ignore[misc]
        delays.append(robot.first_zero_after(killed) - killed)  # type: ignore[operator]
        hub_broker.start()
        # The watchdog latched the stop: release it for the next trial.
        wait_for(lambda: _status(data).get("link", {}).get("state") == "up", 20, "link up")
        _send(hub_broker.url, device, CommandType.RELEASE, ReleaseParams(reason="next trial"))
        wait_for(lambda: not _status(data)["estop"]["engaged"], 20, "the release")
    delays.sort()
    p50, p99 = delays[len(delays) // 2] * 1000, delays[int(len(delays) * 0.99)] * 1000
    print(
        f"\nhub link lost while moving -> zero velocity: p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
        f"max {delays[-1] * 1000:.0f} ms over {len(delays)} trials (timeout {LINK_TIMEOUT_S} s)"
    )
    assert delays[-1] < LINK_TIMEOUT_S + PERIOD_S + 0.5
