"""The ROS 2 robot adapter: Twist, Path, Odometry, BatteryState and an e-stop Bool.

Under `[robot.ros] namespace` (topic names configurable):

| topic | type | direction |
|---|---|---|
| `cmd_vel` | `geometry_msgs/Twist` | agent → robot: the drive, or a zero Twist (stop) |
| `plan` | `nav_msgs/Path` | agent → robot: a path plan (poses in `frame_id`) |
| `odom` | `nav_msgs/Odometry` | robot → agent: pose and velocity; the heartbeat |
| `battery_state` | `sensor_msgs/BatteryState` | robot → agent |
| (`estop`) | `std_msgs/Bool` | robot → agent: the hardware e-stop, true while pressed; optional |

The drive is repeated at `[robot] stop_repeat_hz` until its deadline, and the
zero Twist at the same rate while stopped. rclpy runs in a thread of its own (its
executor blocks); what the robot says is handed to the event loop with
`call_soon_threadsafe`, and publishing is a quick thread-safe call from the loop.

`nav_msgs/Path` carries no speed: a path plan's speed is not sent, the robot's
planner applies its own limits, and the supervisor still stops the robot when
the plan's timeout lapses.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable

from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Twist, Vector3
from nav_msgs.msg import Odometry, Path
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import BatteryState
from std_msgs.msg import Bool, Header

from edge_agent.config import AgentSettings, RosSection
from edge_agent.robot.link import Clock, LinkedRobot, _utcnow
from protocol import Event, TelemetryPoint
from protocol.models import WireModel
from protocol.robot import RobotBattery, RobotOdometry, RobotPath, RobotVelocity
from protocol.rosnode import RosNode

logger = logging.getLogger(__name__)

NOT_HEARD = "hardware e-stop topic not heard yet"


def node_name(device: str) -> str:
    """A valid ROS node name for a device id.

    >>> node_name("amr-7")
    'outpost_agent_amr_7'
    """
    return "outpost_agent_" + re.sub(r"[^A-Za-z0-9_]", "_", device)


def yaw_of(q: Quaternion) -> float:
    """The rotation about z of a quaternion, in radians.

    >>> round(yaw_of(quaternion_of(1.0)), 6)
    1.0
    """
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def quaternion_of(yaw: float) -> Quaternion:
    """The quaternion of a rotation about z."""
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def twist(linear: float, angular: float) -> Twist:
    """A planar Twist: forward m/s, turn rad/s."""
    return Twist(linear=Vector3(x=linear), angular=Vector3(z=angular))


def odometry(message: Odometry) -> RobotOdometry:
    """The robot's pose and velocity as the agent reports them."""
    pose, velocity = message.pose.pose, message.twist.twist
    return RobotOdometry(
        x=pose.position.x,
        y=pose.position.y,
        theta=yaw_of(pose.orientation),
        linear=velocity.linear.x,
        angular=velocity.angular.z,
    )


def battery(message: BatteryState) -> RobotBattery | None:
    """Charge in percent (BatteryState says 0..1, NaN when unknown) and voltage."""
    if math.isnan(message.percentage):
        return None
    voltage = None if math.isnan(message.voltage) else max(0.0, message.voltage)
    return RobotBattery(percent=min(100.0, max(0.0, message.percentage * 100.0)), voltage=voltage)


