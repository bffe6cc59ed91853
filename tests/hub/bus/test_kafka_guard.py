"""Every Kafka await gets a deadline, and aiokafka's errors become `BusError`s."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.codec import has_lz4
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    UnsupportedCodecError,
)

from hub.bus._kafka_guard import guarded
from hub.bus.base import BusConfigError, BusError, BusRejected
from hub.bus.kafka import KafkaBus, ProducerTuning
from hub.bus.kafka_admin import delete_prefixed_topics

ADDRESS = "10.9.8.7:9092"


async def test_a_hanging_await_becomes_a_retriable_bus_error_in_time() -> None:
    started = time.monotonic()
    with pytest.raises(BusError, match=f"Kafka at {ADDRESS}: producing timed out after 0.2 s"):
        async with guarded(ADDRESS, "producing", 0.2):
            await asyncio.Event().wait()
    assert time.monotonic() - started < 1.0


async def test_a_cancellation_from_inside_aiokafka_is_a_retriable_bus_error() -> None:
    """A future aiokafka cancels itself (broker restart) must not end the caller's task."""
    inner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, inner.cancel)
    with pytest.raises(BusError, match="committing offsets was interrupted inside aiokafka"):
        async with guarded(ADDRESS, "committing offsets", 5.0):
            await inner


async def test_cancelling_the_caller_still_cancels_it() -> None:
    async def polls() -> None:
        async with guarded(ADDRESS, "polling", 5.0):
            await asyncio.Event().wait()

    task = asyncio.create_task(polls())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (KafkaConnectionError("refused"), BusError),
        (NotEnoughReplicasError(), BusError),
        (MessageSizeTooLargeError(), BusRejected),
        (UnsupportedCodecError("no lz4"), BusRejected),
        (ConnectionRefusedError(111, "refused"), BusError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v.__name__,
)
async def test_errors_are_wrapped_with_the_address(error: Exception, kind: type[BusError]) -> None:
    with pytest.raises(kind, match=f"Kafka at {ADDRESS}: starting failed") as caught:
        async with guarded(ADDRESS, "starting", 1.0):
            raise error
    assert type(caught.value) is kind
    assert caught.value.__cause__ is error


async def test_a_kafka_bus_refuses_work_before_start() -> None:
    bus = KafkaBus(ADDRESS)
    with pytest.raises(BusError, match="not started"):
        await bus.produce("commands", key=b"amr-1", value=b"x")
    assert bus.tuning == ProducerTuning()


def test_an_unknown_compression_is_a_config_error() -> None:
    with pytest.raises(BusConfigError, match="allowed: none, gzip, lz4"):
        KafkaBus(ADDRESS, tuning=ProducerTuning(compression_type="brotli"))


def test_lz4_is_accepted_only_with_its_library() -> None:
    tuning = ProducerTuning(compression_type="lz4")
    if has_lz4():
        assert KafkaBus(ADDRESS, tuning=tuning).tuning.compression_type == "lz4"
    else:
        with pytest.raises(BusConfigError, match="'lz4' needs its Python package"):
            KafkaBus(ADDRESS, tuning=tuning)


@pytest.mark.parametrize("kwargs", [{"partitions": 0}, {"timeout_s": 0}], ids=["parts", "timeout"])
def test_nonsense_settings_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(BusConfigError, match="must be positive"):
        KafkaBus(ADDRESS, **kwargs)  # type: ignore[arg-type]


async def test_deleting_topics_needs_a_prefix() -> None:
    with pytest.raises(BusRejected, match="without a prefix"):
        await delete_prefixed_topics(ADDRESS, "")
