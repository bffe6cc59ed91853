"""An alert rig on a SQLite file of each test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from tests.hub.alerts.rig import AlertRig, alert_rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[AlertRig]:
    """The rig on SQLite."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    try:
        await migrate(engine)
        async with alert_rig(engine, tmp_path / "data") as running:
            yield running
    finally:
        await engine.dispose()