class RosRobot(LinkedRobot):
    """A robot on a ROS 2 graph."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        on_point: Callable[[TelemetryPoint], None],
        on_event: Callable[[Event], None],
        clock: Clock = _utcnow,
    ) -> None:
        super().__init__(settings, on_point=on_point, on_event=on_event, clock=clock)
        self._ros = settings.robot.ros
        self._graph: _Graph | None = None
        self._drive: RobotVelocity | None = None
        self._hardware: str | None = NOT_HEARD if self._ros.estop else None

    @property
    def hardware_stop(self) -> str | None:
        """Why the robot's e-stop topic holds the stop; None: released or not configured."""
        return self._hardware

    def connected(self) -> bool:
        """Whether the node is up (DDS has no connection: the robot may not be listening)."""
        return self._graph is not None

    async def run(self) -> None:
        """Bring the node up, repeat stops and drives, take it down when cancelled."""
        loop = asyncio.get_running_loop()

        def deliver(name: str, message: WireModel) -> None:
            loop.call_soon_threadsafe(self._heard, name, message)

        def estop(pressed: bool) -> None:
            loop.call_soon_threadsafe(self._estop, pressed)

        graph = await asyncio.to_thread(_Graph, self._device, self._ros, deliver, estop)
        self._graph = graph
        logger.info(
            "ROS 2 node %s up in namespace %r", graph.node.get_name(), graph.node.get_namespace()
        )
        try:
            await self._on_connected()
            async with self._repeating_stop():
                await asyncio.Event().wait()
        finally:
            self._graph = None
            graph.publish_twist(twist(0.0, 0.0))  # last word: stand still
            await asyncio.to_thread(graph.close)

    async def _send(self, name: str, message: WireModel) -> None:
        graph = self._graph
        if graph is None:
            return
        if isinstance(message, RobotVelocity):
            moving = message.linear != 0.0 or message.angular != 0.0
            self._drive = message if moving else None
            graph.publish_twist(twist(message.linear, message.angular))
        elif isinstance(message, RobotPath):
            self._drive = None
            graph.publish_path(message)
        # `stop` has no ROS message of its own: the zero Twist sent with it is the stop.

    async def _hold(self) -> None:
        """Repeat the drive until its deadline, then stand still (base controllers stop
        when `cmd_vel` goes quiet; the agent must not rely on that alone)."""
        drive, graph = self._drive, self._graph
        if drive is None or graph is None:
            return
        if self._clock() < drive.until:
            graph.publish_twist(twist(drive.linear, drive.angular))
        else:
            self._drive = None
            self.stopped = True
            graph.publish_twist(twist(0.0, 0.0))

    def _estop(self, pressed: bool) -> None:
        topic = self._ros.estop
        self._hardware = f"hardware e-stop pressed ({topic})" if pressed else None


class _Graph:
    """rclpy's side: a context, the node, its publishers and subscriptions, the spin thread."""

    def __init__(
        self,
        device: str,
        cfg: RosSection,
        deliver: Callable[[str, WireModel], None],
        estop: Callable[[bool], None],
    ) -> None:
        self._cfg = cfg
        self._ros = RosNode(
            node_name(device), namespace=cfg.namespace.rstrip("/") or "/", domain_id=cfg.domain_id
        )
        self.node = self._ros.node
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._cmd_vel: Publisher[Twist] = self.node.create_publisher(Twist, cfg.cmd_vel, reliable)
        self._path: Publisher[Path] = self.node.create_publisher(Path, cfg.path, reliable)
        self.node.create_subscription(
            Odometry, cfg.odom, lambda m: deliver("odom", odometry(m)), qos_profile_sensor_data
        )

        def on_battery(message: BatteryState) -> None:
            charge = battery(message)
            if charge is not None:
                deliver("battery", charge)

        self.node.create_subscription(
            BatteryState, cfg.battery, on_battery, qos_profile_sensor_data
        )
        if cfg.estop:
            self.node.create_subscription(Bool, cfg.estop, lambda m: estop(m.data), reliable)
        self._ros.spin()

    def publish_twist(self, message: Twist) -> None:
        """Publish on `cmd_vel` (thread-safe)."""
        self._cmd_vel.publish(message)

    def publish_path(self, plan: RobotPath) -> None:
        """Publish the plan as a `nav_msgs/Path` in the configured frame."""
        header = Header(stamp=self.node.get_clock().now().to_msg(), frame_id=self._cfg.frame_id)
        poses = [
            PoseStamped(
                header=header,
                pose=Pose(
                    position=Point(x=w.x, y=w.y, z=0.0), orientation=quaternion_of(w.theta or 0.0)
                ),
            )
            for w in plan.waypoints
        ]
        self._path.publish(Path(header=header, poses=poses))

    def close(self) -> None:
        """Stop spinning and take the node down."""
        self._ros.close()
