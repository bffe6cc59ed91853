from collections.abc import Callable
from typing import TypeVar

from rclpy.clock import Clock
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription

MsgT = TypeVar("MsgT")

class Timer:
    def cancel(self) -> None: ...

class Node:
    def create_publisher(
        self, msg_type: type[MsgT], topic: str, qos_profile: QoSProfile | int
    ) -> Publisher[MsgT]: ...
    def create_subscription(
        self,
        msg_type: type[MsgT],
        topic: str,
        callback: Callable[[MsgT], None],
        qos_profile: QoSProfile | int,
    ) -> Subscription[MsgT]: ...
    def create_timer(self, timer_period_sec: float, callback: Callable[[], None]) -> Timer: ...
    def get_clock(self) -> Clock: ...
    def get_name(self) -> str: ...
    def get_namespace(self) -> str: ...
    def destroy_node(self) -> None: ...
