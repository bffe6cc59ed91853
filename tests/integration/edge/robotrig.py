"""What the robot adapter tests share: a recording robot, an agent started against a
private hub broker, signed commands, and the hub-link watchdog trials."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import orjson

from protocol import Channel, CommandType, encode, topic
from protocol.commands import new_command
from protocol.models import OverrideParams, ReleaseParams
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


def status(data: Path) -> dict:
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
            lambda: status(tmp_path / "data").get("link", {}).get("state") == "up", 20, "hub link"
        )
    except BaseException:
        agent.ensure_stopped()
        raise
    return agent


def engaged(data: Path) -> bool:
    """Whether the agent's status shows the stop engaged."""
    return bool((status(data).get("estop") or {}).get("engaged"))


def signed(device: str, type_: CommandType, params: object, *, age_s: float = 0) -> bytes:
    """A command signed with HUB_KEY, issued `age_s` ago, valid for 30 s from then."""
    now = datetime.now(UTC) - timedelta(seconds=age_s)
    cmd = new_command(device, type_, params, issued_by="op", now=now, ttl=timedelta(seconds=30))  # type: ignore[arg-type]
    return encode(sign(cmd, HUB_KEY))


async def send_and_collect(
    url: str,
    device: str,
    payloads: list[bytes],
    until_acks: int = 0,
    until_status: str = "",
    timeout_s: float = 20,
) -> list[dict]:
    """Publish the commands, then collect their acks until `until_acks` arrived, or until one
    with `until_status` did. Acks of other commands are left out; with no hub watermarking
    them, the agent re-sends earlier acks now and then, so wait for a status, not a count,
    when a command may have been acknowledged before (a replay)."""
    host, port = url.removeprefix("mqtt://").split(":")
    sent = {orjson.loads(payload)["cmd_id"] for payload in payloads}
    acks: list[dict] = []
    async with aiomqtt.Client(host, int(port), identifier=f"op-{device}") as client:
        await client.subscribe(topic(device, Channel.ACKS), qos=1)
        for payload in payloads:
            await client.publish(topic(device, Channel.CMD), payload, qos=1)
        if until_acks or until_status:
            async with asyncio.timeout(timeout_s):
                async for message in client.messages:
                    ack = orjson.loads(message.payload)["body"]  # type: ignore[arg-type]
                    if ack["cmd_id"] in sent:
                        acks.append(ack)
                    if until_status and acks and acks[-1]["status"] == until_status:
                        break
                    if until_acks and len(acks) >= until_acks:
                        break
    return acks


def send(url: str, device: str, type_: CommandType, params: object) -> None:
    """Publish one fresh signed command."""
    asyncio.run(send_and_collect(url, device, [signed(device, type_, params)]))


def release_once_connected(url: str, device: str, timeout_s: float = 20) -> None:
    """Send a release until the agent acknowledges it done: one sent before the agent is
    back on a restarted broker (no persistence) is lost, so it is sent again."""
    deadline = time.monotonic() + timeout_s
    params = ReleaseParams(reason="next trial")
    while True:
        payload = signed(device, CommandType.RELEASE, params)
        try:
            asyncio.run(
                send_and_collect(url, device, [payload], until_status="done", timeout_s=0.5)
            )
        except (TimeoutError, aiomqtt.MqttError):
            if time.monotonic() > deadline:
                raise AssertionError(f"no release acknowledged within {timeout_s} s") from None
        else:
            return


def drive(url: str, device: str, robot: Recorder, linear: float, duration_s: float) -> float:
    """Send an override and wait until the robot drives at `linear`; when it started."""
    params = OverrideParams(linear=linear, angular=0, duration_s=duration_s)
    send(url, device, CommandType.OVERRIDE, params)
    wait_for(lambda: robot.last_linear() == linear, 20, f"the robot driving at {linear}")
    return time.monotonic()


def watchdog_trials(hub_broker: PrivateBroker, device: str, robot: Recorder) -> str:
    """Kill the hub broker while the robot drives, TRIALS times; assert every zero velocity
    came within the link timeout plus a control period (and scheduling slack); the figures."""
    delays = []
    for _ in range(TRIALS):
        drive(hub_broker.url, device, robot, 0.2, 10)
        killed = time.monotonic()
        hub_broker.kill()
        wait_for(lambda k=killed: robot.first_zero_after(k) is not None, 10, "the watchdog stop")  # type: ignore[misc]
        delays.append(robot.first_zero_after(killed) - killed)  # type: ignore[operator]
        hub_broker.start()
        # The watchdog latched the stop: release it for the next trial.
        release_once_connected(hub_broker.url, device)
    delays.sort()
    p50, p99 = delays[len(delays) // 2] * 1000, delays[int(len(delays) * 0.99)] * 1000
    figures = (
        f"hub link lost while moving -> zero velocity: p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
        f"max {delays[-1] * 1000:.0f} ms over {len(delays)} trials (timeout {LINK_TIMEOUT_S} s)"
    )
    assert delays[-1] < LINK_TIMEOUT_S + PERIOD_S + 0.5, figures
    return figures
