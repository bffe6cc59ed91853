"""Fan-out of live messages to WebSocket subscribers: encoded once, never waiting on one.

`Fanout.publish` runs synchronously: it hands the same JSON text to the bounded
queue of every subscriber whose scope and filter match. A subscriber whose queue
is full is cut off (`Subscriber.next` raises `TooSlow`, the route closes it with
code 4008), so one slow dashboard never delays the others.

Example:
    >>> import asyncio
    >>> fanout = Fanout(queue_limit=10)
    >>> sub = fanout.subscribe(sites=frozenset({"plant-a"}))
    >>> message = live_message("state", "amr-7", "plant-a", "2026-01-01T00:00:00Z", {})
    >>> fanout.publish(message), sub.next() == message.text
    (1, True)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from hub.errors import HubError

LiveType = Literal["state", "telemetry", "detections", "ack", "alert"]
LIVE_TYPES: Final[frozenset[str]] = frozenset({"state", "telemetry", "detections", "ack", "alert"})
DEFAULT_QUEUE_LIMIT = 1000


class TooSlow(HubError):
    """A subscriber fell `limit` messages behind and was cut off."""


@dataclass(frozen=True, slots=True)
class LiveMessage:
    """One message as every subscriber receives it: its routing fields and its JSON text."""

    type: str
    device: str
    site: str | None
    text: str


def live_message(type_: LiveType, device: str, site: str | None, ts: Any, data: Any) -> LiveMessage:
    """`{"type", "device", "site", "ts", "data"}`, encoded once for every subscriber."""
    body = {"type": type_, "device": device, "site": site, "ts": ts, "data": data}
    return LiveMessage(type_, device, site, orjson.dumps(body).decode())


def control_text(type_: str, **fields: Any) -> str:
    """A message of the socket itself (`hello`, `subscribed`, `error`)."""
    return orjson.dumps({"type": type_, **fields}).decode()


class Subscriber:
    """One socket's bounded queue, its site scope and its optional device / type filter."""

    def __init__(self, sites: frozenset[str] | None, limit: int) -> None:
        """`sites` None sees every site (and devices of no known site)."""
        self.scope = sites  # the user's; `sites` may narrow it, never widen it
        self.sites = sites
        self.devices: frozenset[str] | None = None
        self.types: frozenset[str] | None = None
        self.limit = limit
        self.cut_off: str | None = None
        self._queue: deque[str] = deque()
        self._ready = asyncio.Event()

    def wants(self, message: LiveMessage) -> bool:
        """Whether `message` is within the scope and the filter."""
        return (
            (self.sites is None or message.site in self.sites)
            and (self.types is None or message.type in self.types)
            and (self.devices is None or message.device in self.devices)
        )

    def offer(self, text: str) -> bool:
        """Queue `text` without waiting; a full queue cuts the subscriber off (False)."""
        if self.cut_off is not None:
            return False
        if len(self._queue) >= self.limit:
            self.cut_off = f"too slow: {len(self._queue)} messages behind"
            self._queue.clear()
            self._ready.set()
            return False
        self._queue.append(text)
        self._ready.set()
        return True

    def next(self) -> str | None:
        """The oldest queued text, or None when the queue is empty; `TooSlow` once cut off."""
        if self.cut_off is not None:
            raise TooSlow(self.cut_off)
        if self._queue:
            return self._queue.popleft()
        self._ready.clear()
        return None

    async def wait(self) -> None:
        """Return once something is queued (or the subscriber was cut off)."""
        await self._ready.wait()

    def behind(self) -> int:
        """How many messages wait in the queue."""
        return len(self._queue)


class Fanout:
    """The subscribers of one API process (see the module docs)."""

    def __init__(self, *, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        """No subscribers yet; each gets a queue of `queue_limit` messages."""
        if queue_limit < 1:
            raise ValueError("queue_limit must be at least 1")
        self.queue_limit = queue_limit
        self.published = 0
        self.cut_off = 0
        self._subscribers: dict[Subscriber, None] = {}

    def subscribe(self, *, sites: frozenset[str] | None) -> Subscriber:
        """A new subscriber limited to `sites` (None: every site)."""
        subscriber = Subscriber(sites, self.queue_limit)
        self._subscribers[subscriber] = None
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop queueing for `subscriber` (idempotent)."""
        self._subscribers.pop(subscriber, None)

    def subscribers(self) -> int:
        """How many subscribers are connected."""
        return len(self._subscribers)

    def publish(self, message: LiveMessage) -> int:
        """Queue `message` for every matching subscriber; return how many took it."""
        self.published += 1
        took = 0
        dropped: list[Subscriber] = []
        for subscriber in self._subscribers:
            if subscriber.wants(message):
                if subscriber.offer(message.text):
                    took += 1
                else:
                    dropped.append(subscriber)
        self._drop(dropped)
        return took

    def publish_many(self, messages: Iterable[LiveMessage]) -> None:
        """`publish` each message in order."""
        for message in messages:
            self.publish(message)

    def _drop(self, dropped: list[Subscriber]) -> None:
        for subscriber in dropped:
            self.unsubscribe(subscriber)
            self.cut_off += 1
