"""The priority path: one long-lived MQTT connection of the API process, for commands only.

Commands never share a connection, a queue or a bus with ingest, watermarks or
bulk work, so a stop is one PUBLISH and one PUBACK away from the broker whatever
the rest of the hub is doing. The connection is opened when the API starts and
kept up with capped, jittered backoff; a publish waits for it (within its
timeout) instead of failing during a short reconnect. A refused login is not
retried: it is a configuration error, logged once, and every publish reports it.

Example:
    >>> async def stop(publisher: CommandPublisher, payload: bytes) -> None:
    ...     await publisher.publish("outpost/v1/amr-7/cmd", payload, expiry_s=600)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.control.errors import PublishError
from hub.settings import HubSettings
from protocol.backoff import Backoff
from protocol.transport import NO_DELAY

logger = logging.getLogger(__name__)

_AUTH_REFUSED = frozenset({4, 5, 134, 135})
"""CONNACK codes: bad username or password, not authorised (MQTT 3.1.1 and 5)."""


class CommandPublisher(Protocol):
    """Where signed commands go; `MqttCommandPublisher` in the hub, a fake in unit tests."""

    async def publish(self, topic: str, payload: bytes, *, expiry_s: int) -> None:
        """Publish at QoS 1 and return once the broker confirmed; else raise `PublishError`."""
        ...


class MqttCommandPublisher:
    """A dedicated aiomqtt connection with reconnect; enter it to start, exit to stop."""

    def __init__(
        self,
        settings: HubSettings,
        *,
        backoff: Backoff | None = None,
        on_published: Callable[[float], None] | None = None,
    ) -> None:
        """`on_published(seconds)` learns how long each command took to its PUBACK (metrics)."""
        cfg = settings.broker
        url = urlsplit(cfg.url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 1883
        self._username, self._password = cfg.username or None, cfg.password or None
        self._v5 = cfg.kind == "external"  # the embedded amqtt broker speaks 3.1.1 only
        self._timeout = settings.control.publish_timeout_s
        self._backoff = backoff or Backoff(0.2, 5.0)
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.refused: str | None = None
        """Why the broker refused the hub's login, once it has (publishing then fails)."""
        self._on_published = on_published

    @property
    def connected(self) -> bool:
        """Whether the connection is up now."""
        return self._connected.is_set() and self.refused is None

    async def __aenter__(self) -> Self:
        """Start connecting in the background (the API serves meanwhile)."""
        self._task = asyncio.create_task(self._run(), name="command-publisher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Disconnect and stop reconnecting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def publish(self, topic: str, payload: bytes, *, expiry_s: int) -> None:
        """QoS 1, with message expiry on MQTT 5; `PublishError` past the publish timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                client = await self._wait_connected()
                await client.publish(
                    topic,
                    payload,
                    qos=1,
                    properties=self._expiry(expiry_s),
                    timeout=max(0.001, deadline - loop.time()),
                )
            if self._on_published is not None:
                self._on_published(self._timeout - (deadline - loop.time()))
        except TimeoutError:
            why = "no PUBACK from the broker" if self.connected else "no connection to the broker"
            raise PublishError(f"{why} within {self._timeout:g} s") from None
        except aiomqtt.MqttError as exc:
            raise PublishError(f"broker error: {exc}") from exc

    async def publish_retained(self, topic: str, payload: bytes) -> None:
        """QoS 1, retained (no expiry); an empty payload clears the retained message."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                client = await self._wait_connected()
                await client.publish(
                    topic, payload, qos=1, retain=True, timeout=max(0.001, deadline - loop.time())
                )
        except TimeoutError:
            why = "no PUBACK from the broker" if self.connected else "no connection to the broker"
            raise PublishError(f"{why} within {self._timeout:g} s") from None
        except aiomqtt.MqttError as exc:
            raise PublishError(f"broker error: {exc}") from exc

    async def _wait_connected(self) -> aiomqtt.Client:
        while True:
            if self.refused is not None:
                raise PublishError(self.refused)
            client = self._client
            if client is not None and self._connected.is_set():
                return client
            await self._connected.wait()

    def _expiry(self, expiry_s: int) -> Properties | None:
        if not self._v5:
            return None  # 3.1.1 has none; the agent refuses expired commands itself
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.MessageExpiryInterval = max(1, expiry_s)
        return props

    def _new_client(self) -> aiomqtt.Client:
        name = f"outpost-commands-{socket.gethostname()[:20]}-{os.getpid()}-{secrets.token_hex(3)}"
        version = aiomqtt.ProtocolVersion.V5 if self._v5 else aiomqtt.ProtocolVersion.V311
        return aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=name,
            protocol=version,
            timeout=self._timeout,
            keepalive=15,
            max_inflight_messages=1000,
            socket_options=NO_DELAY,
        )

    async def _run(self) -> None:
        while self.refused is None:
            try:
                async with self._new_client() as client:
                    await self._session(client)
            except aiomqtt.MqttCodeError as exc:
                if _code(exc) in _AUTH_REFUSED:
                    self.refused = (
                        f"the broker at {self._host}:{self._port} refused the hub's login "
                        f"{self._username!r} ({exc}); check [broker] username and password"
                    )
                else:
                    logger.warning("command publisher: link down: %s", exc)
            except (aiomqtt.MqttError, OSError) as exc:
                logger.warning("command publisher: link down: %s: %s", type(exc).__name__, exc)
            finally:
                self._client = None
                self._connected.clear()
            if self.refused is None:
                await asyncio.sleep(self._backoff.next())
        logger.error("command publisher stopped: %s", self.refused)
        self._connected.set()  # wake waiting publishes: they report the refusal

    async def _session(self, client: aiomqtt.Client) -> None:
        self._client = client
        self._connected.set()
        self._backoff.reset()
        logger.info("command publisher connected to %s:%s", self._host, self._port)
        async for _ in client.messages:  # subscribed to nothing: returns when the link drops
            pass


def _code(exc: aiomqtt.MqttCodeError) -> int | None:
    rc = exc.rc
    if rc is None:
        return None
    return rc if isinstance(rc, int) else int(rc.value)
