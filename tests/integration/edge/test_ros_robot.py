"""The ROS 2 robot adapter against a real rclpy node standing in for the robot.

The hub link is a private Mosquitto (so the test can kill it); the robot is a ROS 2
node in this process (`bench.rosrobot.RosRobotStandIn`, on a ROS domain of its
own) that records every `geometry_msgs/Twist` on `cmd_vel`, publishes
`nav_msgs/Odometry` at 20 Hz as the heartbeat, and holds a `std_msgs/Bool`
hardware e-stop. The agent is a real `edge-agent run` in another process.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.rosrobot import RosRobotStandIn
from protocol import encode
from protocol.commands import new_command
from protocol.models import EstopParams, OverrideParams, PathPlanParams, ReleaseParams, Waypoint
from protocol.signing import generate_private_key, sign
from tests.integration.edge.robotrig import (
    HUB_KEY,
    LINK_TIMEOUT_S,
    PERIOD_S,
    CommandType,
    Recorder,
    drive,
    engaged,
    send,
    send_and_collect,
    signed,
    start_robot_agent,
    status,
    watchdog_trials,
)
from tests.integration.harness import AgentProcess, PrivateBroker, wait_for

# rclpy's message parser imports lark, which imports the deprecated `sre_parse` and `sre_constants`.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_(parse|constants)' is deprecated")

NAMESPACE = "/amr"
ESTOP_TOPIC = "estop"
REPEAT_HZ = 10.0


class RosRecorder(Recorder):
    """What the ROS node heard on `cmd_vel`; a zero Twist is a stop."""

    def twist(self, at: float, linear: float, angular: float) -> None:
        del at  # perf_counter; the recorder keeps monotonic time like the others
        self.velocities.append((time.monotonic(), linear))
        if linear == 0.0 and angular == 0.0:
            self.stops += 1

    def zeros_between(self, start: float, end: float) -> int:
        return sum(1 for at, v in self.velocities if start <= at < end and v == 0.0)


def release_when_clear(url: str, device: str, data: Path) -> None:
    """Send fresh releases until one is accepted (refused while a stop condition holds)."""
    deadline = time.monotonic() + 20
    while engaged(data):
        assert time.monotonic() < deadline, f"the stop never released: {status(data)}"
        send(url, device, CommandType.RELEASE, ReleaseParams(reason="robot up"))
        time.sleep(0.3)


@pytest.fixture
def ros_rig(
    tmp_path: Path, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[PrivateBroker, RosRecorder, RosRobotStandIn, AgentProcess, str]]:
    # Both sides find each other on loopback only, on a domain no other test uses.
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    domain_id = secrets.randbelow(100) + 1
    device = f"ros-{run_id}-{secrets.token_hex(2)}"
    hub_broker = PrivateBroker(tmp_path / "hub")
    recorder = RosRecorder()
    robot = RosRobotStandIn(
        domain_id=domain_id, namespace=NAMESPACE, on_twist=recorder.twist, estop_topic=ESTOP_TOPIC
    )
    try:
        hub_broker.start()
        robot.start()
        robot.estop(False)
        agent = start_robot_agent(
            tmp_path,
            device,
            hub_broker,
            recorder,
            robot={
                "adapter": "ros",
                "stop_repeat_hz": REPEAT_HZ,
                "ros": {"namespace": NAMESPACE, "domain_id": domain_id, "estop": ESTOP_TOPIC},
            },
            safety={"link_timeout_s": LINK_TIMEOUT_S, "control_period_s": PERIOD_S},
        )
        try:
            # Until the e-stop topic is heard released it holds the stop, which latches:
            # like an operator after the robot booted, release once it is heard.
            release_when_clear(hub_broker.url, device, tmp_path / "data")
            yield hub_broker, recorder, robot, agent, device
        finally:
            agent.ensure_stopped()
    finally:
        robot.close()
        hub_broker.kill()


@pytest.mark.timeout(120)
def test_estop_sends_a_zero_twist_repeated_while_stopped_and_overrides_run_out(
    ros_rig: tuple,
) -> None:
    hub_broker, robot, _node, _agent, device = ros_rig
    started = drive(hub_broker.url, device, robot, 0.4, 1)
    wait_for(lambda: robot.first_zero_after(started) is not None, 5, "the deadline stop")
    lapsed = robot.first_zero_after(started) - started  # type: ignore[operator]
    assert lapsed < 1.0 + 0.5, f"override ran {lapsed:.2f} s for a 1 s duration"
    # While moving the drive is repeated (base controllers stop when cmd_vel goes quiet).
    driving = [at for at, v in robot.velocities if started - 0.2 <= at < started + 0.9 and v == 0.4]
    assert len(driving) >= 0.5 * REPEAT_HZ, f"the drive was sent {len(driving)} times in ~1 s"

    drive(hub_broker.url, device, robot, 0.3, 5)
    sent = time.monotonic()
    send(hub_broker.url, device, CommandType.ESTOP, EstopParams(reason="test"))
    wait_for(lambda: robot.first_zero_after(sent) is not None, 5, "the zero Twist")
    stopped_at = robot.first_zero_after(sent)
    assert stopped_at is not None
    send(
        hub_broker.url,
        device,
        CommandType.OVERRIDE,
        OverrideParams(linear=0.9, angular=0, duration_s=1),
    )
    time.sleep(1.2)
    assert all(v != 0.9 for _at, v in robot.velocities), "moved while the stop was latched"
    zeros = robot.zeros_between(stopped_at, stopped_at + 1.0)
    assert zeros >= 0.5 * REPEAT_HZ, f"{zeros} zero Twists in the first second stopped"


@pytest.mark.timeout(120)
def test_expired_or_replayed_release_does_not_unlatch(ros_rig: tuple, tmp_path: Path) -> None:
    hub_broker, robot, _node, _agent, device = ros_rig
    data = tmp_path / "data"
    send(hub_broker.url, device, CommandType.ESTOP, EstopParams(reason="test"))
    wait_for(lambda: engaged(data), 10, "the stop")

    expired = signed(device, CommandType.RELEASE, ReleaseParams(reason="old"), age_s=120)
    acks = asyncio.run(send_and_collect(hub_broker.url, device, [expired], until_acks=1))
    assert acks[-1]["status"] == "expired", acks
    fresh = signed(device, CommandType.RELEASE, ReleaseParams(reason="clear"))
    asyncio.run(send_and_collect(hub_broker.url, device, [fresh], until_acks=2))
    wait_for(lambda: not engaged(data), 10, "the release")

    send(hub_broker.url, device, CommandType.ESTOP, EstopParams(reason="again"))
    wait_for(lambda: engaged(data), 10, "the second stop")
    acks = asyncio.run(send_and_collect(hub_broker.url, device, [fresh], until_status="rejected"))
    assert acks[-1].get("reason") == "replayed", acks
    assert all(a["status"] in ("received", "done", "rejected") for a in acks), acks
    time.sleep(0.5)
    assert engaged(data), "a replayed release unlatched the stop"
    moving = OverrideParams(linear=0.7, angular=0, duration_s=1)
    send(hub_broker.url, device, CommandType.OVERRIDE, moving)
    time.sleep(0.5)
    assert robot.last_linear() == 0.0


@pytest.mark.timeout(120)
def test_hardware_estop_topic_engages_and_holds_until_released(
    ros_rig: tuple, tmp_path: Path
) -> None:
    hub_broker, robot, node, _agent, device = ros_rig
    data = tmp_path / "data"
    started = drive(hub_broker.url, device, robot, 0.2, 10)
    node.estop(True)
    wait_for(lambda: engaged(data), 5, "the hardware stop")
    assert robot.first_zero_after(started) is not None
    assert status(data)["estop"]["source"] == "hardware"
    held = signed(device, CommandType.RELEASE, ReleaseParams(reason="try"))
    acks = asyncio.run(send_and_collect(hub_broker.url, device, [held], until_status="failed"))
    assert "hardware e-stop pressed" in acks[-1]["detail"]
    assert engaged(data)

    node.estop(False)
    # Once the agent hears the button let go, an operator's release is accepted again.
    release_when_clear(hub_broker.url, device, data)


@pytest.mark.timeout(120)
def test_path_plan_becomes_a_nav_path(ros_rig: tuple) -> None:
    hub_broker, _robot, node, _agent, device = ros_rig
    waypoints = [Waypoint(x=1.0, y=2.0, theta=0.5), Waypoint(x=3.0, y=-1.0)]
    plan = PathPlanParams(waypoints=waypoints, speed=0.5, timeout_s=30)
    send(hub_broker.url, device, CommandType.PATH_PLAN, plan)
    wait_for(lambda: bool(node.paths), 10, "the nav_msgs/Path")
    path = node.paths[-1]
    assert path.header.frame_id == "map"
    assert [(p.pose.position.x, p.pose.position.y) for p in path.poses] == [(1.0, 2.0), (3.0, -1.0)]
    assert path.poses[0].pose.orientation.z == pytest.approx(0.2474, abs=1e-3)  # sin(0.25)


@pytest.mark.timeout(600)
def test_hub_link_lost_while_moving_sends_a_zero_twist_within_the_watchdog(ros_rig: tuple) -> None:
    hub_broker, robot, _node, _agent, device = ros_rig
    print("\n" + watchdog_trials(hub_broker, device, robot))


@pytest.mark.timeout(120)
def test_silent_odometry_stops_the_robot(ros_rig: tuple) -> None:
    hub_broker, robot, node, _agent, device = ros_rig
    drive(hub_broker.url, device, robot, 0.2, 10)
    silenced = time.monotonic()
    node.odometry = False
    wait_for(lambda: robot.first_zero_after(silenced) is not None, 5, "the heartbeat stop")
    delay = robot.first_zero_after(silenced) - silenced  # type: ignore[operator]
    print(f"\nodometry silent while moving -> zero Twist after {delay * 1000:.0f} ms")


@pytest.mark.timeout(120)
def test_forged_misaddressed_or_malformed_commands_are_refused_and_nothing_moves(
    ros_rig: tuple,
) -> None:
    hub_broker, robot, _node, _agent, device = ros_rig
    drive_fast = OverrideParams(linear=0.8, angular=0, duration_s=2)
    now = datetime.now(UTC)
    forged = encode(
        sign(
            new_command(
                device, CommandType.OVERRIDE, drive_fast, issued_by="mallory", now=now,
                ttl=timedelta(seconds=30),
            ),
            generate_private_key(),
        )
    )  # fmt: skip
    elsewhere = encode(
        sign(
            new_command(
                "another-robot", CommandType.OVERRIDE, drive_fast, issued_by="op", now=now,
                ttl=timedelta(seconds=30),
            ),
            HUB_KEY,
        )
    )  # fmt: skip
    malformed = b'{"v": "1.0", "cmd_id": "bad-1", "type": "override"}'
    acks = asyncio.run(
        send_and_collect(hub_broker.url, device, [forged, elsewhere, malformed], until_acks=3)
    )
    reasons = sorted(a.get("reason") for a in acks)
    assert all(a["status"] == "rejected" for a in acks), acks
    assert reasons == ["bad_signature", "malformed", "wrong_device"], acks
    time.sleep(0.5)
    assert all(v != 0.8 for _at, v in robot.velocities), "a refused command moved the robot"
