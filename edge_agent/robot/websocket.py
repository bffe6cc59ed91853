"""The WebSocket robot adapter: the agent connects to the robot controller's WebSocket.

Each frame is a JSON text `{"type": NAME, "body": MESSAGE}` where NAME and
MESSAGE are those of `protocol.robot` (`cmd_vel`, `path`, `stop` from the
agent; `odom`, `battery`, `faults` from the robot), the same messages as the
MQTT adapter's topics. Schemas: `protocol/schemas/robot.*.json`.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

from edge_agent.robot.link import LinkedRobot
from protocol.backoff import Backoff
from protocol.codec import dumps
from protocol.models import WireModel

logger = logging.getLogger(__name__)


class WebSocketRobot(LinkedRobot):
    """A robot controller that serves a WebSocket."""

    _socket: ClientConnection | None = None

    def connected(self) -> bool:
        """Whether the controller's WebSocket is open."""
        return self._socket is not None

    async def run(self) -> None:
        """Stay connected to the controller; forward its telemetry; repeat stops."""
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                async with connect(self._cfg.url, open_timeout=5, ping_interval=5) as socket:
                    self._socket = socket
                    backoff.reset()
                    await self._on_connected()
                    async with self._repeating_stop():
                        async for frame in socket:
                            self._frame(frame)
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                logger.warning("robot controller at %s: %s", self._cfg.url, exc)
            finally:
                self._socket = None
            await asyncio.sleep(backoff.next())

    def _frame(self, frame: str | bytes) -> None:
        try:
            data = orjson.loads(frame)
        except orjson.JSONDecodeError:
            logger.warning("robot controller sent a frame that is not JSON")
            return
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            self._received(data["type"], orjson.dumps(data.get("body")))

    async def _send(self, name: str, message: WireModel) -> None:
        socket = self._socket
        if socket is None:
            return
        body = message.model_dump(mode="json", exclude_none=True)
        try:
            await socket.send(dumps({"type": name, "body": body}).decode())
        except websockets.WebSocketException as exc:
            logger.warning("robot controller: sending %s failed: %s", name, exc)
