"""Telemetry sources as plugins, and the batcher that turns their points into outbox rows.

A source is anything with a `name` and an `async run(emit)` that calls
`emit(point)`; robot adapters feed the same `emit`. The batcher groups points
into one `telemetry` message per `batch_points` points or `batch_delay_s`,
whichever comes first.

Example:
    source = build_source(SyntheticSource(rate_hz=5), SourceContext(outbox, data_dir))
    batcher = Batcher(outbox, max_points=100, max_delay_s=1.0)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(batcher.run(), name="telemetry-batcher")
        tg.create_task(source.run(batcher.add), name=f"telemetry-{source.name}")
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import psutil

from edge_agent.config import HostSource, OutboxSource, SyntheticSource
from edge_agent.outbox import Outbox
from protocol import Channel, TelemetryBatch, TelemetryPoint, encode
from protocol.models import WireModel

T = TypeVar("T")

Emit = Callable[[TelemetryPoint], None]


class TelemetrySource(Protocol):
    """A plugin that produces telemetry points until cancelled."""

    name: str

    async def run(self, emit: Emit) -> None:
        """Produce points by calling `emit` until cancelled (or until done)."""


@dataclass(frozen=True)
class SourceContext:
    """What sources may read: the outbox and the data directory."""

    outbox: Outbox
    data_dir: Path


def _now() -> datetime:
    return datetime.now(UTC)


class HostMetrics:
    """CPU, memory, disk (of the data directory), load and temperatures where readable."""

    name = "host"

    def __init__(self, config: HostSource, context: SourceContext) -> None:
        self._interval, self._data_dir = config.interval_s, context.data_dir

    def sample(self) -> list[TelemetryPoint]:
        """One reading of every host metric (blocking; run it off the event loop)."""
        ts = _now()
        values = {
            "host.cpu_percent": psutil.cpu_percent(interval=None),
            "host.mem_percent": psutil.virtual_memory().percent,
            "host.disk_percent": psutil.disk_usage(str(self._data_dir)).percent,
            "host.load1": psutil.getloadavg()[0],
        }
        for name, celsius in _temperatures():
            values[f"host.temp_c.{name}"[:120]] = celsius
        return [TelemetryPoint(ts=ts, metric=_metric(k), value=v) for k, v in values.items()]

    async def run(self, emit: Emit) -> None:
        """Sample every `interval_s`."""
        while True:
            for point in await asyncio.to_thread(self.sample):
                emit(point)
            await asyncio.sleep(self._interval)


def _temperatures() -> list[tuple[str, float]]:
    """(sensor, °C) for every readable temperature sensor; none on machines without them."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return []
    try:
        chips = reader()
    except OSError:
        return []
    return [
        (f"{chip}.{reading.label or i}", float(reading.current))
        for chip, readings in chips.items()
        for i, reading in enumerate(readings)
    ]


def _metric(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_.:-" else "_" for ch in name)


class OutboxMetrics:
    """Depth, bytes, oldest age and drops of the outbox."""

    name = "outbox"

    def __init__(self, config: OutboxSource, context: SourceContext) -> None:
        self._interval, self._outbox = config.interval_s, context.outbox

    async def run(self, emit: Emit) -> None:
        """Sample every `interval_s`."""
        while True:
            stats = await self._outbox.stats()
            ts = _now()
            age = (ts - stats.oldest_ts).total_seconds() if stats.oldest_ts else 0.0
            emit(TelemetryPoint(ts=ts, metric="outbox.depth", value=stats.depth))
            emit(TelemetryPoint(ts=ts, metric="outbox.bytes", value=stats.bytes))
            emit(TelemetryPoint(ts=ts, metric="outbox.oldest_age_s", value=age))
            for cls, count in stats.dropped.items():
                emit(TelemetryPoint(ts=ts, metric=f"outbox.dropped.{cls.value}", value=count))
            await asyncio.sleep(self._interval)


class Synthetic:
    """A counter at `rate_hz`, tagged with this boot's id: for commissioning and tests."""

    name = "synthetic"

    def __init__(self, config: SyntheticSource, context: SourceContext) -> None:
        self._config = config
        self.boot = secrets.token_hex(4)

    async def run(self, emit: Emit) -> None:
        """Emit `value = 0, 1, 2, …` on a fixed schedule (no drift), until `limit`."""
        period = 1.0 / self._config.rate_hz
        start, count = time.monotonic(), 0
        tags = {"boot": self.boot}
        while not self._config.limit or count < self._config.limit:
            emit(TelemetryPoint(ts=_now(), metric=self._config.metric, value=count, tags=tags))
            count += 1
            await asyncio.sleep(max(0.0, start + count * period - time.monotonic()))


SOURCE_TYPES: dict[str, Callable[..., TelemetrySource]] = {
    "host": HostMetrics,
    "outbox": OutboxMetrics,
    "synthetic": Synthetic,
}


def build_source(
    config: HostSource | OutboxSource | SyntheticSource, context: SourceContext
) -> TelemetrySource:
    """Instantiate the plugin named by `config.type`."""
    return SOURCE_TYPES[config.type](config, context)


class OutboxBatcher(Generic[T]):
    """Collects items; writes one outbox row per `max_items` or `max_delay_s`."""

    def __init__(
        self,
        outbox: Outbox,
        channel: Channel,
        wrap: Callable[[list[T]], WireModel],
        *,
        max_items: int,
        max_delay_s: float,
        on_flush: Callable[[], None] = lambda: None,
    ) -> None:
        self._outbox, self._channel, self._wrap = outbox, channel, wrap
        self._max_items, self._max_delay = max_items, max_delay_s
        self._on_flush = on_flush
        self._items: list[T] = []
        self._full = asyncio.Event()

    def add(self, item: T) -> None:
        """Take one item (never blocks)."""
        self._items.append(item)
        if len(self._items) >= self._max_items:
            self._full.set()

    async def run(self) -> None:
        """Flush when full or when the oldest item has waited `max_delay_s`."""
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that races the event, and this loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._max_delay):
                    await self._full.wait()
            await self.flush()

    async def flush(self) -> None:
        """Write everything collected so far, in rows of at most `max_items`."""
        self._full.clear()
        while self._items:
            chunk = self._items[: self._max_items]
            del self._items[: self._max_items]
            await self._outbox.put(self._channel, encode(self._wrap(chunk)))
        self._on_flush()


class Batcher(OutboxBatcher[TelemetryPoint]):
    """Telemetry points into `telemetry` rows."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        max_points: int,
        max_delay_s: float,
        on_flush: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(
            outbox,
            Channel.TELEMETRY,
            lambda points: TelemetryBatch(points=points),
            max_items=max_points,
            max_delay_s=max_delay_s,
            on_flush=on_flush,
        )
