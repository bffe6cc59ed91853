"""A ROS 2 node standing in for a robot: hears `cmd_vel` and `plan`, publishes odometry.

Used by `outpost bench estop --robot ros` and by the tests of the ROS 2 adapter.
It runs rclpy in a context and a thread of its own (`protocol.rosnode.RosNode`); every
Twist it hears is passed to `on_twist(at, linear, angular)` with `time.perf_counter()` of arrival
(called on the rclpy thread). Odometry at `odom_hz` is the robot's heartbeat;
`estop(pressed)` publishes the hardware e-stop `std_msgs/Bool` when a topic is set.

Example:
    robot = RosRobotStandIn(domain_id=7, namespace="/amr7", on_twist=print)
    robot.start()
    ...
    robot.close()
"""

from __future__ import annotations

import time
from collections.abc import Callable

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry, Path
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import BatteryState
from std_msgs.msg import Bool

from protocol.rosnode import RosNode

TwistHandler = Callable[[float, float, float], None]


class RosRobotStandIn:
    """The robot's side of the ROS 2 adapter's contract."""

    def __init__(
        self,
        *,
        domain_id: int,
        namespace: str = "",
        on_twist: TwistHandler,
        odom_hz: float = 20.0,
        estop_topic: str = "",
    ) -> None:
        self.domain_id, self.namespace = domain_id, namespace
        self.on_twist, self.odom_hz, self.estop_topic = on_twist, odom_hz, estop_topic
        self.paths: list[Path] = []
        self.odometry = True
        self._ros: RosNode | None = None
        self._estop_state: bool | None = None
        self._estop: Publisher[Bool] | None = None

    def start(self) -> None:
        """Create the node and start spinning and publishing odometry."""
        self._ros = RosNode(
            "robot_stand_in", namespace=self.namespace or "/", domain_id=self.domain_id
        )
        node = self._ros.node
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(
            Twist,
            "cmd_vel",
            lambda m: self.on_twist(time.perf_counter(), m.linear.x, m.angular.z),
            reliable,
        )
        node.create_subscription(Path, "plan", self.paths.append, reliable)
        self._odom = node.create_publisher(Odometry, "odom", reliable)
        self._battery = node.create_publisher(BatteryState, "battery_state", reliable)
        if self.estop_topic:
            self._estop = node.create_publisher(Bool, self.estop_topic, reliable)
        node.create_timer(1.0 / self.odom_hz, self._heartbeat)
        self._ros.spin()

    def estop(self, pressed: bool) -> None:
        """Press (True) or release the hardware e-stop; published with every odometry too."""
        self._estop_state = pressed
        if self._estop is not None:
            self._estop.publish(Bool(data=pressed))

    def _heartbeat(self) -> None:
        if self.odometry:
            self._odom.publish(Odometry(child_frame_id="base_link"))
            self._battery.publish(BatteryState(voltage=24.5, percentage=0.81))
        if self._estop is not None and self._estop_state is not None:
            self._estop.publish(Bool(data=self._estop_state))

    def close(self) -> None:
        """Stop spinning; take the node down."""
        if self._ros is not None:
            self._ros.close()
            self._ros = None
