"""The hub's message bus: `create_bus("memory")` embedded, `create_bus("kafka", …)` at scale.

Both implementations follow `hub.bus.base.Bus`; see docs/hub-bus.md for topics,
keys, delivery semantics and tuning.

Example:
    >>> bus = create_bus("memory", topic_prefix="t1.")
    >>> type(bus).__name__
    'InMemoryBus'
    >>> create_bus("kafka")
    Traceback (most recent call last):
    ...
    hub.bus.base.BusConfigError: the Kafka bus needs a bootstrap address (host:port)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from hub.bus.base import (
    Bus,
    BusClosed,
    BusConfigError,
    BusError,
    BusRejected,
    Consumer,
    ProducerRecord,
    Record,
    SlotListener,
)

BusKind = Literal["memory", "kafka"]

__all__ = [
    "Bus",
    "BusClosed",
    "BusConfigError",
    "BusError",
    "BusKind",
    "BusOptions",
    "BusRejected",
    "Consumer",
    "ProducerRecord",
    "Record",
    "SlotListener",
    "create_bus",
]


@dataclass(frozen=True, slots=True)
class BusOptions:
    """What `create_bus` passes to a backend; `partitions=None` means the backend's default."""

    bootstrap: str = ""
    topic_prefix: str = ""
    partitions: int | None = None
    timeout_s: float = 10.0
    replication_factor: int = 1


def _memory(options: BusOptions) -> Bus:
    from hub.bus.memory import DEFAULT_PARTITIONS, InMemoryBus

    return InMemoryBus(
        topic_prefix=options.topic_prefix,
        partitions=options.partitions or DEFAULT_PARTITIONS,
    )


def _kafka(options: BusOptions) -> Bus:
    # Imported here so the embedded mode never loads aiokafka.
    from hub.bus.kafka import DEFAULT_PARTITIONS, KafkaBus

    return KafkaBus(
        options.bootstrap,
        topic_prefix=options.topic_prefix,
        partitions=options.partitions or DEFAULT_PARTITIONS,
        replication_factor=options.replication_factor,
        timeout_s=options.timeout_s,
    )


BACKENDS: dict[str, Callable[[BusOptions], Bus]] = {"memory": _memory, "kafka": _kafka}
"""The bus backends by kind (CONVENTIONS: plugins as an explicit registry)."""


def create_bus(
    kind: BusKind,
    *,
    bootstrap: str = "",
    topic_prefix: str = "",
    partitions: int | None = None,
    timeout_s: float = 10.0,
    replication_factor: int = 1,
) -> Bus:
    """A stopped bus of `kind`; `partitions=None` picks 1 (memory) or 6 (kafka).

    `replication_factor` applies to the Kafka topics `start()` creates (use 3 in production).
    """
    factory = BACKENDS.get(kind)
    if factory is None:
        allowed = ", ".join(sorted(BACKENDS))
        raise BusConfigError(f"unknown bus kind {kind!r}; allowed: {allowed}")
    return factory(BusOptions(bootstrap, topic_prefix, partitions, timeout_s, replication_factor))
