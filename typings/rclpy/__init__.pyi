from rclpy.context import Context
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

def init(
    *,
    args: list[str] | None = None,
    context: Context | None = None,
    domain_id: int | None = None,
    signal_handler_options: SignalHandlerOptions | None = None,
) -> object: ...
def shutdown(*, context: Context | None = None, uninstall_handlers: bool | None = None) -> None: ...
def ok(*, context: Context | None = None) -> bool: ...
def create_node(
    node_name: str,
    *,
    context: Context | None = None,
    namespace: str | None = None,
    enable_rosout: bool = True,
    start_parameter_services: bool = True,
) -> Node: ...
