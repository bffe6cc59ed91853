"""`InMemoryBus`: the embedded mode's bus, in the hub's own process.

It keeps Kafka's semantics where callers can notice them: partitions with the
same murmur2 key mapping (so one key keeps its order), consumer groups whose
members share the partitions, committed offsets per group, and at-least-once
delivery (what a member read but did not commit goes to the next member).

Durability: `produce` returns once the record is handed to the bus, which lives
in memory and dies with the process. The embedded mode's durability comes from
the database commit that follows (DESIGN "Delivery" 3): ingest acknowledges a
device only after the consumer stored the record, so a crash loses nothing the
device was told is safe.

Retention: each partition keeps at most `max_records_per_partition` records;
beyond that the oldest are trimmed, read or not, and counted (`trimmed()`). A
member whose position was trimmed away skips to the oldest record left and the
skipped count is logged. Unread records trimmed this way were never
acknowledged to a device, so the device sends them again.

Example:
    >>> import asyncio
    >>> async def demo() -> list[int]:
    ...     bus = InMemoryBus(partitions=3)
    ...     await bus.start()
    ...     events = [("system.events", b"amr-1", b"a"), ("system.events", b"amr-1", b"b")]
    ...     await bus.produce_many(events)
    ...     async with bus.consumer(["system.events"], group="alerts") as consumer:
    ...         records = await consumer.poll(timeout_s=0.1)
    ...     await bus.stop()
    ...     return [r.offset for r in records]
    >>> asyncio.run(demo())
    [0, 1]
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from hub.bus.base import BusClosed, ProducerRecord, Record, SlotListener, Start
from hub.bus.partitioner import partition_for
from hub.bus.topics import prefixed, unprefixed

logger = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 1
DEFAULT_MAX_RECORDS_PER_PARTITION = 100_000

TopicPartition = tuple[str, int]
"""(broker-side topic name, partition)."""

_PRIVATE = itertools.count()


@dataclass
class _PartitionLog:
    """An append-only list of records with offsets, trimmed from the front."""

    records: list[Record] = field(default_factory=list)
    start: int = 0  # index in `records` of the oldest record kept
    base: int = 0  # offset of records[start]

    @property
    def end(self) -> int:
        """The offset the next record will get."""
        return self.base + len(self.records) - self.start

    def append(self, record: Record) -> None:
        """Add `record`, whose offset must be `end`."""
        self.records.append(record)

    def read(self, offset: int, limit: int) -> list[Record]:
        """Up to `limit` records from `offset` (which must be at least `base`)."""
        first = self.start + offset - self.base
        return self.records[first : first + limit]

    def trim_to(self, cap: int) -> int:
        """Drop the oldest records beyond `cap`; return how many went."""
        excess = self.end - self.base - cap
        if excess <= 0:
            return 0
        self.start += excess
        self.base += excess
        if self.start > len(self.records) // 2:  # compact now and then, not per record
            del self.records[: self.start]
            self.start = 0
        return excess


@dataclass
class _Group:
    """A consumer group: its committed offsets and its current members."""

    committed: dict[TopicPartition, int] = field(default_factory=dict)
    members: list[InMemoryConsumer] = field(default_factory=list)
    generation: int = 0


class InMemoryBus:
    """The `Bus` of the embedded mode: one process, records in memory (see module docs)."""

    def __init__(
        self,
        *,
        topic_prefix: str = "",
        partitions: int = DEFAULT_PARTITIONS,
        max_records_per_partition: int = DEFAULT_MAX_RECORDS_PER_PARTITION,
    ) -> None:
        """A stopped bus; `partitions` applies to every topic, created on first use."""
        if partitions < 1 or max_records_per_partition < 1:
            raise ValueError("partitions and max_records_per_partition must be at least 1")
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.max_records_per_partition = max_records_per_partition
        self._logs: dict[str, list[_PartitionLog]] = {}
        self._groups: dict[str, _Group] = {}
        self._trimmed: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._running = False

    async def start(self) -> None:
        """Open the bus for producing and consuming (nothing to connect to)."""
        self._running = True

    async def stop(self) -> None:
        """Close the bus: every open consumer's next `poll` raises `BusClosed`."""
        self._running = False
        for group in self._groups.values():
            group.members.clear()
            group.generation += 1
        await self._notify()

    async def produce(self, topic: str, *, key: bytes, value: bytes) -> None:
        """Append one record; it is held (in memory) when this returns."""
        await self.produce_many([(topic, key, value)])

    async def produce_many(self, records: Sequence[ProducerRecord]) -> None:
        """Append every `(topic, key, value)` in order; all are held when this returns."""
        self._check_running()
        now_ms = int(time.time() * 1000)
        for topic, key, value in records:
            self._append(prefixed(self.topic_prefix, topic), key, value, now_ms)
        await self._notify()

    def consumer(
        self, topics: Sequence[str], *, group: str, start: Start = "committed"
    ) -> InMemoryConsumer:
        """A new member of `group` for `topics`; it joins on `async with`.

        `start="latest"`: a private group of its own, positioned at the end when it joins.
        """
        names = [prefixed(self.topic_prefix, t) for t in topics]
        if start == "latest":
            return InMemoryConsumer(self, names, f"{group}~{next(_PRIVATE)}", latest=True)
        return InMemoryConsumer(self, names, group)

    async def hold_slots(
        self, name: str, *, slots: int, group: str, listener: SlotListener
    ) -> None:
        """Hold every slot (this is the only process) until cancelled, then release them."""
        held = frozenset(range(slots))
        await listener.claimed(held)
        try:
            await asyncio.Event().wait()
        finally:
            await listener.released(held)

    async def probe(self) -> None:
        """Health check: raise `BusClosed` unless the bus is started."""
        self._check_running()

    def topics(self) -> list[str]:
        """The bus-side names (prefix included) of the topics used so far, sorted."""
        return sorted(self._logs)

    def trimmed(self) -> dict[str, int]:
        """Records dropped by the retention cap so far, per plain topic name."""
        return {unprefixed(self.topic_prefix, t): n for t, n in self._trimmed.items()}

    def end_offsets(self, topic: str) -> list[int]:
        """The next offset of each partition of `topic` (plain name): how much was produced."""
        return [log.end for log in self._partition_logs(prefixed(self.topic_prefix, topic))]

    def _check_running(self) -> None:
        if not self._running:
            raise BusClosed("the in-memory bus is not started (or was stopped)")

    def _partition_logs(self, name: str) -> list[_PartitionLog]:
        logs = self._logs.get(name)
        if logs is None:
            logs = self._logs[name] = [_PartitionLog() for _ in range(self.partitions)]
        return logs

    def _append(self, name: str, key: bytes, value: bytes, now_ms: int) -> None:
        partition = partition_for(key, self.partitions)
        log = self._partition_logs(name)[partition]
        topic = unprefixed(self.topic_prefix, name)
        log.append(Record(topic, key, value, partition, log.end, now_ms))
        dropped = log.trim_to(self.max_records_per_partition)
        if dropped:
            if name not in self._trimmed:
                logger.warning(
                    "bus: %s partition %d over %d records: trimming the oldest",
                    name,
                    partition,
                    self.max_records_per_partition,
                )
            self._trimmed[name] = self._trimmed.get(name, 0) + dropped

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _join(self, member: InMemoryConsumer) -> None:
        self._check_running()
        group = self._groups.setdefault(member.group, _Group())
        for name in member.topics:
            self._partition_logs(name)
        group.members.append(member)
        group.generation += 1
        await self._notify()

    async def _leave(self, member: InMemoryConsumer) -> None:
        group = self._groups.get(member.group)
        if group is not None and member in group.members:
            group.members.remove(member)
            group.generation += 1
            await self._notify()

    def _assignment(self, member: InMemoryConsumer) -> list[TopicPartition]:
        """The partitions `member` owns now: each topic's partitions dealt out in turn."""
        group = self._groups[member.group]
        owned: list[TopicPartition] = []
        for name in member.topics:
            eligible = [m for m in group.members if name in m.topics]
            index = eligible.index(member)
            owned += [(name, p) for p in range(self.partitions) if p % len(eligible) == index]
        return owned

    def _group_of(self, member: InMemoryConsumer) -> _Group:
        group = self._groups.get(member.group)
        if not self._running or group is None or member not in group.members:
            raise BusClosed(f"consumer of group {member.group!r} is closed (or its bus stopped)")
        return group

    def _read(self, tp: TopicPartition, offset: int, limit: int) -> tuple[int, list[Record]]:
        """Records of `tp` from `offset`, skipping what retention trimmed; (new offset, records)."""
        log = self._logs[tp[0]][tp[1]]
        if offset < log.base:
            logger.warning("bus: %s[%d] skipped %d trimmed records", *tp, log.base - offset)
            offset = log.base
        return offset, log.read(offset, limit)


