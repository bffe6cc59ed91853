"""`make_bus` for the unit tests: a fresh started `InMemoryBus`, stopped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hub.bus.memory import InMemoryBus


@pytest.fixture
async def make_bus() -> AsyncIterator[Callable[..., Awaitable[InMemoryBus]]]:
    """`await make_bus(partitions=N)`: a started in-memory bus of its own."""
    buses: list[InMemoryBus] = []

    async def make(*, partitions: int = 1) -> InMemoryBus:
        bus = InMemoryBus(topic_prefix="unit.", partitions=partitions)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.stop()
