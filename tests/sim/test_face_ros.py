"""The ROS 2 face: a simulated robot obeys Twist and Path, publishes Odometry, battery, Image."""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterator

import pytest
from geometry_msgs.msg import Point, Pose, PoseStamped, Twist, Vector3
from nav_msgs.msg import Odometry, Path
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import BatteryState, Image

from protocol.rosnode import RosNode
from sim.faces.ros import IMAGE_TOPIC, RosFace, namespace_for
from sim.render import cameras_for
from sim.world import RealTimeStepper
from tests.sim.support import world

# rclpy's message parser imports lark, which imports the deprecated `sre_parse` and `sre_constants`.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_(parse|constants)' is deprecated")


class Agent:
    """The agent's side: publishes Twist and Path, records what the robot says."""

    def __init__(self, domain_id: int, namespace: str) -> None:
        self.ros = RosNode("test_agent", namespace=namespace, domain_id=domain_id)
        node = self.ros.node
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.cmd_vel = node.create_publisher(Twist, "cmd_vel", reliable)
        self.plan = node.create_publisher(Path, "plan", reliable)
        self.odom: list[tuple[float, Odometry]] = []
        self.battery: list[BatteryState] = []
        self.images: list[Image] = []
        node.create_subscription(
            Odometry,
            "odom",
            lambda m: self.odom.append((time.monotonic(), m)),
            qos_profile_sensor_data,
        )
        node.create_subscription(
            BatteryState, "battery_state", self.battery.append, qos_profile_sensor_data
        )
        node.create_subscription(Image, IMAGE_TOPIC, self.images.append, qos_profile_sensor_data)
        self.ros.spin()

    def twist(self, linear: float, angular: float = 0.0) -> None:
        self.cmd_vel.publish(Twist(linear=Vector3(x=linear), angular=Vector3(z=angular)))


def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RosFace, Agent]]:
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    domain_id = secrets.randbelow(100) + 101
    w = world(robots=[{"id": "r1", "x": 2.0, "y": 10.0, "camera": {"width": 64, "height": 48}}])
    camera = cameras_for(w)["r1"]
    face = RosFace(w, "r1", domain_id=domain_id, odom_hz=20.0, camera=camera, camera_fps=5.0)
    stepper = RealTimeStepper(w, rate_hz=50)
    stepper.start()
    face.start()
    agent = Agent(domain_id, namespace_for("r1"))
    try:
        until(lambda: len(agent.odom) > 2, 10, "odometry from the robot (discovery)")
        # Discovery runs both ways: a Path published before the robot's subscription
        # matched the agent's publisher would be dropped.
        until(
            lambda: (
                agent.cmd_vel.get_subscription_count() > 0
                and agent.plan.get_subscription_count() > 0
            ),
            10,
            "the robot to subscribe to cmd_vel and plan (discovery)",
        )
        yield face, agent
    finally:
        agent.ros.close()
        face.close()
        stepper.stop()


def test_a_twist_drives_for_its_hold_and_a_zero_twist_brakes(pair: tuple[RosFace, Agent]) -> None:
    face, agent = pair
    robot = face.robot
    for _ in range(10):  # the agent repeats its drive faster than the hold
        agent.twist(0.8)
        time.sleep(0.1)
    assert robot.velocity.linear > 0.5
    agent.twist(0.0)
    until(lambda: robot.velocity.linear == 0.0, 1.5, "the zero Twist to brake the robot")
    agent.twist(0.8)  # then silence: the base controller's timeout brakes it
    until(lambda: robot.velocity.linear > 0.2, 2, "the robot to drive")
    until(lambda: robot.velocity.linear == 0.0, face.twist_hold_s + 1.5, "the hold to lapse")
    assert "cmd_vel" in face.heard


def test_a_path_is_followed(pair: tuple[RosFace, Agent]) -> None:
    face, agent = pair
    pose = PoseStamped(pose=Pose(position=Point(x=4.0, y=10.0)))
    agent.plan.publish(Path(poses=[pose]))
    until(lambda: face.robot.pose.x > 3.5, 8, "the robot near the waypoint")


def test_odometry_battery_and_camera_images_are_published(pair: tuple[RosFace, Agent]) -> None:
    face, agent = pair
    start = len(agent.odom)
    time.sleep(1.0)
    assert 12 <= len(agent.odom) - start <= 28  # 20 Hz
    odom = agent.odom[-1][1]
    assert (odom.pose.pose.position.x, odom.pose.pose.position.y) == pytest.approx((2.0, 10.0))
    until(lambda: bool(agent.battery), 3, "a BatteryState")
    assert agent.battery[-1].percentage == pytest.approx(1.0, abs=0.01)
    until(lambda: bool(agent.images), 3, "an Image")
    image = agent.images[-1]
    assert (image.width, image.height, image.encoding) == (64, 48, "bgr8")
    assert len(image.data) == 64 * 48 * 3
    face.skew_s = 3600.0
    time.sleep(0.3)
    stamp = agent.odom[-1][1].header.stamp
    assert math.isclose(stamp.sec + stamp.nanosec / 1e9, time.time() + 3600.0, abs_tol=2.0)
