"""PostgreSQL round trip with asyncpg and SQLAlchemy async, in a schema of this run's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import create_async_engine

TIMEOUT_S = 10

# The idempotency key of DESIGN.md: (device, stream, seq).
CREATE_TABLE = """
CREATE TABLE telemetry (
    device text NOT NULL,
    stream text NOT NULL,
    seq bigint NOT NULL,
    metric text NOT NULL,
    value double precision NOT NULL,
    UNIQUE (device, stream, seq)
)
"""
INSERT_IDEMPOTENT = """
INSERT INTO telemetry (device, stream, seq, metric, value) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (device, stream, seq) DO NOTHING
"""


@pytest.fixture
async def schema(pg_dsn: str, run_id: str) -> AsyncIterator[str]:
    """A fresh schema `smoke_<run_id>`, dropped with everything in it afterwards."""
    name = f"smoke_{run_id}"
    conn = await asyncpg.connect(pg_dsn, timeout=TIMEOUT_S)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"', timeout=TIMEOUT_S)
        yield name
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE', timeout=TIMEOUT_S)
        await conn.close(timeout=TIMEOUT_S)


@pytest.mark.timeout(60)
async def test_asyncpg_insert_is_idempotent_and_copy_loads_rows(pg_dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(
        pg_dsn,
        timeout=TIMEOUT_S,
        command_timeout=TIMEOUT_S,
        server_settings={"search_path": schema},
    )
    try:
        await conn.execute(CREATE_TABLE)
        first = await conn.execute(INSERT_IDEMPOTENT, "amr-1", "s1", 1, "cpu", 0.5)
        again = await conn.execute(INSERT_IDEMPOTENT, "amr-1", "s1", 1, "cpu", 0.9)
        copied = await conn.copy_records_to_table(
            "telemetry",
            records=[("amr-2", "s1", seq, "cpu", seq / 10) for seq in range(100)],
            columns=["device", "stream", "seq", "metric", "value"],
            schema_name=schema,
        )
        rows = await conn.fetch("SELECT device, seq, value FROM telemetry ORDER BY device, seq")
    finally:
        await conn.close(timeout=TIMEOUT_S)

    assert (first, again, copied) == ("INSERT 0 1", "INSERT 0 0", "COPY 100")
    assert len(rows) == 101
    assert tuple(rows[0]) == ("amr-1", 1, 0.5)  # the re-send did not overwrite the first write
    assert [r["seq"] for r in rows[1:]] == list(range(100))


@pytest.mark.timeout(60)
async def test_sqlalchemy_async_on_conflict_do_nothing(pg_dsn: str, schema: str) -> None:
    metadata = MetaData(schema=schema)
    telemetry = Table(
        "telemetry_sa",
        metadata,
        Column("device", String, nullable=False),
        Column("stream", String, nullable=False),
        Column("seq", BigInteger, nullable=False),
        Column("value", Float, nullable=False),
        Column("ts", DateTime(timezone=True), nullable=False),
        UniqueConstraint("device", "stream", "seq"),
    )
    url = pg_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(
        url, connect_args={"timeout": TIMEOUT_S, "command_timeout": TIMEOUT_S}
    )
    ts = datetime.now(tz=UTC)
    rows = [
        {"device": "amr-1", "stream": "s1", "seq": n, "value": n * 1.5, "ts": ts} for n in range(10)
    ]
    try:
        async with asyncio.timeout(TIMEOUT_S):
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
                # executemany reports no rowcount; RETURNING names the rows actually written.
                statement = (
                    insert(telemetry)
                    .on_conflict_do_nothing(index_elements=["device", "stream", "seq"])
                    .returning(telemetry.c.seq)
                )
                inserted = (await conn.execute(statement, rows)).scalars().all()
                replayed = (await conn.execute(statement, rows[:5])).scalars().all()
            async with engine.connect() as conn:
                result = await conn.execute(
                    select(telemetry.c.seq, telemetry.c.value, telemetry.c.ts).order_by(
                        telemetry.c.seq
                    )
                )
                stored = [tuple(row) for row in result]
    finally:
        await engine.dispose()

    assert sorted(inserted) == list(range(10))
    assert replayed == []  # the re-sent rows were ignored, not duplicated or overwritten
    assert stored == [(n, n * 1.5, ts) for n in range(10)]
