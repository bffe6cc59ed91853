"""A SQLite hub whose commands go to a `FakePublisher` instead of a broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from tests.hub.auth.support import Hub, running_hub
from tests.hub.control.support import FakePublisher


@pytest.fixture
def publisher() -> FakePublisher:
    """What the hub publishes, and a switch to make publishing fail."""
    return FakePublisher()


@pytest.fixture
async def hub(tmp_path: Path, publisher: FakePublisher) -> AsyncIterator[Hub]:
    """A hub app on SQLite, no users yet, publishing to `publisher`."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    try:
        await migrate(engine)
        async with running_hub(engine, tmp_path / "data", publisher=publisher) as running:
            yield running
    finally:
        await engine.dispose()
