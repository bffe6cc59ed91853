"""`KafkaBus`: the scale mode's bus, on Kafka through aiokafka.

`produce` returns only once every in-sync replica has the record (`acks="all"`,
idempotent producer), so the hub may then acknowledge the device. Every network
await is bounded by `timeout_s`: with Kafka down, `start`, `produce` and `poll`
raise `BusError` (retriable) naming the bootstrap address instead of hanging.

Example:
    >>> async def demo() -> None:  # doctest: +SKIP
    ...     bus = KafkaBus("127.0.0.1:19092", topic_prefix="dev.")
    ...     await bus.start()  # creates the missing topics, 6 partitions each
    ...     await bus.produce("telemetry.raw", key=b"amr-7", value=b"{...}")
    ...     await bus.stop()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.codec import has_gzip, has_lz4, has_snappy, has_zstd

from hub.bus._kafka_guard import guarded
from hub.bus.base import (
    BusClosed,
    BusConfigError,
    BusError,
    ProducerRecord,
    Record,
    SlotListener,
    Start,
)
from hub.bus.kafka_admin import ensure_topics, partition_counts
from hub.bus.kafka_slots import hold_slots
from hub.bus.topics import ALL_TOPICS, prefixed, unprefixed

logger = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 6
DEFAULT_TIMEOUT_S = 10.0
CLIENT_ID = "outpost-hub"
CODECS: dict[str, Callable[[], bool]] = {
    "gzip": has_gzip,
    "lz4": has_lz4,
    "snappy": has_snappy,
    "zstd": has_zstd,
}
"""Compression types aiokafka knows, each with a check that its library is installed."""


@dataclass(frozen=True, slots=True)
class ProducerTuning:
    """Producer batching; the defaults come from `python -m hub.bus.measure` (docs/hub-bus.md)."""

    linger_ms: int = 0  # callers await each batch, so lingering only adds latency
    max_batch_size: int = 64 * 1024  # one 500-record call's share of a partition fits in one
    compression_type: str | None = None  # "lz4" needs the lz4 package (not installed here)


class KafkaBus:
    """The `Bus` of the scale mode (see the module docs)."""

    def __init__(
        self,
        bootstrap: str,
        *,
        topic_prefix: str = "",
        partitions: int = DEFAULT_PARTITIONS,
        replication_factor: int = 1,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        tuning: ProducerTuning | None = None,
        topics: Sequence[str] = ALL_TOPICS,
    ) -> None:
        """A stopped bus for Kafka at `bootstrap` (`host:port[,host:port…]`)."""
        if not bootstrap:
            raise BusConfigError("the Kafka bus needs a bootstrap address (host:port)")
        if partitions < 1 or replication_factor < 1 or timeout_s <= 0:
            raise BusConfigError("partitions, replication_factor and timeout_s must be positive")
        self.bootstrap = bootstrap
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.timeout_s = timeout_s
        self.tuning = tuning or ProducerTuning()
        _check_compression(self.tuning.compression_type)
        self.topics = tuple(topics)
        self._producer: AIOKafkaProducer | None = None
        self._stale = False
        self._retiring: set[asyncio.Task[None]] = set()
        self._consumers: set[KafkaConsumer] = set()

    async def start(self) -> None:
        """Create the missing topics, start the producer; `BusError` within `timeout_s`."""
        if self._producer is not None:
            return
        producer = self._new_producer()
        try:
            async with guarded(self.bootstrap, "starting the bus", self.timeout_s):
                await ensure_topics(
                    self.bootstrap,
                    [prefixed(self.topic_prefix, t) for t in self.topics],
                    partitions=self.partitions,
                    replication_factor=self.replication_factor,
                    timeout_s=self.timeout_s,
                )
                await producer.start()
        except BaseException:
            await self._stop_quietly(producer)
            raise
        self._producer = producer
        logger.info("bus: connected to Kafka at %s", self.bootstrap)

    def _new_producer(self) -> AIOKafkaProducer:
        """The producer: durable (acks=all, idempotent) and tuned; its timeouts match ours."""
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=CLIENT_ID,
            acks="all",
            enable_idempotence=True,
            linger_ms=self.tuning.linger_ms,
            max_batch_size=self.tuning.max_batch_size,
            compression_type=self.tuning.compression_type,
            request_timeout_ms=int(self.timeout_s * 1000),
        )

    async def stop(self) -> None:
        """Close open consumers, flush pending records (bounded) and disconnect."""
        for consumer in list(self._consumers):
            await consumer.close()
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop_quietly(producer)
            logger.info("bus: disconnected from Kafka at %s", self.bootstrap)
        if self._retiring:
            await asyncio.wait(self._retiring)

    async def _stop_quietly(self, producer: AIOKafkaProducer) -> None:
        try:
            async with guarded(self.bootstrap, "stopping the producer", self.timeout_s):
                await producer.stop()
        except BusError as exc:  # shutting down anyway; unsent records were never acknowledged
            logger.warning("bus: %s", exc)

    async def produce(self, topic: str, *, key: bytes, value: bytes) -> None:
        """Return once Kafka holds the record on every in-sync replica; else `BusError`."""
        await self.produce_many([(topic, key, value)])

    async def produce_many(self, records: Sequence[ProducerRecord]) -> None:
        """Send all records, then wait for all acknowledgements, within one `timeout_s`.

        After a failure the next call starts a fresh producer: an idempotent producer
        whose sends timed out, or whose broker restarted, can be stuck on sequence
        numbers the broker will never accept again (`OutOfOrderSequenceNumber`).
        """
        producer = await self._healthy_producer()
        what = f"producing {len(records)} record(s)"
        try:
            async with guarded(self.bootstrap, what, self.timeout_s):
                pending = [
                    await producer.send(prefixed(self.topic_prefix, topic), key=key, value=value)
                    for topic, key, value in records
                ]
                await _all_delivered(pending)
        except BusError:
            self._stale = True
            raise

    async def _healthy_producer(self) -> AIOKafkaProducer:
        producer = self._require_producer()
        if not self._stale:
            return producer
        fresh = self._new_producer()
        try:
            async with guarded(self.bootstrap, "restarting the producer", self.timeout_s):
                await fresh.start()
        except BaseException:
            await self._stop_quietly(fresh)
            raise
        self._producer, self._stale = fresh, False
        # The old one may hold unsent batches: let it give up in the background.
        retiring = asyncio.create_task(self._stop_quietly(producer))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)
        logger.info("bus: started a fresh Kafka producer after a failure")
        return fresh

    def consumer(
        self, topics: Sequence[str], *, group: str, start: Start = "committed"
    ) -> KafkaConsumer:
        """A new member of consumer group `group` (prefixed like the topics).

        `start="latest"`: no group at all; every partition assigned by hand, from its end.
        """
        names = [prefixed(self.topic_prefix, t) for t in topics]
        latest = start == "latest"
        return KafkaConsumer(self, names, prefixed(self.topic_prefix, group), latest=latest)

    async def hold_slots(
        self, name: str, *, slots: int, group: str, listener: SlotListener
    ) -> None:
        """Share `slots` among the members of `group` (`hub.bus.kafka_slots`)."""
        self._require_producer()
        await hold_slots(self, name, slots=slots, group=group, listener=listener)

    async def probe(self) -> None:
        """Health check: raise `BusError` unless Kafka answers a metadata request in time."""
        self._require_producer()
        await partition_counts(self.bootstrap, self.topics[:1], timeout_s=self.timeout_s)

    def _require_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise BusClosed(f"the Kafka bus for {self.bootstrap} is not started (or was stopped)")
        return self._producer


def _check_compression(name: str | None) -> None:
    """Refuse a compression type aiokafka lacks, or whose library is not installed."""
    if name is None:
        return
    available = CODECS.get(name)
    if available is None:
        raise BusConfigError(
            f"unknown compression_type {name!r}; allowed: none, {', '.join(CODECS)}"
        )
    if not available():
        raise BusConfigError(f"compression_type {name!r} needs its Python package, not installed")


async def _all_delivered(pending: list[asyncio.Future[object]]) -> None:
    """Wait for every delivery; raise the first failure once all are settled or time is up."""
    for future in pending:
        future.add_done_callback(_observe)  # a late failure after our timeout is not "unretrieved"
    if pending:
        await asyncio.wait(pending)
    for future in pending:
        future.result()


def _observe(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


SESSION_TIMEOUT_S = 10.0
"""How long a silent group member (a crashed worker) keeps its partitions."""


class KafkaConsumer:
    """A Kafka consumer group member (the `Consumer` protocol): manual commits, earliest reset."""

    def __init__(
        self, bus: KafkaBus, topics: list[str], group: str, *, latest: bool = False
    ) -> None:
        """Not yet joined: use `async with`; `latest` reads every partition from its end."""
        self.topics = topics
        self.group = group
        self._bus = bus
        self._latest = latest
        self._consumer: AIOKafkaConsumer | None = None
        self._returned: dict[TopicPartition, int] = {}
        self._next: dict[TopicPartition, int] = {}
        """Per partition: the offset after the last record `poll` returned (kept for `lag`)."""

    async def __aenter__(self) -> Self:
        """Connect and subscribe; the group is joined on the first `poll`."""
        self._bus._require_producer()
        if self._latest:
            self._consumer = await self._start_at_end()
            self._bus._consumers.add(self)
            return self
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self._bus.bootstrap,
            client_id=CLIENT_ID,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(SESSION_TIMEOUT_S * 1000),
            heartbeat_interval_ms=int(SESSION_TIMEOUT_S * 1000 / 3),
        )
        try:
            # Joining the group waits for a rebalance, which waits for a crashed member's
            # session to expire (10 s): allow that on top of the network timeout.
            limit = self._bus.timeout_s + SESSION_TIMEOUT_S
            async with guarded(self._bus.bootstrap, "starting a consumer", limit):
                await consumer.start()
        except BaseException:
            await self._stop_quietly(consumer)
            raise
        self._consumer = consumer
        self._bus._consumers.add(self)
        return self

    async def _start_at_end(self) -> AIOKafkaConsumer:
        """A group-less consumer assigned every partition, positioned at its end right now."""
        bootstrap, timeout_s = self._bus.bootstrap, self._bus.timeout_s
        counts = await partition_counts(bootstrap, self.topics, timeout_s=timeout_s)
        partitions = [TopicPartition(t, p) for t in self.topics for p in range(counts.get(t, 0))]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=CLIENT_ID,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        try:
            async with guarded(bootstrap, "starting a reader at the end", timeout_s):
                await consumer.start()
                consumer.assign(partitions)
                if partitions:  # topics are created by `start`; none is only a misconfiguration
                    await consumer.seek_to_end(*partitions)
                for tp in partitions:  # resolve now: records produced after this are seen
                    await consumer.position(tp)
        except BaseException:
            await self._stop_quietly(consumer)
            raise
        return consumer

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leave the group without committing."""
        await self.close()

    async def close(self) -> None:
        """Leave the group (uncommitted records go to the next member); idempotent."""
        consumer, self._consumer = self._consumer, None
        self._bus._consumers.discard(self)
        if consumer is not None:
            await self._stop_quietly(consumer)

    async def _stop_quietly(self, consumer: AIOKafkaConsumer) -> None:
        try:
            async with guarded(self._bus.bootstrap, "stopping a consumer", self._bus.timeout_s):
                await consumer.stop()
        except BusError as exc:
            logger.warning("bus: %s", exc)

    async def poll(self, *, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        """Up to `max_records` records, waiting at most `timeout_s` for them; else `[]`."""
        consumer = self._require()
        limit = timeout_s + self._bus.timeout_s  # getmany's own wait, plus a network round
        async with guarded(self._bus.bootstrap, "polling", limit):
            batches: dict[
                TopicPartition, list[ConsumerRecord[bytes, bytes]]
            ] = await consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        records: list[Record] = []
        for tp, batch in batches.items():
            records += [self._record(r) for r in batch]
            self._returned[tp] = self._next[tp] = batch[-1].offset + 1
        return records

    def _record(self, r: ConsumerRecord[bytes, bytes]) -> Record:
        topic = unprefixed(self._bus.topic_prefix, r.topic)
        return Record(topic, r.key or b"", r.value or b"", r.partition, r.offset, r.timestamp)

    async def commit(self) -> None:
        """Commit what `poll` returned on the partitions still assigned to this member."""
        consumer = self._require()
        if self._latest:  # no group: nothing to commit to
            self._returned.clear()
            return
        assigned = consumer.assignment()
        offsets = {tp: offset for tp, offset in self._returned.items() if tp in assigned}
        if offsets:
            async with guarded(self._bus.bootstrap, "committing offsets", self._bus.timeout_s):
                await consumer.commit(offsets)
        self._returned.clear()

    def lag(self) -> dict[str, int]:
        """Per topic: the high watermark minus the position, summed over assigned partitions."""
        consumer = self._consumer
        if consumer is None:
            return {}
        lag: dict[str, int] = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = self._next.get(tp)
            if high is None or position is None:
                continue
            topic = unprefixed(self._bus.topic_prefix, tp.topic)
            lag[topic] = lag.get(topic, 0) + max(0, high - position)
        return lag

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise BusClosed(f"consumer of group {self.group!r} is closed (or its bus stopped)")
        return self._consumer
