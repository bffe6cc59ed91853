"""The ingest loop: manual-acknowledge MQTT subscribers that forward the fleet to the bus.

A message is acknowledged (PUBACK) only after the bus has it durably (Kafka
`acks=all`; in embedded mode the in-process bus, whose durability is the
database commit downstream plus the agents' own re-sends). While the bus is
down, nothing is acknowledged: the broker stops sending once the receive window
is full, agents keep buffering, and the batch is retried with backoff.

How the fleet reaches the ingest processes (`[ingest] routing`, external broker):

* `sessions` (default): one persistent MQTT 5 session per uplink channel
  (`<shared_group>-telemetry`, ...), each subscribed to that channel of every
  device. The bus shares the sessions among the ingest processes
  (`Bus.hold_slots`: a Kafka consumer group), so each is served by one process
  at a time, which forwards in arrival order: a device's records keep their order
  in each Kafka topic. When a process dies, the broker keeps its sessions' queues
  and unacknowledged messages; the process that takes a session over resumes it
  under the same client id and gets them first, in order.
* `shared`: an MQTT 5 shared subscription; the broker deals each message to any
  process. Every channel spreads over every process, and a device's order across
  processes is lost.

The embedded broker has exactly one ingest (the hub process itself): one plain
subscription.

paho-mqtt runs each session's network loop in its own thread; messages cross to
the event loop through `call_soon_threadsafe`, and acknowledgements go back through
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

from hub.bus.base import Bus, BusConfigError, BusError
from hub.errors import HubError
from hub.ingest.limits import RateLimiter
from hub.ingest.route import Ignored, Rejected, Routed, deadletter, route
from hub.settings import HubSettings
from protocol import UPLINK_CHANNELS, UPLINK_FILTER, channel_filter
from protocol.backoff import Backoff

logger = logging.getLogger(__name__)

THROTTLE_LOG_S = 60.0
"""A device over its frame rate is logged at most this often."""
RECEIVE_MAXIMUM = 2000
"""QoS 1 messages the broker may have in flight to one session (MQTT 5 flow control)."""
SESSIONS_TOPIC = "ingest.sessions"
"""The bus name under which ingest processes share the per-channel sessions."""
SESSION_TAKEN_OVER = 142
"""MQTT 5 DISCONNECT reason: another connection resumed this client id's session."""


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
    sessions: int = 0
    """MQTT sessions this process serves now."""
    takeovers: int = 0
    """Sessions this process lost because another connection resumed them."""
    reasons: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        """Count a dead-lettered message under the first words of its reason."""
        self.deadlettered += 1
        head = reason.split(":", 1)[0]
        self.reasons[head] = self.reasons.get(head, 0) + 1


@dataclass(frozen=True)
class SessionSpec:
    """One MQTT session ingest may serve: its client id, what it subscribes to, and
    whether the broker keeps it (and its queue) when the connection goes."""

    name: str
    client_id: str
    subscription: str
    persistent: bool


def session_specs(settings: HubSettings, client_id: str) -> list[SessionSpec]:
    """The sessions of the fleet's ingest (see the module docstring).

    Example:
        >>> from hub.settings import HubSettings
        >>> external = {"kind": "external", "url": "mqtt://broker:1883"}
        >>> specs = session_specs(HubSettings(broker=external), "x")
        >>> [s.client_id for s in specs][:2], specs[0].subscription
        (['outpost-ingest-acks', 'outpost-ingest-detections'], 'outpost/v1/+/acks')
    """
    group = settings.ingest.shared_group
    if settings.broker.kind == "embedded":
        return [SessionSpec("all", client_id, UPLINK_FILTER, persistent=False)]
    if settings.ingest.routing == "shared":
        return [SessionSpec("all", client_id, f"$share/{group}/{UPLINK_FILTER}", persistent=False)]
    return [
        SessionSpec(channel.value, f"{group}-{channel.value}", channel_filter(channel), True)
        for channel in sorted(UPLINK_CHANNELS, key=lambda c: c.value)
    ]


class _Session:
    """A connected (or connecting) session this process serves."""

    def __init__(self, spec: SessionSpec, client: mqtt.Client) -> None:
        self.spec, self.client = spec, client
        self.held = True
        self.subscribed = False


