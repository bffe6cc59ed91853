"""The ingest loop: a manual-acknowledge MQTT 5 subscriber on a shared subscription.

A message is acknowledged (PUBACK) only after the bus has it durably (Kafka
`acks=all`; in embedded mode the in-process bus, whose durability is the
database commit downstream plus the agents' own re-sends). While the bus is
down, nothing is acknowledged: the broker stops sending once the receive window
is full, agents keep buffering, and the batch is retried with backoff.

paho-mqtt runs its network loop in its own thread; messages cross to the event
loop through `call_soon_threadsafe`, and acknowledgements go back through
`Client.ack`, which paho allows from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.bus.base import Bus, BusError
from hub.errors import HubError
from hub.ingest.limits import RateLimiter
from hub.ingest.route import Ignored, Rejected, Routed, deadletter, route
from hub.settings import HubSettings
from protocol import UPLINK_FILTER

logger = logging.getLogger(__name__)

THROTTLE_LOG_S = 60.0
"""A device over its frame rate is logged at most this often."""
RECEIVE_MAXIMUM = 2000
"""QoS 1 messages the broker may have in flight to one ingest process (MQTT 5 flow control)."""


class BrokerRefused(HubError):
    """The broker refused the hub's own login: fix `[broker] username/password`."""


@dataclass
class IngestCounters:
    """What ingest has done, for metrics and tests."""

    received: int = 0
    routed: int = 0
    deadlettered: int = 0
    ignored: int = 0
    bus_retries: int = 0
    throttled: int = 0
    """Inference frames refused for going over their device's rate (not dead-lettered)."""
    reasons: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        """Count a dead-lettered message under the first words of its reason."""
        self.deadlettered += 1
        head = reason.split(":", 1)[0]
        self.reasons[head] = self.reasons.get(head, 0) + 1


def subscription(settings: HubSettings) -> str:
    """What ingest subscribes to.

    On an external broker, the shared subscription that spreads the fleet over
    every ingest process; the embedded broker has exactly one ingest (the hub
    process itself) and no shared subscriptions, so the plain filter.
    """
    if settings.broker.kind == "embedded":
        return UPLINK_FILTER
    return f"$share/{settings.ingest.shared_group}/{UPLINK_FILTER}"


class Ingest:
    """One ingest process's worth of work."""

    def __init__(
        self,
        settings: HubSettings,
        bus: Bus,
        *,
        client_id: str | None = None,
    ) -> None:
        self._settings, self._bus = settings, bus
        self._client_id = client_id or f"outpost-ingest-{secrets.token_hex(4)}"
        self.counters = IngestCounters()
        cfg = settings.ingest
        self._frames = RateLimiter(
            rate_per_s=cfg.inference_frames_per_s, burst=cfg.inference_frames_burst
        )
        self._throttle_logged: dict[str, float] = {}
        self._queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._refused: str | None = None

    async def connected(self) -> None:
        """Return once the client has connected and subscribed (or been refused)."""
        await self._connected.wait()

    async def run(self) -> None:
        """Ingest until cancelled; raise `BrokerRefused` if the hub's own login is refused."""
        client = self._client(asyncio.get_running_loop())
        url = urlsplit(self._settings.broker.url)
        host, port = url.hostname or "127.0.0.1", url.port or 1883
        if self._settings.broker.kind == "embedded":  # MQTT 3.1.1: clean session set at creation
            client.connect_async(host, port, keepalive=30)
        else:
            # A clean session that ends with the connection: an ingest process that goes
            # away must not leave a queue behind in the shared group, where the broker would
            # keep parking its share of the fleet's messages. What it held unacknowledged is
            # re-delivered to the group or re-sent by the agents (no watermark, no delete).
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            client.connect_async(host, port, keepalive=30, clean_start=True, properties=props)
        client.loop_start()
        try:
            while True:
                batch = await self._next_batch()
                await self._forward(batch)
                for message in batch:
                    client.ack(message.mid, message.qos)
        finally:
            client.disconnect()
            client.loop_stop()

    def _client(self, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        embedded = self._settings.broker.kind == "embedded"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=mqtt.MQTTv311 if embedded else mqtt.MQTTv5,
            clean_session=True if embedded else None,
            manual_ack=True,
        )
        broker = self._settings.broker
        if broker.username:
            client.username_pw_set(broker.username, broker.password or None)
        client.reconnect_delay_set(min_delay=1, max_delay=10)

        def on_connect(c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
            if getattr(rc, "is_failure", False):
                self._refused = str(rc)
                loop.call_soon_threadsafe(self._connected.set)
                return
            c.subscribe(subscription(self._settings), qos=1)
            loop.call_soon_threadsafe(self._connected.set)

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            loop.call_soon_threadsafe(self._queue.put_nowait, message)

        client.on_connect = on_connect
        client.on_message = on_message
        return client

    async def _next_batch(self) -> list[mqtt.MQTTMessage]:
        batch = [await self._queue.get()]
        if self._refused:
            raise BrokerRefused(f"the broker refused the hub's login: {self._refused}")
        # Top up for at most batch_wait_s. asyncio.timeout, not wait_for: on 3.11 wait_for
        # around queue.get can lose a message that arrives as the timeout fires.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.ingest.batch_wait_s):
                while len(batch) < self._settings.ingest.batch_max:
                    batch.append(await self._queue.get())
        return batch

    def _records(self, batch: list[mqtt.MQTTMessage]) -> list[tuple[str, bytes, bytes]]:
        records = []
        max_bytes = self._settings.ingest.max_payload_bytes
        for message in batch:
            self.counters.received += 1
            payload = bytes(message.payload)
            verdict = route(message.topic, payload, max_bytes=max_bytes)
            if isinstance(verdict, Ignored):
                self.counters.ignored += 1
                continue
            if isinstance(verdict, Rejected):
                self.counters.reject(verdict.reason)
                logger.warning("dead-lettered %s: %s", message.topic[:80], verdict.reason[:200])
                verdict = deadletter(message.topic, payload, verdict)
            elif verdict.inference_frame and not self._frame_allowed(verdict.key.decode()):
                continue
            else:
                self.counters.routed += 1
            assert isinstance(verdict, Routed)  # noqa: S101 - the two branches above
            records.append((verdict.topic, verdict.key, verdict.value))
        return records

    def _frame_allowed(self, device: str) -> bool:
        """Whether `device` is within its inference-frame rate; refusals are counted, and
        logged at most once a minute per device."""
        now = time.monotonic()
        if self._frames.allow(device, now=now):
            return True
        self.counters.throttled += 1
        if now - self._throttle_logged.get(device, -THROTTLE_LOG_S) >= THROTTLE_LOG_S:
            self._throttle_logged[device] = now
            cfg = self._settings.ingest
            logger.warning(
                "refusing inference frames of %s: over %g frames/s (burst %d); "
                "raise [ingest] inference_frames_per_s or slow the camera down",
                device[:80], cfg.inference_frames_per_s, cfg.inference_frames_burst,
            )  # fmt: skip
        return False

    async def _forward(self, batch: list[mqtt.MQTTMessage]) -> None:
        """Produce the batch; retry with backoff while the bus is down (nothing is acked)."""
        records = self._records(batch)
        delay = 0.2
        while records:
            try:
                await self._bus.produce_many(records)
            except BusError as exc:
                self.counters.bus_retries += 1
                logger.warning(
                    "bus unavailable, holding %d messages unacknowledged: %s",
                    len(records),
                    str(exc)[:200],
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                return
