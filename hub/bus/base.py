"""The hub's message bus: one interface, an in-process and a Kafka implementation.

Producers call `produce`/`produce_many` with the plain topic names of
`hub.bus.topics`; each bus applies its own `topic_prefix`. `produce` returns only
once the record is durably held, so the hub may then acknowledge the device.
Consumers belong to a group, read with `poll` and `commit` after they have
stored what they read (at-least-once: writers must be idempotent).

Example:
    >>> import asyncio
    >>> from hub.bus import create_bus
    >>> async def demo() -> list[bytes]:
    ...     bus = create_bus("memory")
    ...     await bus.start()
    ...     await bus.produce("telemetry.raw", key=b"amr-7", value=b"{}")
    ...     async with bus.consumer(["telemetry.raw"], group="writer") as consumer:
    ...         records = await consumer.poll(timeout_s=0.1)
    ...         await consumer.commit()
    ...     await bus.stop()
    ...     return [r.key for r in records]
    >>> asyncio.run(demo())
    [b'amr-7']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Literal, Protocol, Self

from hub.errors import HubError

ProducerRecord = tuple[str, bytes, bytes]
"""`(topic, key, value)` as `produce_many` takes it; the topic is a plain name."""

Start = Literal["committed", "latest"]
"""Where a consumer begins: `committed` (its group's offsets, else the oldest record) or
`latest`: a reader of its own that sees every partition from now on, shares nothing with
other members of its group, and commits nothing (the API's live feed: each process reads all).
"""


class BusError(HubError):
    """The bus could not do what was asked: Kafka unreachable, timed out, too few replicas…"""

    retriable: ClassVar[bool] = True


class BusClosed(BusError):
    """The bus or consumer is not started, or was stopped: retrying cannot help."""

    retriable: ClassVar[bool] = False


class BusRejected(BusError):
    """Kafka refused the request for good (record too large, not authorised, bad topic…)."""

    retriable: ClassVar[bool] = False


class BusConfigError(BusError):
    """A bus asked for with settings that cannot work (unknown kind, no bootstrap address…)."""

    retriable: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Record:
    """One record read from the bus; `topic` is the plain name, without the bus's prefix."""

    topic: str
    key: bytes
    value: bytes
    partition: int
    offset: int
    timestamp_ms: int


class Consumer(Protocol):
    """A member of a consumer group; use it as an async context manager.

    Example:
        >>> async def drain(bus: Bus) -> None:  # doctest: +SKIP
        ...     async with bus.consumer(["telemetry.raw"], group="writer") as consumer:
        ...         while records := await consumer.poll(timeout_s=1.0):
        ...             await store(records)        # idempotent on (device, stream, seq)
        ...             await consumer.commit()     # only after the records are stored
    """

    async def __aenter__(self) -> Self:
        """Join the group; raise `BusError` if that cannot happen in time."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leave the group without committing: uncommitted records go to the next member."""
        ...

    async def poll(self, *, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        """Up to `max_records` records, waiting at most `timeout_s`; `[]` when none came."""
        ...

    async def commit(self) -> None:
        """Commit the offsets of everything `poll` has returned so far."""
        ...

    def lag(self) -> dict[str, int]:
        """Records on this member's partitions not yet returned by `poll`, per topic.

        As of the last poll (no network round); for metrics.
        """
        ...


class SlotListener(Protocol):
    """Told which of a shared set of slots this process holds (see `Bus.hold_slots`)."""

    async def claimed(self, slots: frozenset[int]) -> None:
        """These slots are now this process's, until `released`."""
        ...

    async def released(self, slots: frozenset[int]) -> None:
        """Stop using these slots before returning: another process may take them next."""
        ...


class Bus(Protocol):
    """The hub's message bus (see the module docstring for an example)."""

    async def start(self) -> None:
        """Connect and create missing topics; raise `BusError` within the bus's timeout."""
        ...

    async def stop(self) -> None:
        """Flush what is pending, close open consumers and disconnect."""
        ...

    async def produce(self, topic: str, *, key: bytes, value: bytes) -> None:
        """Return once the record is durably held; raise `BusError` within the timeout."""
        ...

    async def produce_many(self, records: Sequence[ProducerRecord]) -> None:
        """Send every `(topic, key, value)`, then return once all are durably held."""
        ...

    def consumer(
        self, topics: Sequence[str], *, group: str, start: Start = "committed"
    ) -> Consumer:
        """A new member of consumer group `group` reading `topics` (plain names).

        `start="latest"`: a private reader of every partition from the end (see `Start`).
        """
        ...

    async def hold_slots(
        self, name: str, *, slots: int, group: str, listener: SlotListener
    ) -> None:
        """Until cancelled or the bus fails: share slots `0..slots-1` of `name` with every
        other process holding them in `group`, each slot held by one process at a time.

        `listener` hears what this process gains and loses; every slot it was given is
        released (awaited) before this returns or raises, and before the bus gives it to
        another process. The embedded bus has one process, which holds them all.
        """
        ...
