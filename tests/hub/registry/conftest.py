"""A SQLite hub whose model assignments go to a `FakeRetainedPublisher`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.settings import RegistrySection
from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from tests.hub.auth.support import Hub, running_hub
from tests.hub.registry.support import FakeRetainedPublisher, registry


@pytest.fixture
def publisher() -> FakeRetainedPublisher:
    """What the hub publishes retained, and a switch to make publishing fail."""
    return FakeRetainedPublisher()


@pytest.fixture
async def hub(tmp_path: Path, publisher: FakeRetainedPublisher) -> AsyncIterator[Hub]:
    """A hub app on SQLite, with no canary health window (tests do not wait)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    try:
        await migrate(engine)
        async with running_hub(engine, tmp_path / "data", publisher=publisher) as running:
            registry(running).settings = RegistrySection(canary_health_s=0)
            yield running
    finally:
        await engine.dispose()
