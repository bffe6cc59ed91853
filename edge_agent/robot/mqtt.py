"""The MQTT robot adapter: `protocol.robot` JSON on the robot's own broker.

Topics under `[robot] topic_prefix` (default `robot/{device id}`): the agent
publishes `cmd_vel`, `path` and `stop`; the robot publishes `odom` (10 Hz or
more: its heartbeat), `battery` and `faults`. Schemas: `protocol/schemas/robot.*.json`.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import aiomqtt

from edge_agent.robot.link import LinkedRobot
from protocol import encode
from protocol.backoff import Backoff
from protocol.models import WireModel
from protocol.transport import NO_DELAY

logger = logging.getLogger(__name__)


class MqttRobot(LinkedRobot):
    """A robot reached through its own MQTT broker."""

    _client: aiomqtt.Client | None = None

    @property
    def prefix(self) -> str:
        """The robot's topic prefix (default `robot/{device id}`)."""
        return (self._cfg.topic_prefix or f"robot/{self._device}").rstrip("/")

    def topic(self, name: str) -> str:
        """PREFIX/name."""
        return f"{self.prefix}/{name}"

    def connected(self) -> bool:
        """Whether the robot's broker is connected."""
        return self._client is not None

    async def run(self) -> None:
        """Stay connected to the robot's broker; forward its telemetry; repeat stops."""
        backoff = Backoff(0.2, 5.0)
        url = urlsplit(self._cfg.url)
        while True:
            try:
                async with aiomqtt.Client(
                    url.hostname or "127.0.0.1",
                    url.port or 1883,
                    username=self._cfg.username or None,
                    password=self._cfg.password or None,
                    identifier=f"outpost-agent-{self._device}",
                    timeout=5,
                    socket_options=NO_DELAY,
                ) as client:
                    for name in ("odom", "battery", "faults"):
                        await client.subscribe(self.topic(name), qos=0)
                    self._client = client
                    backoff.reset()
                    await self._on_connected()
                    async with self._repeating_stop():
                        async for message in client.messages:
                            payload = message.payload
                            self._received(
                                str(message.topic).rsplit("/", 1)[-1],
                                bytes(payload) if isinstance(payload, bytes | bytearray) else b"",
                            )
            except aiomqtt.MqttError as exc:
                logger.warning("robot broker at %s: %s", self._cfg.url, exc)
            finally:
                self._client = None
            await asyncio.sleep(backoff.next())

    async def _send(self, name: str, message: WireModel) -> None:
        client = self._client
        if client is None:
            return
        try:
            await client.publish(self.topic(name), encode(message), qos=1, timeout=2)
        except aiomqtt.MqttError as exc:
            logger.warning("robot broker: publishing %s failed: %s", name, exc)
