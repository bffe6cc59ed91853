"""The MQTT uplink: forwards the outbox to the hub and applies the hub's watermarks.

Delivery contract (DESIGN.md "Delivery"): every row is published at QoS 1 with
its `seq`; rows are deleted only when the hub's `ingested` watermark covers them;
rows published but not covered are re-sent after `resend_timeout_s` without any
watermark progress, in rounds of at most `resend_window` rows, lowest seq first (the
gap the watermark waits on); with `resend_timeout_max_s` set, backing off (doubling up
to it) while re-sends bring none, so that a hub that is slow rather than lossy is not
buried under copies of its own backlog (`ResendTimer`). A broker's PUBACK alone
proves nothing, so it is only used for flow control.

Live data goes first; the backlog that piled up while the link was down drains
behind it at `drain_rate` messages per second, so the dashboard stays current
while hours of history catch up. Safety rows (events, acks, state) never wait.

The connection is an MQTT 5 persistent session (`clean_start` off, session
expiry) with the device's retained `state` as its last will (`online: false`).
A refused login is fatal and reported, never retried in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config import AgentSettings
from edge_agent.errors import AgentError
from edge_agent.outbox import Outbox
from protocol import (
    Channel,
    DecodeError,
    DeviceState,
    Envelope,
    Watermark,
    decode,
    encode,
    topic,
)
from protocol.backoff import Backoff
from protocol.transport import NO_DELAY

logger = logging.getLogger(__name__)

WILL_STREAM = "will"
"""Stream of last-will messages: their `seq` is the connection time in ms, never reused."""

# MQTT 5 CONNACK reason codes (and the 3.1.1 return codes) that mean "your login is wrong".
_AUTH_REFUSED = {4, 5, 134, 135, 138}


class AuthenticationRefused(AgentError):
    """The broker refused the device's credentials: retrying cannot help."""


class LinkState(StrEnum):
    """The uplink's connection state, as `edge-agent status` shows it."""

    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"
    REFUSED = "refused"


@dataclass
class LinkStatus:
    """Counters and state of the uplink, read by status, metrics and the safety watchdog."""

    state: LinkState = LinkState.CONNECTING
    since: float = field(default_factory=time.time)
    connects: int = 0
    last_error: str = ""
    published: int = 0
    resent: int = 0
    watermark: int = 0
    last_downlink: float = 0.0
    last_up: float = field(default_factory=time.time)
    """When the link was last up (now while it is up): what the safety watchdog measures."""

    def up_at(self, now: float) -> float:
        """`now` while the link is up, else when it went down."""
        return now if self.state is LinkState.UP else self.last_up

    def change(self, state: LinkState, *, error: str = "", now: float) -> None:
        """Record a state change (logged once)."""
        if state is not self.state:
            logger.info("uplink %s -> %s %s", self.state.value, state.value, error[:200])
            if self.state is LinkState.UP:
                self.last_up = now
            self.state, self.since = state, now
        if error:
            self.last_error = error[:500]


class TokenBucket:
    """Allows `rate` items per second on average, in bursts of at most `burst`."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._at = burst, clock()

    def available(self) -> int:
        """Whole tokens available now."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return int(self._tokens)

    def take(self, count: int) -> None:
        """Spend `count` tokens."""
        self._tokens -= count


DownlinkHandler = Callable[[Channel, bytes], Awaitable[None]]


