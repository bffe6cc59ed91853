"""`KafkaBus.hold_slots` against real Kafka: each slot has one holder at a time, and a
holder that leaves gives its slots to the others only after it let them go."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from hub.bus.base import BusConfigError
from hub.bus.kafka import KafkaBus
from hub.bus.kafka_admin import ensure_topics
from tests.integration.harness import until
from tests.integration.hub.bus.conftest import unique_prefix

SLOTS = 6


class Holder:
    """A listener that records what it holds and checks nobody else holds it too."""

    def __init__(self, name: str, everyone: list[Holder]) -> None:
        self.name, self.everyone = name, everyone
        self.held: set[int] = set()
        self.overlaps: list[str] = []
        everyone.append(self)

    async def claimed(self, slots: frozenset[int]) -> None:
        for other in self.everyone:
            if other is not self and other.held & slots:
                self.overlaps.append(
                    f"{self.name} got {sorted(other.held & slots)} of {other.name}"
                )
        self.held |= slots

    async def released(self, slots: frozenset[int]) -> None:
        await asyncio.sleep(0.2)  # letting go takes a while: nobody may claim meanwhile
        self.held -= slots


@pytest.mark.timeout(120)
async def test_each_slot_has_one_holder_and_moves_when_its_holder_leaves(
    kafka_bootstrap: str, kafka_prefix: str
) -> None:
    prefix = unique_prefix(kafka_prefix)
    buses = [KafkaBus(kafka_bootstrap, topic_prefix=prefix) for _ in range(2)]
    everyone: list[Holder] = []
    first, second = Holder("first", everyone), Holder("second", everyone)
    for bus in buses:
        await bus.start()
    try:
        tasks = [
            asyncio.create_task(bus.hold_slots("sessions", slots=SLOTS, group="g", listener=h))
            for bus, h in zip(buses, (first, second), strict=True)
        ]
        await until(lambda: first.held and second.held, 60, "both hold some")
        await until(lambda: first.held | second.held == set(range(SLOTS)), 30, "all held")
        assert not first.held & second.held

        tasks[0].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[0]
        assert first.held == set(), "a holder that stops releases every slot first"
        await until(lambda: second.held == set(range(SLOTS)), 60, "the other takes them all")
        assert first.overlaps == second.overlaps == []

        tasks[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[1]
        assert second.held == set()
    finally:
        for bus in buses:
            await bus.stop()


async def test_a_topic_with_too_few_partitions_is_a_clear_error(
    kafka_bootstrap: str, kafka_prefix: str
) -> None:
    prefix = unique_prefix(kafka_prefix)
    await ensure_topics(kafka_bootstrap, [f"{prefix}sessions"], partitions=2)
    bus = KafkaBus(kafka_bootstrap, topic_prefix=prefix)
    await bus.start()
    holder = Holder("only", [])
    try:
        with pytest.raises(BusConfigError, match=r"sessions has 2 partitions; it needs 6"):
            await bus.hold_slots("sessions", slots=SLOTS, group="g", listener=holder)
    finally:
        await bus.stop()
    assert holder.held == set()
