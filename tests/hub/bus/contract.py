"""The behaviour every `Bus` must show, written once.

`tests/hub/bus/test_contract.py` runs it on `InMemoryBus`;
`tests/integration/hub/bus/test_contract.py` runs it on both buses against real Kafka.
Each importing folder provides a `make_bus` fixture: `await make_bus(partitions=N)`
returns a started bus of its own (own topic prefix), stopped after the test.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

import pytest

from hub.bus.base import Bus, BusClosed, Consumer, Record
from hub.bus.partitioner import partition_for
from hub.bus.topics import COMMAND_ACKS, EVENTS, TELEMETRY_RAW

MakeBus = Callable[..., Awaitable[Bus]]
PARTITIONS = 3
DEVICES = [f"amr-{n}" for n in range(8)]
READ_DEADLINE_S = 20.0


async def poll_until(consumer: Consumer, count: int, *, max_records: int = 500) -> list[Record]:
    """Poll until `count` records came (or fail after READ_DEADLINE_S); never more than `count`."""
    records: list[Record] = []
    deadline = time.monotonic() + READ_DEADLINE_S
    while len(records) < count:
        assert time.monotonic() < deadline, f"only {len(records)} of {count} records arrived"
        limit = min(max_records, count - len(records))
        records += await consumer.poll(max_records=limit, timeout_s=0.5)
    assert len(records) == count
    return records


async def read_all(bus: Bus, topics: Sequence[str], group: str, count: int) -> list[Record]:
    """`count` records read by a fresh member of `group`, committed."""
    async with bus.consumer(topics, group=group) as consumer:
        records = await poll_until(consumer, count)
        await consumer.commit()
    return records


def telemetry(per_device: int) -> list[tuple[str, bytes, bytes]]:
    """`per_device` records for each of DEVICES, interleaved, valued `device:seq`."""
    return [
        (TELEMETRY_RAW, d.encode(), f"{d}:{seq}".encode())
        for seq in range(per_device)
        for d in DEVICES
    ]


@pytest.mark.timeout(60)
async def test_keyed_records_land_in_their_key_partition_in_order(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=PARTITIONS)
    sent = telemetry(per_device=5)
    await bus.produce_many(sent)

    records = await read_all(bus, [TELEMETRY_RAW], "writer", len(sent))

    values: defaultdict[bytes, list[bytes]] = defaultdict(list)
    offsets: defaultdict[int, list[int]] = defaultdict(list)
    for record in records:
        assert record.topic == TELEMETRY_RAW
        assert record.partition == partition_for(record.key, PARTITIONS)
        assert record.timestamp_ms > 0
        values[record.key].append(record.value)
        offsets[record.partition].append(record.offset)
    assert len(offsets) > 1, "eight devices should spread over three partitions"
    assert all(o == sorted(o) and len(set(o)) == len(o) for o in offsets.values())
    expected: defaultdict[bytes, list[bytes]] = defaultdict(list)
    for _, key, value in sent:
        expected[key].append(value)
    assert values == expected


@pytest.mark.timeout(60)
async def test_produce_one_at_a_time_and_to_several_topics(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=PARTITIONS)
    await bus.produce(EVENTS, key=b"amr-1", value=b"estop")
    await bus.produce_many([(COMMAND_ACKS, b"amr-1", b"ack"), (EVENTS, b"amr-2", b"lost")])

    records = await read_all(bus, [EVENTS, COMMAND_ACKS], "alerts", 3)

    assert sorted((r.topic, r.key, r.value) for r in records) == [
        (COMMAND_ACKS, b"amr-1", b"ack"),
        (EVENTS, b"amr-1", b"estop"),
        (EVENTS, b"amr-2", b"lost"),
    ]


@pytest.mark.timeout(60)
async def test_every_group_gets_every_record(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=PARTITIONS)
    sent = telemetry(per_device=2)
    await bus.produce_many(sent)

    writer = await read_all(bus, [TELEMETRY_RAW], "writer", len(sent))
    alerts = await read_all(bus, [TELEMETRY_RAW], "alerts", len(sent))

    expected = sorted((key, value) for _, key, value in sent)
    assert sorted((r.key, r.value) for r in writer) == expected
    assert sorted((r.key, r.value) for r in alerts) == expected


@pytest.mark.timeout(60)
async def test_uncommitted_records_go_to_the_next_member_of_the_group(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=PARTITIONS)
    sent = telemetry(per_device=1)
    await bus.produce_many(sent)

    async with bus.consumer([TELEMETRY_RAW], group="writer") as first:
        read_once = await poll_until(first, len(sent))  # "crashes" before committing
    async with bus.consumer([TELEMETRY_RAW], group="writer") as second:
        read_again = await poll_until(second, len(sent))
        await second.commit()
    async with bus.consumer([TELEMETRY_RAW], group="writer") as third:
        assert await third.poll(timeout_s=1.0) == []

    assert sorted((r.key, r.value) for r in read_again) == sorted(
        (r.key, r.value) for r in read_once
    )


@pytest.mark.timeout(60)
async def test_commit_covers_exactly_what_poll_returned(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=1)
    await bus.produce_many([(EVENTS, b"amr-1", str(n).encode()) for n in range(6)])

    async with bus.consumer([EVENTS], group="alerts") as first:
        head = await poll_until(first, 2, max_records=2)
        await first.commit()
    tail = await read_all(bus, [EVENTS], "alerts", 4)

    assert [r.value for r in head] == [b"0", b"1"]
    assert [r.value for r in tail] == [b"2", b"3", b"4", b"5"]


@pytest.mark.timeout(60)
async def test_lag_counts_what_is_not_yet_polled(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=1)
    await bus.produce_many([(EVENTS, b"amr-1", str(n).encode()) for n in range(6)])
    async with bus.consumer([EVENTS], group="lagging") as consumer:
        await poll_until(consumer, 2, max_records=2)
        assert consumer.lag() == {EVENTS: 4}
        await consumer.commit()  # committing does not change what is left to read
        assert consumer.lag() == {EVENTS: 4}
        await poll_until(consumer, 4)
        assert consumer.lag() == {EVENTS: 0}


@pytest.mark.timeout(30)
async def test_poll_returns_nothing_after_its_timeout(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=PARTITIONS)
    async with bus.consumer([EVENTS], group="alerts") as consumer:
        started = time.monotonic()
        assert await consumer.poll(timeout_s=0.3) == []
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 2.3


@pytest.mark.timeout(30)
async def test_a_stopped_bus_refuses_work_and_ends_its_consumers(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=PARTITIONS)
    async with bus.consumer([EVENTS], group="alerts") as consumer:
        await bus.stop()
        with pytest.raises(BusClosed) as closed:
            await consumer.poll(timeout_s=0.1)
        assert closed.value.retriable is False
    with pytest.raises(BusClosed):
        await bus.produce(EVENTS, key=b"amr-1", value=b"late")


@pytest.mark.timeout(60)
async def test_latest_readers_each_see_every_partition_from_now_on(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=PARTITIONS)
    before = telemetry(per_device=2)  # produced before the readers: they never see it
    await bus.produce_many(before)
    async with (
        bus.consumer([TELEMETRY_RAW], group="live", start="latest") as first,
        bus.consumer([TELEMETRY_RAW], group="live", start="latest") as second,
        bus.consumer([TELEMETRY_RAW], group="live") as member,  # an ordinary group member
    ):
        after = [(t, k, b"new:" + v) for t, k, v in telemetry(per_device=3)]
        await bus.produce_many(after)

        for reader in (first, second):
            records = await poll_until(reader, len(after))
            await reader.commit()  # commits nothing, and does not fail
            assert sorted(r.value for r in records) == sorted(v for _, _, v in after)
            assert await reader.poll(timeout_s=0.3) == []
        # The group's own member is untouched by the readers: it starts from the oldest.
        everything = await poll_until(member, len(before) + len(after))
        assert [r.value for r in everything].count(b"amr-0:0") == 1
