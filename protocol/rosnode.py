"""One rclpy node in a context of its own, spun in a thread (rclpy's executor blocks).

Both sides of the ROS 2 robot contract use it: the agent's ROS 2 adapter and camera
source, the simulator's ROS 2 robots and the benchmark's stand-in robot. Several
nodes can live in one process (each has its own context and domain). The caller owns
SIGTERM, so rclpy installs no signal handlers. Needs the `ros` extra.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

logger = logging.getLogger(__name__)

SPIN_TIMEOUT_S = 0.1


class RosNode:
    """Create the node, add publishers and subscriptions to `.node`, then `spin()`; `close()`."""

    def __init__(self, name: str, *, namespace: str = "/", domain_id: int | None = None) -> None:
        self.context = Context()
        rclpy.init(
            context=self.context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        try:
            self.node = rclpy.create_node(
                name, context=self.context, namespace=namespace, start_parameter_services=False
            )
        except Exception:
            with contextlib.suppress(Exception):
                rclpy.shutdown(context=self.context)
            raise
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._running = False
        self._thread: threading.Thread | None = None

    def spin(self) -> None:
        """Run callbacks in a thread of their own until `close()`."""
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="rclpy", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            try:
                self._executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
            except Exception:  # a callback's bug must not stop the other callbacks
                logger.exception("ROS 2 callback failed")

    def close(self) -> None:
        """Stop spinning and take the node down (safe to call twice)."""
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=5 * SPIN_TIMEOUT_S + 1)
            self._thread = None
        with contextlib.suppress(Exception):
            self._executor.shutdown(timeout_sec=1)
            self.node.destroy_node()
            rclpy.shutdown(context=self.context)
