"""Slots shared by the processes of one role, through a Kafka consumer group.

Each slot is a partition of a topic that carries no records: Kafka's group protocol
gives each partition to one member at a time, moves a dead member's partitions to
the survivors once its session expires, and tells every member to let go of a
partition (`on_partitions_revoked`, awaited) before anyone else gets it. That is all
ingest needs to spread its MQTT sessions over several processes without two of them
ever serving the same session.

Example:
    >>> async def serve(bus: KafkaBus, listener: SlotListener) -> None:  # doctest: +SKIP
    ...     await hold_slots(bus, "ingest.sessions", slots=6, group="ingest", listener=listener)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from hub.bus._kafka_guard import guarded
from hub.bus.base import BusConfigError, BusError, SlotListener
from hub.bus.kafka_admin import ensure_topics, partition_counts
from hub.bus.topics import prefixed

if TYPE_CHECKING:
    from hub.bus.kafka import KafkaBus

logger = logging.getLogger(__name__)

SLOT_SESSION_TIMEOUT_S = 10.0
"""How long a killed member keeps its slots before the survivors get them. Shorter makes
a loaded machine's processes (event loops stalled a few seconds) lose their slots to
each other over and over, and a session in transit is served by nobody."""
SLOT_HEARTBEAT_S = 2.0
POLL_S = 1.0
REBALANCE_ALLOWANCE_S = 60.0
"""A poll also runs the rebalance callbacks, and letting a session go waits for the batch
in flight: a poll may take this much longer than its timeout without anything being wrong
(giving up then would leave the group, and start another rebalance for everyone)."""


class _Relay(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """aiokafka's rebalance callbacks → the listener, in slot numbers; remembers what is held."""

    def __init__(self, listener: SlotListener, slots: int) -> None:
        self.listener, self.slots = listener, slots
        self.held: frozenset[int] = frozenset()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        gone = frozenset(tp.partition for tp in revoked) & self.held
        if gone:
            await self.release(gone)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        new = frozenset(tp.partition for tp in assigned if tp.partition < self.slots) - self.held
        if new:
            self.held |= new
            logger.info("bus: holding slots %s", sorted(new))
            await self.listener.claimed(new)

    async def release(self, slots: frozenset[int]) -> None:
        self.held -= slots
        logger.info("bus: releasing slots %s", sorted(slots))
        await self.listener.released(slots)


async def hold_slots(
    bus: KafkaBus, name: str, *, slots: int, group: str, listener: SlotListener
) -> None:
    """`Bus.hold_slots` on Kafka: the topic `name` gets `slots` partitions (created if
    missing; one with fewer is a configuration error naming it)."""
    topic = prefixed(bus.topic_prefix, name)
    timeout_s = bus.timeout_s
    async with guarded(bus.bootstrap, f"creating {topic}", timeout_s):
        await ensure_topics(
            bus.bootstrap,
            [topic],
            partitions=slots,
            replication_factor=bus.replication_factor,
            timeout_s=timeout_s,
        )
    counts = await partition_counts(bus.bootstrap, [topic], timeout_s=timeout_s)
    if counts.get(topic, 0) < slots:
        raise BusConfigError(
            f"Kafka topic {topic} has {counts.get(topic, 0)} partitions; it needs {slots}, "
            "one per slot: delete it (it holds no records) and the hub creates it again"
        )
    relay = _Relay(listener, slots)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bus.bootstrap,
        client_id="outpost-hub",
        group_id=prefixed(bus.topic_prefix, group),
        enable_auto_commit=False,
        session_timeout_ms=int(SLOT_SESSION_TIMEOUT_S * 1000),
        heartbeat_interval_ms=int(SLOT_HEARTBEAT_S * 1000),
    )
    consumer.subscribe([topic], listener=relay)
    try:
        async with guarded(bus.bootstrap, f"joining group {group}", timeout_s + 10.0):
            await consumer.start()
        poll_limit = timeout_s + POLL_S + REBALANCE_ALLOWANCE_S
        while True:  # no records ever come: polling keeps the membership alive
            async with guarded(bus.bootstrap, f"holding slots of {topic}", poll_limit):
                await consumer.getmany(timeout_ms=int(POLL_S * 1000))
    finally:
        if relay.held:
            await relay.release(relay.held)
        try:
            async with guarded(bus.bootstrap, f"leaving group {group}", timeout_s):
                await consumer.stop()
        except BusError as exc:  # leaving is best effort: the session expires anyway
            logger.warning("bus: %s", exc)
