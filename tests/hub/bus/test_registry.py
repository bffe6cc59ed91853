"""`create_bus`, the topic table and the error tree."""

from __future__ import annotations

import doctest
import importlib

import pytest

from hub.bus import BusClosed, BusConfigError, BusError, BusRejected, create_bus
from hub.bus.kafka import KafkaBus
from hub.bus.memory import InMemoryBus
from hub.bus.topics import ALL_TOPICS, TOPIC_BY_CHANNEL, unprefixed
from hub.errors import HubError
from protocol.topics import UPLINK_CHANNELS, Channel

MODULES = [
    "hub.bus",
    "hub.bus.base",
    "hub.bus.topics",
    "hub.bus.partitioner",
    "hub.bus.memory",
    "hub.bus.kafka",
    "hub.bus.kafka_admin",
]


def test_memory_bus_defaults_to_one_partition() -> None:
    bus = create_bus("memory", topic_prefix="t1.")
    assert isinstance(bus, InMemoryBus)
    assert (bus.partitions, bus.topic_prefix) == (1, "t1.")


def test_kafka_bus_takes_the_settings() -> None:
    bus = create_bus("kafka", bootstrap="127.0.0.1:1", topic_prefix="t1.", timeout_s=2.5)
    assert isinstance(bus, KafkaBus)
    assert (bus.bootstrap, bus.topic_prefix, bus.partitions, bus.timeout_s) == (
        "127.0.0.1:1",
        "t1.",
        6,
        2.5,
    )


def test_kafka_bus_without_an_address_is_a_config_error() -> None:
    with pytest.raises(BusConfigError, match="bootstrap"):
        create_bus("kafka")


def test_an_unknown_kind_names_the_allowed_ones() -> None:
    with pytest.raises(BusConfigError, match="allowed: kafka, memory"):
        create_bus("redis")  # type: ignore[arg-type]


def test_retriable_says_whether_trying_again_can_help() -> None:
    assert issubclass(BusError, HubError)
    assert BusError.retriable is True
    assert (BusClosed.retriable, BusRejected.retriable, BusConfigError.retriable) == (
        False,
        False,
        False,
    )


def test_every_uplink_channel_has_a_topic() -> None:
    assert set(TOPIC_BY_CHANNEL) == UPLINK_CHANNELS
    assert TOPIC_BY_CHANNEL[Channel.STATE] == "device.state"
    assert set(TOPIC_BY_CHANNEL.values()) <= set(ALL_TOPICS)
    assert len(set(ALL_TOPICS)) == len(ALL_TOPICS) == 14


def test_unprefixed_leaves_foreign_names_alone() -> None:
    assert unprefixed("t1.", "t1.commands") == "commands"
    assert unprefixed("t1.", "other.commands") == "other.commands"
    assert unprefixed("", "commands") == "commands"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
