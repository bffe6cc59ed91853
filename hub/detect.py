"""Synchronous detection through the hub: requests routed to gateway agents over the bus.

The hub runs no model. `POST /api/v1/detect` hands the caller's image to whichever
gateway agent (`[gateway]` on an agent) takes it next from `inference.requests` (they
share it as one Kafka consumer group) and waits for its answer on `inference.replies`,
where each API process reads every reply from the end and picks out its own by id.
The answer is what the gateway's own `POST /v1/detect` would have said: status and body.

Example:
    router = DetectRouter(bus, timeout_s=5)
    task = asyncio.create_task(router.run())
    reply = await router.detect(jpeg_bytes, "image/jpeg")   # DetectReply, or DetectTimeout
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta

from hub.bus.base import Bus, BusError
from hub.bus.topics import DETECT_REPLIES, DETECT_REQUESTS
from hub.errors import HubError
from protocol import DecodeError, DetectReply, DetectRequest, decode, encode
from protocol.backoff import Backoff

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0


class DetectTimeout(HubError):
    """No gateway agent answered in time (none runs, or all are busy)."""


class DetectRouter:
    """Sends detect requests and matches the replies to the waiting callers."""

    def __init__(self, bus: Bus, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._bus, self.timeout_s = bus, timeout_s
        self._waiting: dict[str, asyncio.Future[DetectReply]] = {}
        self.ready = asyncio.Event()
        """Set once replies are being read: a request sent after it cannot miss its reply."""
        self.late = 0
        """Replies that came for nobody (their caller had given up)."""

    async def run(self) -> None:
        """Read replies until cancelled; a bus error is retried with backoff."""
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                async with self._bus.consumer(
                    [DETECT_REPLIES], group="detect-replies", start="latest"
                ) as replies:
                    self.ready.set()
                    backoff.reset()
                    while True:
                        for record in await replies.poll(max_records=100, timeout_s=1.0):
                            self._deliver(record.value)
            except BusError as exc:
                self.ready.clear()
                if not exc.retriable:
                    return
                delay = backoff.next()
                logger.warning("detect replies: %s; again in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    def _deliver(self, value: bytes) -> None:
        try:
            reply = decode(value, DetectReply)
        except DecodeError as exc:
            logger.warning("ignoring a malformed detect reply: %s", str(exc)[:200])
            return
        waiter = self._waiting.pop(reply.id, None)
        if waiter is None or waiter.done():
            self.late += 1
            return
        waiter.set_result(reply)

    async def detect(self, image: bytes, content_type: str) -> DetectReply:
        """The first gateway's answer for `image`; `DetectTimeout` after `timeout_s`."""
        deadline = datetime.now(UTC) + timedelta(seconds=self.timeout_s)
        request = DetectRequest(
            id=secrets.token_hex(12), content_type=content_type, image=image, deadline=deadline
        )
        waiter: asyncio.Future[DetectReply] = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = waiter
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.ready.wait()
                await self._bus.produce(
                    DETECT_REQUESTS, key=request.id.encode(), value=encode(request)
                )
                return await waiter
        except TimeoutError:
            raise DetectTimeout(
                f"no gateway agent answered within {self.timeout_s:g} s: run an agent with "
                "[gateway] enabled against this hub's Kafka (see docs/field-technician.md)"
            ) from None
        finally:
            self._waiting.pop(request.id, None)