class Uplink:
    """Connects, publishes the outbox, applies watermarks, hands other downlink on.

    Example:
        uplink = Uplink(settings, outbox, state=lambda: DeviceState(online=True))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(uplink.run(), name="uplink")
            ...
            uplink.notify()   # after putting rows, to publish them without waiting a poll
    """

    def __init__(
        self,
        settings: AgentSettings,
        outbox: Outbox,
        *,
        state: Callable[[], DeviceState],
        on_downlink: DownlinkHandler | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings, self._outbox, self._state, self._clock = settings, outbox, state, clock
        self._on_downlink = on_downlink
        self._device = settings.device.id
        self._wake = asyncio.Event()
        self.status = LinkStatus(since=clock())
        cfg = settings.uplink
        self._bucket = TokenBucket(cfg.drain_rate, max(1.0, cfg.drain_rate * 0.5), clock)
        self._connected_at = clock()
        longest = cfg.resend_timeout_max_s or cfg.resend_timeout_s
        self._resend = ResendTimer(cfg.resend_timeout_s, longest, clock(), window=cfg.resend_window)

    def notify(self) -> None:
        """New rows are in the outbox: publish now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Stay connected until cancelled; raise `AuthenticationRefused` when the login is wrong."""
        cfg = self._settings.uplink
        backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        while True:
            try:
                async with self._connect() as client:
                    backoff.reset()
                    await self._session(client)
            except aiomqtt.MqttCodeError as exc:
                if _reason_code(exc) in _AUTH_REFUSED:
                    self.status.change(LinkState.REFUSED, error=str(exc), now=self._clock())
                    raise AuthenticationRefused(
                        f"authentication refused by the broker at {self._settings.mqtt.url} "
                        f"for user {self._settings.mqtt.username!r} ({exc}); check the MQTT "
                        "credentials in the agent config or re-enroll the device"
                    ) from exc
                self._link_down(exc)
            except (aiomqtt.MqttError, OSError, _LinkLost) as exc:
                _reraise_cancellation()
                self._link_down(exc)
            await asyncio.sleep(backoff.next())

    def _link_down(self, exc: BaseException) -> None:
        self.status.change(LinkState.DOWN, error=f"{type(exc).__name__}: {exc}", now=self._clock())

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[aiomqtt.Client]:
        mqtt_cfg = self._settings.mqtt
        url = urlsplit(mqtt_cfg.url)
        self.status.change(LinkState.CONNECTING, now=self._clock())
        connected_at = self._clock()
        session: dict[str, Any]
        if mqtt_cfg.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = mqtt_cfg.session_expiry_s
            session = {
                "protocol": aiomqtt.ProtocolVersion.V5,
                "clean_start": False,
                "properties": props,
            }
        else:  # 3.1.1 has no session expiry: the broker keeps the session until it restarts
            session = {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
        client = aiomqtt.Client(
            url.hostname or "127.0.0.1",
            url.port or (8883 if url.scheme == "mqtts" else 1883),
            username=mqtt_cfg.username or None,
            password=mqtt_cfg.password or None,
            identifier=f"agent-{self._device}",
            **session,
            keepalive=mqtt_cfg.keepalive_s,
            timeout=mqtt_cfg.connect_timeout_s,
            max_inflight_messages=self._settings.uplink.max_inflight,
            will=aiomqtt.Will(
                topic(self._device, Channel.STATE), self._will(connected_at), qos=1, retain=True
            ),
            tls_params=mqtt_cfg.tls(),
            socket_options=NO_DELAY,
        )
        # Many publishes are in flight by design (flow control is max_inflight); don't warn.
        client.pending_calls_threshold = self._settings.uplink.batch_messages + 1
        async with client:
            self._connected_at = connected_at
            self._resend.progress(connected_at)
            self.status.connects += 1
            yield client

    def _will(self, connected_at: float) -> bytes:
        """The retained `online: false` state the broker publishes if we vanish."""
        return encode(
            Envelope(
                device=self._device,
                stream=WILL_STREAM,
                seq=int(connected_at * 1000),
                ts=datetime.fromtimestamp(connected_at, UTC),
                kind=Channel.STATE,
                body=DeviceState(online=False),
            )
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        for channel in (Channel.INGESTED, Channel.CMD, Channel.MODEL):
            await client.subscribe(topic(self._device, channel), qos=1)
        # "Up" means commands reach us: only once the broker holds our subscriptions.
        self.status.change(LinkState.UP, now=self._clock())
        await self._outbox.put(Channel.STATE, encode(self._state()))
        try:
            await self._serve(client)
        except asyncio.CancelledError:
            await self._say_goodbye(client)
            raise

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Receive and publish until either fails; cancel the other and report the failure.

        A race, not a TaskGroup: on Python 3.11 a failing TaskGroup child can leave
        this task marked as cancelling, which would make a lost link look like a
        shutdown.
        """
        tasks = [
            asyncio.create_task(self._receive(client), name="uplink-receive"),
            asyncio.create_task(self._publish_loop(client), name="uplink-publish"),
        ]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        failure = next((t.exception() for t in done if not t.cancelled() and t.exception()), None)
        raise _LinkLost(f"{type(failure).__name__}: {failure}") from failure

    async def _say_goodbye(self, client: aiomqtt.Client) -> None:
        """On a clean shutdown, publish what the broker would have sent as our last will."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await client.publish(
                topic(self._device, Channel.STATE),
                self._will(self._connected_at),
                qos=1,
                retain=True,
                timeout=1.0,
            )

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.status.last_downlink = self._clock()
            channel = Channel(str(message.topic).rsplit("/", 1)[-1])
            payload = (
                bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
            )
            if channel is Channel.INGESTED:
                await self._apply_watermark(payload)
            elif self._on_downlink is not None:
                await self._on_downlink(channel, payload)

    async def _apply_watermark(self, payload: bytes) -> None:
        try:
            mark = decode(payload, Watermark)
        except DecodeError as exc:
            logger.warning("ignoring malformed watermark: %s", str(exc)[:200])
            return
        if mark.device != self._device:
            return
        deleted = await self._outbox.confirm(mark.stream, mark.seq)
        ours = mark.stream == self._outbox.stream
        if deleted:
            self._resend.progress(self._clock(), mark.seq if ours else None)
        if deleted and ours:
            self.status.watermark = max(self.status.watermark, mark.seq)

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        cfg = self._settings.uplink
        while True:
            now = self._clock()
            resend_before, resend_limit = self._resend.allowance(now)
            batch = await self._outbox.claim(
                limit=cfg.batch_messages,
                live_since=self._connected_at,
                backlog_limit=self._bucket.available(),
                resend_before=resend_before,
                resend_limit=resend_limit,
            )
            if not batch:
                self._wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races the event, and shutdown would then hang on this loop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(cfg.poll_interval_s):
                        await self._wake.wait()
                continue
            self._bucket.take(sum(1 for m in batch if m.backlog))
            await asyncio.gather(*(self._publish(client, m.channel, m.payload) for m in batch))
            self.status.published += len(batch)
            resent = [m.seq for m in batch if not m.first_sent]
            if resent:
                self.status.resent += len(resent)
                self._resend.resent(now, len(resent), top_seq=max(resent))

    async def _publish(self, client: aiomqtt.Client, channel: Channel, payload: bytes) -> None:
        await client.publish(
            topic(self._device, channel),
            payload,
            qos=1,
            retain=channel is Channel.STATE,
            timeout=self._settings.mqtt.connect_timeout_s,
        )


class ResendTimer:
    """Which published rows the hub has not confirmed are published again, and when.

    A hub that is behind but storing (its watermark keeps moving) has lost nothing:
    re-sending its backlog would only add duplicates to the queue it is working through.
    So rows are re-sent only once no watermark has moved for the timeout, in rounds:

    - A round re-sends at most `window` rows, the lowest seqs first. A watermark stalls
      at its first gap, and the hub keeps what it received behind it, so filling the gap
      moves the watermark over all of that at once; copies of the rest would be waste.
      (Growing the window after a round that brought progress was tried: on a hub that
      is only slow, every stall then grew it, and the copies buried the hub again.)
    - Each round that brings no progress doubles the timeout before the next (up to
      `max_s`), as TCP backs off its retransmissions. Progress resets it.
    - A watermark that stops exactly on the highest seq re-sent so far says the hub got
      the copies and nothing after them: the rows after them were lost too (a broker
      restarted before the hub's ingest was back drops a whole stretch), so the next
      round starts at once, as TCP retransmits the next hole on a partial
      acknowledgement. A watermark past the copies means the hub holds the originals
      and is only behind: the next round waits the timeout again.

    Example:
        >>> timer = ResendTimer(30.0, 240.0, now=0.0, window=100)
        >>> timer.allowance(29.0), timer.allowance(31.0)  # (re-send rows sent before, at most)
        ((0.0, 0), (1.0, 100))
        >>> timer.resent(31.0, 60, top_seq=160)  # a round began at 31: 40 rows left in it
        >>> timer.allowance(32.0), timer.timeout_s
        ((1.0, 40), 60.0)
        >>> timer.resent(32.0, 40, top_seq=200); timer.allowance(90.0), timer.allowance(91.5)
        ((0.0, 0), (31.5, 100))
        >>> timer.progress(100.0, watermark=250); timer.timeout_s, timer.allowance(101.0)
        (30.0, (0.0, 0))
        >>> timer.resent(131.0, 100, top_seq=400); timer.progress(132.0, watermark=400)
        >>> timer.allowance(132.0)  # the hub has the copies and nothing after them
        (102.0, 100)
    """

    def __init__(self, base_s: float, max_s: float, now: float, *, window: int = 200) -> None:
        self.base_s, self.max_s = base_s, max(base_s, max_s)
        self.window = max(1, window)
        self.timeout_s = base_s
        self._due_at = now + base_s
        self._before = 0.0
        """The round re-sends rows last published before this: out for a whole timeout."""
        self._left = 0
        """Rows the current round may still re-send; progress ends the round."""
        self._top_seq: int | None = None
        """The highest seq the current round has re-sent."""

    def progress(self, now: float, watermark: int | None = None) -> None:
        """A watermark moved to `watermark` (or the link came up, None): back to the base
        timeout, or a round at once when it stopped on the last copy re-sent."""
        partial = watermark is not None and watermark == self._top_seq
        if watermark is None or self._top_seq is None or watermark >= self._top_seq:
            self._top_seq = None  # else the hub is still storing the copies
        self._left = 0
        self.timeout_s = self.base_s
        self._due_at = now if partial else now + self.base_s

    def allowance(self, now: float) -> tuple[float, int]:
        """(before, count): re-send at most `count` of the unconfirmed rows last published
        before `before`, lowest seq first; (0.0, 0) while none are due."""
        if self._left > 0 and now < self._due_at:
            return self._before, self._left
        if now >= self._due_at:
            return now - self.timeout_s, self.window
        return 0.0, 0

    def resent(self, now: float, count: int, *, top_seq: int) -> None:
        """`count` rows, the highest `top_seq`, were re-sent at `now`, as `allowance(now)`
        allowed."""
        if now >= self._due_at:  # this begins a round
            self._left = self.window
            self._before = now - self.timeout_s
            self._top_seq = None
            self.timeout_s = min(self.timeout_s * 2.0, self.max_s)
            self._due_at = now + self.timeout_s
        self._left -= count
        self._top_seq = top_seq if self._top_seq is None else max(self._top_seq, top_seq)


def _reraise_cancellation() -> None:
    """A session torn down by our own cancellation must end, not reconnect.

    When the task is cancelled while a publish fails, the TaskGroup reports the
    failure and the cancellation request would be lost (asyncio's uncancel rule).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _reason_code(exc: aiomqtt.MqttCodeError) -> int | None:
    rc = exc.rc
    if rc is None:
        return None
    return rc if isinstance(rc, int) else int(rc.value)


class _LinkLost(Exception):
    """The session ended: the broker went away or stopped answering."""