class InMemoryConsumer:
    """A consumer group member of an `InMemoryBus` (the `Consumer` protocol)."""

    def __init__(
        self, bus: InMemoryBus, topics: list[str], group: str, *, latest: bool = False
    ) -> None:
        """Not yet joined: use `async with`; `latest` starts at the end and never commits."""
        self.topics = topics
        self.group = group
        self._bus = bus
        self._latest = latest
        self._start: dict[TopicPartition, int] = {}
        self._generation = -1
        self._positions: dict[TopicPartition, int] = {}
        self._returned: dict[TopicPartition, int] = {}
        self._next_partition = 0

    async def __aenter__(self) -> Self:
        """Join the group (the partitions are shared again among its members)."""
        await self._bus._join(self)
        if self._latest:
            self._start = {
                (name, p): log.end
                for name in self.topics
                for p, log in enumerate(self._bus._logs[name])
            }
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leave the group without committing."""
        await self._bus._leave(self)
        if self._latest:  # its private group ends with it
            self._bus._groups.pop(self.group, None)

    async def poll(self, *, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        """Up to `max_records` records, waiting at most `timeout_s` for the first; else `[]`."""
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        changed = self._bus._changed
        async with changed:
            while True:
                records = self._collect(max_records)
                remaining = deadline - loop.time()
                if records or remaining <= 0:
                    return records
                try:
                    async with asyncio.timeout(remaining):
                        await changed.wait()
                except TimeoutError:
                    pass

    async def commit(self) -> None:
        """Commit the offsets after every record `poll` returned, on partitions still owned."""
        group = self._bus._group_of(self)
        if self._latest:  # a private reader keeps no offsets
            self._returned.clear()
            return
        self._refresh(group)
        group.committed.update(self._returned)
        self._returned.clear()

    def lag(self) -> dict[str, int]:
        """Per topic: records after this member's positions on the partitions it owns."""
        lag: dict[str, int] = {}
        for (name, partition), position in self._positions.items():
            end = self._bus._logs[name][partition].end
            topic = unprefixed(self._bus.topic_prefix, name)
            lag[topic] = lag.get(topic, 0) + max(0, end - position)
        return lag

    def _refresh(self, group: _Group) -> None:
        """Take up the current assignment after members joined or left."""
        if self._generation == group.generation:
            return
        owned = self._bus._assignment(self)
        self._positions = {
            tp: self._positions.get(tp, group.committed.get(tp, self._start.get(tp, 0)))
            for tp in owned
        }
        self._returned = {tp: o for tp, o in self._returned.items() if tp in self._positions}
        self._generation = group.generation

    def _collect(self, max_records: int) -> list[Record]:
        """Read from the owned partitions in turn, starting after the last one served."""
        self._refresh(self._bus._group_of(self))
        owned = list(self._positions)
        records: list[Record] = []
        for step in range(len(owned)):
            tp = owned[(self._next_partition + step) % len(owned)]
            offset, batch = self._bus._read(tp, self._positions[tp], max_records - len(records))
            self._positions[tp] = offset + len(batch)
            if batch:
                self._returned[tp] = self._positions[tp]
                records += batch
            if len(records) >= max_records:
                break
        self._next_partition += 1
        return records
