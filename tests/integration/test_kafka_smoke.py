"""Kafka round trip: keyed records land in the key's partition and keep per-key order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

TIMEOUT_S = 15
PARTITIONS = 3
DEVICES = [f"amr-{n}" for n in range(6)]
PER_DEVICE = 5
T = TypeVar("T")


async def within(awaitable: Awaitable[T]) -> T:
    """Every network await gets a deadline: aiokafka can otherwise wait forever."""
    return await asyncio.wait_for(awaitable, TIMEOUT_S)


@asynccontextmanager
async def smoke_topic(bootstrap: str, name: str) -> AsyncIterator[str]:
    """Create `name` with three partitions and delete it afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    await within(admin.start())
    try:
        await within(
            admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
        )
        yield name
    finally:
        try:
            await within(admin.delete_topics([name]))
        finally:
            await within(admin.close())


async def produce(bootstrap: str, name: str) -> dict[tuple[str, int], int]:
    """Send PER_DEVICE records per device, keyed by device id; return the partition of each."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=TIMEOUT_S * 1000,
    )
    await within(producer.start())
    try:
        partitions = {}
        for seq in range(PER_DEVICE):
            for device in DEVICES:
                meta = await within(
                    producer.send_and_wait(name, key=device.encode(), value=str(seq).encode())
                )
                partitions[(device, seq)] = meta.partition
        return partitions
    finally:
        await within(producer.stop())


async def consume_all(bootstrap: str, name: str, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `count` records of `name` from the beginning."""
    consumer = AIOKafkaConsumer(
        name,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await within(consumer.start())
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while len(records) < count:
                batches = await consumer.getmany(timeout_ms=500)
                for batch in batches.values():
                    records.extend(batch)
        return records
    finally:
        await within(consumer.stop())


@pytest.mark.timeout(90)
async def test_keyed_records_keep_partition_and_order(kafka_bootstrap: str, run_id: str) -> None:
    expected_partition = {
        device: DefaultPartitioner()(device.encode(), list(range(PARTITIONS)), [])
        for device in DEVICES
    }
    assert len(set(expected_partition.values())) > 1, "devices should spread over partitions"

    async with smoke_topic(kafka_bootstrap, f"smoke-{run_id}") as name:
        sent = await produce(kafka_bootstrap, name)
        records = await consume_all(kafka_bootstrap, name, len(sent))

    assert all(sent[(d, s)] == expected_partition[d] for d, s in sent)
    assert len(records) == len(DEVICES) * PER_DEVICE
    seen: defaultdict[str, list[int]] = defaultdict(list)
    for record in records:
        assert record.key is not None
        assert record.value is not None
        device = record.key.decode()
        assert record.partition == expected_partition[device], device
        seen[device].append(int(record.value))
    assert seen == {device: list(range(PER_DEVICE)) for device in DEVICES}
