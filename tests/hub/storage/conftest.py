"""Fixtures for the storage tests on SQLite files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.storage.db import create_engine, session_factory
from hub.storage.migrate import migrate
from tests.hub.storage.support import Db


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Db]:
    """A migrated SQLite file of this test's own."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    try:
        await migrate(engine)
        yield Db(engine, session_factory(engine))
    finally:
        await engine.dispose()
