"""The shared storage behaviour on SQLite (the embedded default), plus SQLite specifics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from hub.storage.db import create_engine, session_factory, transaction
from hub.storage.errors import StorageError
from hub.storage.migrate import alembic_config, migrate
from hub.storage.repositories import store_envelopes
from tests.hub.storage.behaviour import StorageBehaviour
from tests.hub.storage.support import Db, telemetry


class TestOnSQLite(StorageBehaviour):
    """Every shared behaviour, on a SQLite file."""

    @pytest.fixture
    def db(self, sqlite_db: Db) -> Db:
        return sqlite_db


async def test_connections_use_wal_normal_sync_foreign_keys_and_a_busy_timeout(
    sqlite_db: Db,
) -> None:
    async with sqlite_db.engine.connect() as conn:
        values = [
            (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        ]
    assert values == ["wal", 1, 1, 10_000]


async def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'hub.db'}"  # the folder is created
    await migrate(url)
    await migrate(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    finally:
        await engine.dispose()
    assert version == [(ScriptDirectory.from_config(alembic_config()).get_current_head(),)]


async def test_concurrent_writers_wait_for_each_other(sqlite_db: Db) -> None:
    # BEGIN IMMEDIATE + busy timeout: parallel transactions queue instead of failing.
    async def write(seq: int) -> None:
        await sqlite_db.store(telemetry(seq, *(float(i) for i in range(200))))
        await sqlite_db.advance(("amr-1", "s1"))

    await asyncio.gather(*(write(seq) for seq in range(1, 9)))

    assert await sqlite_db.count("telemetry") == 1600
    async with sqlite_db.engine.connect() as conn:
        mark = (await conn.execute(text("SELECT seq FROM stream_marks"))).scalar_one()
    assert mark == 8


async def test_a_session_factory_keeps_objects_usable_after_commit(sqlite_db: Db) -> None:
    sessions = session_factory(sqlite_db.engine)
    assert sessions.kw["expire_on_commit"] is False


async def test_a_transaction_commits_on_success_and_wraps_database_errors(sqlite_db: Db) -> None:
    async with transaction(sqlite_db.sessions) as session:
        await store_envelopes(session, envelopes=[telemetry(1)])

    async def store_then_fail() -> None:
        async with transaction(sqlite_db.sessions) as session:
            await store_envelopes(session, envelopes=[telemetry(2)])
            await session.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(StorageError) as caught:
        await store_then_fail()
    assert caught.value.retriable is False
    assert [r["seq"] for r in await sqlite_db.rows("telemetry")] == [1]  # 2 was rolled back
