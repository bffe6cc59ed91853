"""Fixtures for the bus against real Kafka: per-run topic prefix, buses, a private broker."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from hub.bus.base import Bus
from hub.bus.kafka import KafkaBus
from hub.bus.kafka_admin import delete_prefixed_topics
from hub.bus.memory import InMemoryBus
from tests.integration.conftest import REPO_ROOT

_SUFFIXES = itertools.count()


@pytest.fixture(scope="session")
def kafka_prefix(kafka_bootstrap: str, run_id: str) -> Iterator[str]:
    """`t{run_id}.`: this run's topics live under it and are deleted at the end of the run."""
    prefix = f"t{run_id}."
    yield prefix
    asyncio.run(delete_prefixed_topics(kafka_bootstrap, prefix))


def unique_prefix(kafka_prefix: str) -> str:
    """A prefix of its own for one test, inside this run's prefix."""
    return f"{kafka_prefix}{next(_SUFFIXES)}."


@pytest.fixture(params=["memory", "kafka"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Awaitable[Bus]]]:
    """`await make_bus(partitions=N)`: a started bus of the parametrized kind, own prefix."""
    kafka = request.param == "kafka"
    bootstrap = request.getfixturevalue("kafka_bootstrap") if kafka else ""
    run_prefix = request.getfixturevalue("kafka_prefix") if kafka else ""
    buses: list[Bus] = []

    async def make(*, partitions: int = 1) -> Bus:
        bus: Bus
        if kafka:
            bus = KafkaBus(bootstrap, topic_prefix=unique_prefix(run_prefix), partitions=partitions)
        else:
            bus = InMemoryBus(partitions=partitions)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.stop()


def free_port() -> int:
    """A loopback TCP port nobody listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateKafka:
    """A single-node Kafka of the test's own (deploy/dev/services, temp dir), to stop at will."""

    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            "OUTPOST_DEV_DIR": str(state_dir),
            "OUTPOST_DEV_KAFKA_PORT": str(self.port),
            "OUTPOST_DEV_KAFKA_CONTROLLER_PORT": str(free_port()),
        }

    def _services(self, action: str) -> None:
        subprocess.run(
            [str(REPO_ROOT / "deploy/dev/services"), action, "kafka"],
            env=self._env,
            check=True,
            capture_output=True,
            timeout=90,
        )

    def start(self) -> None:
        """Start (or restart, keeping its data) the broker; returns once it answers."""
        self._services("start")

    def stop(self) -> None:
        """Stop the broker (idempotent)."""
        self._services("stop")


@pytest.fixture
def private_kafka(tmp_path: Path, kafka_bootstrap: str) -> Iterator[PrivateKafka]:
    """A started private broker, stopped after the test (needs what the shared one needs)."""
    broker = PrivateKafka(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
