"""The live feed: the bus's device traffic and alerts, as live messages, into the fan-out.

Each API process reads every record from now on (`start="latest"`: a private
reader, no shared group), so every dashboard sees everything within its scope
whichever process it is connected to. Live is best effort: records produced while
the feed reconnects are not replayed (the REST queries have them).

| topic                  | live `type`  | `data`                                  |
|------------------------|--------------|-----------------------------------------|
| `device.state`         | `state`      | the agent's state body                  |
| `telemetry.raw`        | `telemetry`  | the batch `{points}`; sampled per metric |
| `inference.detections` | `detections` | the batch of frame results              |
| `command.acks`         | `ack`        | `{cmd_id, status, at, detail, reason}`  |
| `alerts`               | `alert`      | the alert as the API shows it           |

Envelopes were validated by ingest before they reached the bus, so the feed
forwards their body as sent (a record that is not even an object is counted and
skipped). Telemetry is sampled per device and metric: a point goes out when its
metric (with its tags) has not been sent in the last `1 / telemetry_hz` seconds, so
every metric updates at up to `telemetry_hz` whatever else shares its batches; a
batch with no point left is skipped and counted.

Example:
    >>> async def serve(bus, fanout, sites) -> None:  # doctest: +SKIP
    ...     await LiveFeed(bus, fanout, sites).run()  # until cancelled
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from hub.bus.base import Bus, BusError, Record
from hub.bus.topics import ALERTS, COMMAND_ACKS, DETECTIONS, DEVICE_STATE, TELEMETRY_RAW
from hub.errors import HubError
from hub.live.fanout import Fanout, LiveMessage, LiveType, live_message
from hub.storage.errors import StorageError
from protocol.backoff import Backoff

logger = logging.getLogger(__name__)

TYPE_BY_TOPIC: Final[dict[str, LiveType]] = {
    DEVICE_STATE: "state",
    TELEMETRY_RAW: "telemetry",
    DETECTIONS: "detections",
    COMMAND_ACKS: "ack",
    ALERTS: "alert",
}
DEFAULT_TELEMETRY_HZ = 5.0
WILL_STREAM = "will"  # the broker's last will: stamped when the bus got it

SiteLookup = Callable[[Iterable[str]], Awaitable[dict[str, str | None]]]
"""Device ids → their site (None: unknown device), e.g. `SiteCache.sites_of`."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    type: LiveType
    device: str
    site: str | None
    ts: Any
    data: Any


class LiveFeed:
    """Bus → `Fanout` for one API process (see the module docs)."""

    def __init__(
        self,
        bus: Bus,
        fanout: Fanout,
        sites: SiteLookup,
        *,
        telemetry_hz: float = DEFAULT_TELEMETRY_HZ,
        group: str = "live",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """A feed that is not running yet; `run` it."""
        self._bus, self._fanout, self._sites, self._group = bus, fanout, sites, group
        self._interval = 1.0 / telemetry_hz if telemetry_hz > 0 else 0.0
        self._clock = clock
        self._last_telemetry: dict[tuple[str, str], float] = {}
        self.skipped_telemetry = 0
        self.invalid = 0
        self.ready = asyncio.Event()  # set once reading from the bus

    async def run(self) -> None:
        """Read and fan out until cancelled; reconnect after retriable bus or database errors."""
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                await self._session(backoff)
            except (BusError, StorageError) as exc:
                if isinstance(exc, BusError) and not exc.retriable:  # the bus was stopped
                    logger.info("live feed stopped: %s", exc)
                    return
                delay = backoff.next()
                logger.warning("live feed: %s; again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            except Exception:  # a bug: say so where an operator looks, then fail the task
                logger.exception("live feed failed")
                raise

    async def _session(self, backoff: Backoff) -> None:
        topics = list(TYPE_BY_TOPIC)
        async with self._bus.consumer(topics, group=self._group, start="latest") as consumer:
            logger.info("live feed reading %s", ", ".join(topics))
            self.ready.set()
            while True:
                records = await consumer.poll(max_records=500, timeout_s=1.0)
                if records:
                    self._fanout.publish_many(await self.messages(records))
                backoff.reset()

    async def messages(self, records: Sequence[Record]) -> list[LiveMessage]:
        """The live messages for `records`, in order (skipped and invalid ones left out)."""
        parsed = [p for r in records if (p := self._parse(r)) is not None]
        unknown = {p.device for p in parsed if p.site is None}
        sites = await self._sites(unknown) if unknown else {}
        return [
            live_message(p.type, p.device, p.site or sites.get(p.device), p.ts, p.data)
            for p in parsed
        ]

    def _parse(self, record: Record) -> _Parsed | None:
        type_ = TYPE_BY_TOPIC.get(record.topic)
        try:
            doc = _object(record.value)
            if type_ == "alert":
                return self._from_alert(doc)
            return None if type_ is None else self._from_envelope(type_, doc, record)
        except (orjson.JSONDecodeError, _Invalid, KeyError, TypeError) as exc:
            if self.invalid == 0:
                logger.warning("live feed: skipping a bad record on %s: %.200s", record.topic, exc)
            self.invalid += 1
            return None

    def _from_envelope(
        self, type_: LiveType, doc: dict[str, Any], record: Record
    ) -> _Parsed | None:
        device = str(doc["device"])
        body = doc["body"]
        if type_ == "telemetry":
            body = self._sampled(device, body)
            if body is None:
                return None
        ts = doc["ts"]
        if doc.get("stream") == WILL_STREAM:
            ts = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).isoformat()
        return _Parsed(type_, device, None, ts, body)

    @staticmethod
    def _from_alert(doc: dict[str, Any]) -> _Parsed:
        ts = next((doc[k] for k in ("ts", "updated_at", "raised_at", "at") if doc.get(k)), None)
        site = doc.get("site")
        return _Parsed("alert", str(doc["device"]), str(site) if site else None, ts, doc)

    def _sampled(self, device: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The batch with the points whose metric may go out now (None: none may)."""
        now = self._clock()
        kept = []
        for point in body.get("points", []):
            key = (device, _metric_key(point))
            last = self._last_telemetry.get(key)
            if last is None or now - last >= self._interval:
                self._last_telemetry[key] = now
                kept.append(point)
        if not kept:
            self.skipped_telemetry += 1
            return None
        return {**body, "points": kept}


def _metric_key(point: dict[str, Any]) -> str:
    tags = point.get("tags") or {}
    suffix = ",".join(f"{k}={v}" for k, v in sorted(tags.items())) if tags else ""
    return f"{point.get('metric')}|{suffix}"


class _Invalid(HubError):
    """A record the live feed cannot show."""


def _object(value: bytes) -> dict[str, Any]:
    doc = orjson.loads(value)
    if not isinstance(doc, dict):
        raise _Invalid("not a JSON object")
    return doc
