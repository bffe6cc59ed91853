"""`sites.layout` (migration 0010) on SQLite: stored, cleared to SQL NULL, and downgraded
without touching the rows that reference `sites`."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text

from hub.storage.db import transaction
from hub.storage.migrate import alembic_config, migrate, schema_drift
from hub.storage.repositories import assets as repo
from tests.hub.storage.support import Db

NOW = datetime(2026, 12, 10, tzinfo=UTC)
LAYOUT = {"width_m": 40.0, "height_m": 24.0, "zones": [], "spots": []}


async def _layout_is_null(db: Db) -> bool:
    async with db.engine.connect() as conn:
        return bool((await conn.execute(text("SELECT layout IS NULL FROM sites"))).scalar_one())


async def test_a_layout_is_stored_and_cleared_to_sql_null(sqlite_db: Db) -> None:
    async with transaction(sqlite_db.sessions) as session:
        await repo.insert_site(session, site_id="plant-a", name="A", now=NOW)
        placed = await repo.set_site_layout(session, site_id="plant-a", layout=LAYOUT)
        missing = await repo.set_site_layout(session, site_id="plant-z", layout=LAYOUT)
    assert placed is not None
    assert (placed.layout, missing) == (LAYOUT, None)
    async with transaction(sqlite_db.sessions) as session:
        cleared = await repo.set_site_layout(session, site_id="plant-a", layout=None)
        listed = await repo.list_sites(session, sites=None)
    assert cleared is not None
    assert [cleared.layout, *(s.layout for s in listed)] == [None, None]
    assert await _layout_is_null(sqlite_db)  # no layout is NULL, not the JSON `null`


async def test_the_downgrade_keeps_sites_and_their_groups(sqlite_db: Db) -> None:
    async with transaction(sqlite_db.sessions) as session:
        await repo.insert_site(session, site_id="plant-a", name="A", now=NOW)
        await repo.insert_group(session, site_id="plant-a", name="line 1", now=NOW)
        await repo.set_site_layout(session, site_id="plant-a", layout=LAYOUT)
    async with sqlite_db.engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0009"))
    assert (await sqlite_db.count("sites"), await sqlite_db.count("device_groups")) == (1, 1)

    await migrate(sqlite_db.engine)
    assert await schema_drift(sqlite_db.engine) == []
    assert await _layout_is_null(sqlite_db)
