"""A simulated robot's ROS 2 face: the robot side of the agent's `ros` adapter.

In the robot's namespace it hears `cmd_vel` (`geometry_msgs/Twist`) and `plan`
(`nav_msgs/Path`), and publishes `odom` (`nav_msgs/Odometry`, at `odom_hz`: the
heartbeat), `battery_state` (`sensor_msgs/BatteryState`, 1 Hz) and, when given a
camera, `camera/image_raw` (`sensor_msgs/Image`, `bgr8`, at `camera_fps`).

A Twist is held for `twist_hold_s` and then the robot brakes by itself, like a base
controller whose `cmd_vel` went quiet (the agent repeats the drive faster than that);
a zero Twist brakes now. A Path carries no speed: the robot uses its own limit.
`skew_s` shifts the stamps of everything it publishes (a robot with a wrong clock).

Example:
    face = RosFace(world, "robot-3", domain_id=7, namespace="/robot_3")
    face.start()
    ...
    face.close()
"""

from __future__ import annotations

import logging
import math
import re
import time

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Twist, Vector3
from nav_msgs.msg import Odometry, Path
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import BatteryState, Image
from std_msgs.msg import Header

from protocol.rosnode import RosNode
from sim.faces.mqtt import voltage_of
from sim.render import Camera
from sim.world import World

logger = logging.getLogger(__name__)

IMAGE_TOPIC = "camera/image_raw"


def namespace_for(robot_id: str) -> str:
    """The ROS namespace of a robot id (ROS names allow no `-`).

    >>> namespace_for("robot-3")
    '/robot_3'
    """
    return "/" + re.sub(r"[^A-Za-z0-9_]", "_", robot_id)


def _quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


class RosFace:
    """Connects one `SimRobot` of a world to a ROS 2 graph, in a node and thread of its own."""

    def __init__(
        self,
        world: World,
        robot_id: str,
        *,
        domain_id: int | None = None,
        namespace: str | None = None,
        odom_hz: float = 10.0,
        twist_hold_s: float = 0.5,
        camera: Camera | None = None,
        camera_fps: float = 0.0,
    ) -> None:
        self.world, self.robot = world, world.robot(robot_id)
        self.domain_id = domain_id
        self.namespace = namespace or namespace_for(robot_id)
        self.odom_hz, self.twist_hold_s = odom_hz, twist_hold_s
        self.camera, self.camera_fps = camera, camera_fps
        self.skew_s = 0.0
        self.heard: dict[str, float] = {}
        """`cmd_vel` / `plan` → `time.time()` when last heard (tests measure latency)."""
        self.images_published = 0
        self._ros: RosNode | None = None
        self._rng = np.random.default_rng(abs(hash(robot_id)) % (1 << 32))
        self._last_battery = 0.0

    def start(self) -> None:
        """Create the node, its publishers and subscriptions, and start spinning."""
        name = "outpost_sim_" + self.namespace.strip("/")
        self._ros = RosNode(name, namespace=self.namespace, domain_id=self.domain_id)
        node = self._ros.node
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(Twist, "cmd_vel", self._on_twist, reliable)
        node.create_subscription(Path, "plan", self._on_path, reliable)
        self._odom: Publisher[Odometry] = node.create_publisher(Odometry, "odom", reliable)
        self._battery: Publisher[BatteryState] = node.create_publisher(
            BatteryState, "battery_state", reliable
        )
        node.create_timer(1.0 / self.odom_hz, self._heartbeat)
        if self.camera is not None and self.camera_fps > 0:
            self._image: Publisher[Image] = node.create_publisher(
                Image, IMAGE_TOPIC, qos_profile_sensor_data
            )
            node.create_timer(1.0 / self.camera_fps, self._publish_image)
        self._ros.spin()
        logger.info("robot %s: ROS 2 face up in %s", self.robot.id, self.namespace)

    def _on_twist(self, message: Twist) -> None:
        self.heard["cmd_vel"] = time.time()
        linear, angular = message.linear.x, message.angular.z
        if linear == 0.0 and angular == 0.0:
            self.robot.drive(0.0, 0.0, duration_s=0.0)
        else:
            self.robot.drive(linear, angular, duration_s=self.twist_hold_s)

    def _on_path(self, message: Path) -> None:
        self.heard["plan"] = time.time()
        points = [(p.pose.position.x, p.pose.position.y) for p in message.poses]
        if points:
            self.robot.follow_path(points)

    def _stamp(self) -> Time:
        now = time.time() + self.skew_s
        return Time(sec=int(now), nanosec=int((now % 1.0) * 1e9))

    def _heartbeat(self) -> None:
        pose, velocity = self.robot.pose, self.robot.velocity
        header = Header(stamp=self._stamp(), frame_id="map")
        odom = Odometry(header=header, child_frame_id="base_link")
        odom.pose.pose = Pose(
            position=Point(x=pose.x, y=pose.y), orientation=_quaternion(pose.heading)
        )
        odom.twist.twist = Twist(
            linear=Vector3(x=velocity.linear), angular=Vector3(z=velocity.angular)
        )
        self._odom.publish(odom)
        if time.monotonic() - self._last_battery >= 1.0:
            self._last_battery = time.monotonic()
            charge = self.robot.battery.percent
            battery = BatteryState(
                header=header, percentage=charge / 100.0, voltage=voltage_of(charge)
            )
            battery.present = True
            self._battery.publish(battery)

    def _publish_image(self) -> None:
        if self.camera is None:
            return
        frame = self.camera.render(self.world, self._rng)
        height, width = frame.image.shape[:2]
        self._image.publish(
            Image(
                header=Header(stamp=self._stamp(), frame_id=f"{self.robot.id}_camera"),
                height=height,
                width=width,
                encoding="bgr8",
                step=width * 3,
                data=frame.image.tobytes(),
            )
        )
        self.images_published += 1

    def close(self) -> None:
        """Stop spinning; take the node down (safe to call twice)."""
        if self._ros is not None:
            self._ros.close()
            self._ros = None
