"""PostgreSQL schema helpers for the storage integration tests."""

from __future__ import annotations

import asyncpg

TIMEOUT_S = 10


async def drop_schema(dsn: str, schema: str) -> None:
    """DROP SCHEMA ... CASCADE with a plain asyncpg connection."""
    conn = await asyncpg.connect(dsn, timeout=TIMEOUT_S)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', timeout=TIMEOUT_S)
    finally:
        await conn.close(timeout=TIMEOUT_S)
