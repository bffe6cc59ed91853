"""What only the Kafka bus does: create topics, and fail in time when Kafka is not there."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from hub.bus.base import BusClosed, BusError
from hub.bus.kafka import KafkaBus
from hub.bus.kafka_admin import partition_counts
from hub.bus.topics import ALL_TOPICS, EVENTS
from tests.integration.hub.bus.conftest import PrivateKafka, free_port, unique_prefix

TIMEOUT_S = 2.0
SLACK_S = 2.0


@pytest.mark.timeout(60)
async def test_start_creates_every_topic_with_the_configured_partitions(
    kafka_bootstrap: str, kafka_prefix: str
) -> None:
    prefix = unique_prefix(kafka_prefix)
    names = [prefix + t for t in ALL_TOPICS]
    assert await partition_counts(kafka_bootstrap, names) == {}

    for _ in range(2):  # the second start finds them all there: fine
        bus = KafkaBus(kafka_bootstrap, topic_prefix=prefix, partitions=4)
        await bus.start()
        await bus.probe()
        await bus.stop()

    assert await partition_counts(kafka_bootstrap, names) == dict.fromkeys(names, 4)


async def assert_start_fails_in_time(bootstrap: str, match: str) -> None:
    bus = KafkaBus(bootstrap, timeout_s=TIMEOUT_S)
    started = time.monotonic()
    with pytest.raises(BusError, match=match) as caught:
        await bus.start()
    assert time.monotonic() - started < TIMEOUT_S + SLACK_S
    assert caught.value.retriable
    with pytest.raises(BusClosed):
        await bus.produce(EVENTS, key=b"amr-1", value=b"x")


@pytest.mark.timeout(30)
async def test_start_against_a_closed_port_fails_fast() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    await assert_start_fails_in_time(bootstrap, f"Kafka at {bootstrap}: .* failed")


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """An address that accepts TCP connections and never answers (a hung broker)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.timeout(30)
async def test_start_against_a_silent_broker_times_out(silent_listener: str) -> None:
    await assert_start_fails_in_time(silent_listener, f"Kafka at {silent_listener}: .*timed out")


async def produce_until_it_works(bus: KafkaBus, deadline_s: float) -> list[BusError]:
    """Retry a failed produce as a caller would; return the failures before it worked."""
    failures: list[BusError] = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            await bus.produce(EVENTS, key=b"amr-1", value=b"after")
        except BusError as exc:
            failures.append(exc)
            await asyncio.sleep(0.5)
        else:
            return failures
    pytest.fail(f"Kafka did not come back within {deadline_s} s: {failures[-1:]}")


@pytest.mark.timeout(150)
async def test_produce_fails_in_time_while_kafka_is_down_and_works_when_it_is_back(
    private_kafka: PrivateKafka,
) -> None:
    bus = KafkaBus(private_kafka.bootstrap, partitions=1, timeout_s=TIMEOUT_S)
    await bus.start()
    try:
        await bus.produce(EVENTS, key=b"amr-1", value=b"before")
        private_kafka.stop()

        started = time.monotonic()
        with pytest.raises(BusError, match=f"Kafka at {private_kafka.bootstrap}") as caught:
            await bus.produce(EVENTS, key=b"amr-1", value=b"during")
        assert time.monotonic() - started < TIMEOUT_S + SLACK_S
        assert caught.value.retriable

        private_kafka.start()
        failures = await produce_until_it_works(bus, deadline_s=60)
        assert all(f.retriable for f in failures)
    finally:
        await bus.stop()
