"""What only the in-memory bus has: shared groups, retention, wake-ups, prefixes."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.bus.base import BusClosed
from hub.bus.memory import InMemoryBus
from hub.bus.topics import EVENTS, TELEMETRY_RAW
from tests.hub.bus.contract import poll_until

pytestmark = pytest.mark.timeout(10)


async def started(bus: InMemoryBus) -> InMemoryBus:
    await bus.start()
    return bus


async def test_the_prefix_names_the_topics_but_callers_see_plain_names() -> None:
    bus = await started(InMemoryBus(topic_prefix="t42."))
    await bus.produce(EVENTS, key=b"amr-1", value=b"x")
    async with bus.consumer([EVENTS], group="alerts") as consumer:
        (record,) = await consumer.poll(timeout_s=0.1)
    assert bus.topics() == ["t42.system.events"]
    assert record.topic == EVENTS


async def test_members_of_one_group_share_the_partitions() -> None:
    bus = await started(InMemoryBus(partitions=4))
    keys = [f"amr-{n}".encode() for n in range(40)]
    await bus.produce_many([(TELEMETRY_RAW, k, k) for k in keys])
    async with (
        bus.consumer([TELEMETRY_RAW], group="writer") as one,
        bus.consumer([TELEMETRY_RAW], group="writer") as two,
    ):
        first = await one.poll(timeout_s=0.1)
        second = await two.poll(timeout_s=0.1)
    assert {r.partition for r in first}.isdisjoint({r.partition for r in second})
    assert sorted(r.key for r in first + second) == sorted(keys)


async def test_a_leaving_member_hands_its_uncommitted_partitions_over() -> None:
    bus = await started(InMemoryBus(partitions=2))
    keys = [f"amr-{n}".encode() for n in range(20)]
    await bus.produce_many([(TELEMETRY_RAW, k, k) for k in keys])
    async with bus.consumer([TELEMETRY_RAW], group="writer") as stays:
        async with bus.consumer([TELEMETRY_RAW], group="writer") as leaves:
            kept = await stays.poll(timeout_s=0.1)
            await stays.commit()
            dropped = await leaves.poll(timeout_s=0.1)
        taken_over = await stays.poll(timeout_s=0.1)
    assert kept
    assert dropped
    assert sorted(r.key for r in taken_over) == sorted(r.key for r in dropped)


async def test_retention_trims_the_oldest_and_counts_them() -> None:
    bus = await started(InMemoryBus(max_records_per_partition=3))
    await bus.produce_many([(EVENTS, b"amr-1", str(n).encode()) for n in range(5)])
    async with bus.consumer([EVENTS], group="late") as consumer:
        records = await consumer.poll(timeout_s=0.1)
    assert [(r.offset, r.value) for r in records] == [(2, b"2"), (3, b"3"), (4, b"4")]
    assert bus.trimmed() == {EVENTS: 2}
    assert bus.end_offsets(EVENTS) == [5]


async def test_a_member_behind_the_trimmed_records_skips_ahead() -> None:
    bus = await started(InMemoryBus(max_records_per_partition=2))
    async with bus.consumer([EVENTS], group="slow") as consumer:
        await bus.produce_many([(EVENTS, b"amr-1", str(n).encode()) for n in range(6)])
        records = await consumer.poll(timeout_s=0.1)
    assert [r.value for r in records] == [b"4", b"5"]


async def test_poll_wakes_as_soon_as_a_record_arrives() -> None:
    bus = await started(InMemoryBus())
    async with bus.consumer([EVENTS], group="alerts") as consumer:
        waiting = asyncio.create_task(consumer.poll(timeout_s=5.0))
        await asyncio.sleep(0.05)
        started_at = time.monotonic()
        await bus.produce(EVENTS, key=b"amr-1", value=b"estop")
        records = await waiting
    assert [r.value for r in records] == [b"estop"]
    assert time.monotonic() - started_at < 0.5


async def test_stop_wakes_a_waiting_poll_with_bus_closed() -> None:
    bus = await started(InMemoryBus())
    async with bus.consumer([EVENTS], group="alerts") as consumer:
        waiting = asyncio.create_task(consumer.poll(timeout_s=5.0))
        await asyncio.sleep(0.05)
        await bus.stop()
        with pytest.raises(BusClosed):
            await waiting


async def test_poll_respects_max_records_and_serves_every_partition() -> None:
    bus = await started(InMemoryBus(partitions=3))
    keys = [f"amr-{n}".encode() for n in range(30)]
    await bus.produce_many([(TELEMETRY_RAW, k, k) for seq in range(10) for k in keys])
    async with bus.consumer([TELEMETRY_RAW], group="writer") as consumer:
        batches = [await consumer.poll(max_records=50, timeout_s=0.1) for _ in range(3)]
        rest = await poll_until(consumer, 300 - 150)
    assert [len(b) for b in batches] == [50, 50, 50]
    assert {r.partition for b in batches for r in b} == {0, 1, 2}
    assert len(rest) == 150


async def test_produce_before_start_is_refused() -> None:
    bus = InMemoryBus()
    with pytest.raises(BusClosed, match="not started"):
        await bus.produce(EVENTS, key=b"amr-1", value=b"x")
    with pytest.raises(BusClosed):
        await bus.probe()


async def test_joining_a_stopped_bus_is_refused() -> None:
    bus = InMemoryBus()
    with pytest.raises(BusClosed):
        async with bus.consumer([EVENTS], group="alerts"):
            pass


@pytest.mark.parametrize(("partitions", "cap"), [(0, 10), (1, 0)], ids=["partitions", "cap"])
def test_nonsense_sizes_are_refused(partitions: int, cap: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        InMemoryBus(partitions=partitions, max_records_per_partition=cap)
