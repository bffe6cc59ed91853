"""The shared storage behaviour on PostgreSQL (scale mode), plus PostgreSQL specifics."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from hub.storage.db import create_engine, session_factory
from hub.storage.errors import StorageError
from hub.storage.migrate import alembic_config, migrate, schema_drift
from hub.storage.models import Telemetry, table_of
from hub.storage.repositories import store_envelopes
from hub.storage.repositories.bulk import Strategy, insert_ignore
from tests.hub.storage.behaviour import StorageBehaviour
from tests.hub.storage.support import Db, telemetry
from tests.integration.hub.storage.schemas import drop_schema


class TestOnPostgres(StorageBehaviour):
    """Every shared behaviour, on the real PostgreSQL."""

    @pytest.fixture
    def db(self, pg_db: Db) -> Db:
        return pg_db


@pytest.mark.parametrize("strategy", list(Strategy))
async def test_every_bulk_strategy_inserts_once_and_counts(pg_db: Db, strategy: Strategy) -> None:
    rows = [
        {
            "device": "amr-1",
            "stream": "s1",
            "seq": n // 10,
            "idx": n % 10,
            "ts": telemetry(1).ts,
            "metric": "cpu",
            "value": float(n),
            "tags": {"n": str(n)},
        }
        for n in range(2500)
    ]
    table = table_of(Telemetry)
    async with pg_db.sessions() as session, session.begin():
        first = await insert_ignore(session, table=table, rows=rows, strategy=strategy)
        again = await insert_ignore(session, table=table, rows=rows[:700], strategy=strategy)
    async with pg_db.sessions() as session, session.begin():
        later = await insert_ignore(session, table=table, rows=rows[-5:], strategy=strategy)

    assert (first, again, later) == (2500, 0, 0)
    stored = await pg_db.rows("telemetry", "seq", "idx")
    assert [r["tags"] for r in stored[:2]] == [{"n": "0"}, {"n": "1"}]
    assert stored[-1]["value"] == 2499.0


async def test_copy_works_again_after_a_rolled_back_copy(pg_db: Db) -> None:
    batch = [telemetry(seq, *(float(i) for i in range(300))) for seq in range(1, 6)]  # 1500 rows
    async with pg_db.sessions() as session:
        await store_envelopes(session, envelopes=batch)
        await session.rollback()
    assert await pg_db.count("telemetry") == 0
    result = await pg_db.store(*batch)
    assert result.tables["telemetry"].inserted == 1500
    assert await pg_db.count("telemetry") == 1500


async def test_tables_live_in_the_run_schema_only(pg_db: Db, pg_schema: str, pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        found = await conn.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'stream_marks'"
        )
        method = await conn.fetchval(
            "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'ix_telemetry_ts' AND n.nspname = $1",
            pg_schema,
        )
    finally:
        await conn.close()
    assert pg_schema in [r["table_schema"] for r in found]
    assert "public" not in [r["table_schema"] for r in found]
    assert method == "brin"


async def test_migrate_creates_a_missing_schema_and_is_idempotent(pg_dsn: str, run_id: str) -> None:
    schema = f"hub_storage_{run_id}_{secrets.token_hex(2)}"
    url = f"{pg_dsn}?schema={schema}"
    try:
        await asyncio.gather(migrate(url), migrate(url))  # two processes starting together
        await migrate(url)
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                version = (
                    await conn.execute(text("SELECT version_num FROM alembic_version"))
                ).all()
            assert await schema_drift(engine) == []
        finally:
            await engine.dispose()
    finally:
        await drop_schema(pg_dsn, schema)
    assert version == [(ScriptDirectory.from_config(alembic_config()).get_current_head(),)]


async def test_parallel_stores_of_the_same_batch_insert_once(pg_db: Db) -> None:
    batch = [telemetry(seq, *(float(i) for i in range(100))) for seq in range(1, 6)]
    results = await asyncio.gather(*(pg_db.store(*batch) for _ in range(4)))
    assert sum(r.tables["telemetry"].inserted for r in results) == 500
    assert await pg_db.count("telemetry") == 500


async def test_an_unreachable_server_is_a_retriable_storage_error() -> None:
    engine = create_engine("postgresql://outpost@127.0.0.1:1/outpost")
    sessions = session_factory(engine)
    try:
        with pytest.raises(StorageError) as caught:
            async with sessions() as session, session.begin():
                await store_envelopes(session, envelopes=[telemetry(1)])
    finally:
        await engine.dispose()
    assert caught.value.retriable is True