Delivery = tuple[_Session, mqtt.MQTTMessage]


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
        self.specs = session_specs(settings, client_id or f"outpost-ingest-{secrets.token_hex(4)}")
        self.counters = IngestCounters()
        cfg = settings.ingest
        self._frames = RateLimiter(
            rate_per_s=cfg.inference_frames_per_s, burst=cfg.inference_frames_burst
        )
        self._throttle_logged: dict[str, float] = {}
        self._queue: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._sessions: dict[int, _Session] = {}
        self._lock = asyncio.Lock()
        """Held while a batch is forwarded and acknowledged, and while sessions are let go."""
        self._ready = asyncio.Event()
        self._fatal: HubError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def connected(self) -> None:
        """Return once this process serves at least one session and every session it
        serves has subscribed (or the broker refused the hub's login)."""
        await self._ready.wait()

    @property
    def serving(self) -> list[str]:
        """Names of the sessions this process serves now."""
        return sorted(s.spec.name for s in self._sessions.values() if s.held)

    async def run(self) -> None:
        """Ingest until cancelled; raise `BrokerRefused` if the hub's own login is refused,
        `BusConfigError` if the bus cannot share the sessions."""
        self._loop = asyncio.get_running_loop()
        holder = asyncio.create_task(self._hold(), name="ingest-sessions")
        holder.add_done_callback(self._holder_ended)
        try:
            while True:
                batch = await self._next_batch()
                async with self._lock:
                    live = [(s, m) for s, m in batch if s.held]
                    await self._forward([m for _, m in live])
                    for session, message in live:
                        session.client.ack(message.mid, message.qos)
        finally:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder

    def _holder_ended(self, holder: asyncio.Task[None]) -> None:
        """A holder that dies of a bug must not leave ingest waiting for sessions forever."""
        if holder.cancelled() or holder.exception() is None:
            return
        error = holder.exception()
        self._fail(HubError(f"ingest: sharing the sessions failed: {error!r}"))

    async def _hold(self) -> None:
        """Serve the sessions this process is given, until cancelled."""
        if not self.specs[0].persistent:  # embedded or shared: this process's own session
            every = frozenset(range(len(self.specs)))
            await self.claimed(every)
            try:
                await asyncio.Event().wait()
            finally:
                await self.released(every)
        backoff = Backoff(1.0, 10.0)
        while True:
            try:
                await self._bus.hold_slots(
                    SESSIONS_TOPIC,
                    slots=len(self.specs),
                    group=self._settings.ingest.shared_group,
                    listener=self,
                )
            except BusConfigError as exc:
                self._fail(exc)
                return
            except BusError as exc:
                delay = backoff.next()
                logger.warning("ingest: cannot share sessions, again in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)

    async def claimed(self, slots: frozenset[int]) -> None:
        """Connect the sessions `slots` (the bus gave them to this process)."""
        assert self._loop is not None  # noqa: S101 - set by run, which holds the sessions
        for slot in sorted(slots):
            spec = self.specs[slot]
            session = _Session(spec, self._client(spec, self._loop))
            self._sessions[slot] = session
            self._connect(session)
            if spec.persistent:
                logger.info("ingest: serving session %s", spec.client_id)
        self._update_ready()

    async def released(self, slots: frozenset[int]) -> None:
        """Let sessions `slots` go: after the batch in flight is forwarded and acknowledged,
        disconnect them; the broker keeps what they had not acknowledged for the next."""
        async with self._lock:
            for slot in sorted(slots):
                session = self._sessions.pop(slot, None)
                if session is not None:
                    await self._stop(session)
        self._update_ready()

    async def _stop(self, session: _Session) -> None:
        session.held = False
        session.client.disconnect()
        await asyncio.to_thread(session.client.loop_stop)
        if session.spec.persistent:
            logger.info("ingest: let session %s go", session.spec.client_id)

    def _connect(self, session: _Session) -> None:
        url = urlsplit(self._settings.broker.url)
        host, port = url.hostname or "127.0.0.1", url.port or 1883
        spec, client = session.spec, session.client
        if self._settings.broker.kind == "embedded":  # MQTT 3.1.1: clean session set at creation
            client.connect_async(host, port, keepalive=30)
        else:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            if spec.persistent:
                # The broker keeps the session and its queue while no process holds it.
                props.SessionExpiryInterval = int(self._settings.ingest.session_expiry_s)
            else:
                # A shared-group member that goes away must not leave a queue behind, where
                # the broker would keep parking its share of the fleet's messages. What it
                # held unacknowledged is re-delivered to the group or re-sent by the agents.
                props.SessionExpiryInterval = 0
            clean = not spec.persistent
            client.connect_async(host, port, keepalive=30, clean_start=clean, properties=props)
        client.loop_start()

    def _client(self, spec: SessionSpec, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        embedded = self._settings.broker.kind == "embedded"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=spec.client_id,
            protocol=mqtt.MQTTv311 if embedded else mqtt.MQTTv5,
            clean_session=True if embedded else None,
            manual_ack=True,
        )
        broker = self._settings.broker
        if broker.username:
            client.username_pw_set(broker.username, broker.password or None)
        # Back within a second or two, however long the broker was away: after a restart
        # that lost the sessions (no persistence), nothing is subscribed until ingest is
        # back, and the broker drops what devices publish meanwhile.
        # (A member that lost its slot without hearing yet, its event loop stalled past the
        # bus's session timeout, may take a session back from its new holder this way
        # until its next heartbeat, 2 s, tells it: see docs/platform-engineer.md.)
        client.reconnect_delay_set(min_delay=1, max_delay=2)

        def on_connect(c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
            if getattr(rc, "is_failure", False):
                loop.call_soon_threadsafe(self._fail, BrokerRefused(
                    f"the broker refused the hub's login: {rc}"
                ))  # fmt: skip
                return
            c.subscribe(spec.subscription, qos=1)

        def on_subscribe(_c: mqtt.Client, _u: object, _mid: int, _rc: object, _p: object) -> None:
            loop.call_soon_threadsafe(self._subscribed, spec)

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            loop.call_soon_threadsafe(self._deliver, spec, message)

        def on_disconnect(_c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
            if getattr(rc, "value", rc) == SESSION_TAKEN_OVER:
                loop.call_soon_threadsafe(self._taken_over, spec)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.on_disconnect = on_disconnect
        return client

    def _current(self, spec: SessionSpec) -> _Session | None:
        for session in self._sessions.values():
            if session.spec is spec and session.held:
                return session
        return None

    def _deliver(self, spec: SessionSpec, message: mqtt.MQTTMessage) -> None:
        session = self._current(spec)
        if session is not None:  # else let go: the broker re-delivers it to the next holder
            self._queue.put_nowait((session, message))

    def _subscribed(self, spec: SessionSpec) -> None:
        session = self._current(spec)
        if session is not None:
            session.subscribed = True
            logger.info("ingest: session %s subscribed to %s", spec.client_id, spec.subscription)
            self._update_ready()

    def _taken_over(self, spec: SessionSpec) -> None:
        """Another connection resumed this session (a process that still believed it held
        it): stop reconnecting, or the two would take it from each other forever."""
        session = self._current(spec)
        if session is None:
            return
        self.counters.takeovers += 1
        logger.warning(
            "ingest: session %s was taken over by another connection; no longer serving it",
            spec.client_id,
        )
        task = asyncio.create_task(self._stop(session))
        task.add_done_callback(lambda _t: self._update_ready())

    def _fail(self, error: HubError) -> None:
        """End `run` with `error` (a refused login, a bus that cannot share sessions)."""
        self._fatal = error
        self._ready.set()
        self._queue.put_nowait(None)

    def _update_ready(self) -> None:
        held = [s for s in self._sessions.values() if s.held]
        self.counters.sessions = len(held)
        if held and all(s.subscribed for s in held):
            self._ready.set()
        elif self._fatal is None:
            self._ready.clear()

    async def _next_batch(self) -> list[Delivery]:
        first = await self._queue.get()
        if first is None or self._fatal is not None:
            assert self._fatal is not None  # noqa: S101 - None is only queued by _fail
            raise self._fatal
        batch = [first]
        # Top up for at most batch_wait_s. asyncio.timeout, not wait_for: on 3.11 wait_for
        # around queue.get can lose a message that arrives as the timeout fires.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.ingest.batch_wait_s):
                while len(batch) < self._settings.ingest.batch_max:
                    item = await self._queue.get()
                    if item is None:  # the error is raised by the next call
                        self._queue.put_nowait(None)
                        break
                    batch.append(item)
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
