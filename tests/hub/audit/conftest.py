"""An app on a migrated SQLite file of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from tests.hub.auth.support import Hub, running_hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub app on SQLite, no users yet."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    try:
        await migrate(engine)
        async with running_hub(engine, tmp_path / "data") as running:
            yield running
    finally:
        await engine.dispose()
