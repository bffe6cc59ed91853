"""Fixtures for the storage tests on the real PostgreSQL, in a schema of this run's own.

The schema `hub_storage_<run_id>` is created and migrated once per run and dropped
at the end; every test starts from empty tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from hub.storage.db import create_engine, session_factory
from hub.storage.migrate import migrate
from tests.hub.storage.support import Db
from tests.integration.hub.storage.schemas import drop_schema


async def _migrate(dsn: str, schema: str) -> None:
    engine = create_engine(dsn, schema=schema)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_schema(pg_dsn: str, run_id: str) -> Iterator[str]:
    """A migrated schema for this run, dropped afterwards."""
    schema = f"hub_storage_{run_id}"
    try:
        asyncio.run(_migrate(pg_dsn, schema))
        yield schema
    finally:
        asyncio.run(drop_schema(pg_dsn, schema))


@pytest.fixture
async def pg_db(pg_dsn: str, pg_schema: str) -> AsyncIterator[Db]:
    """The run's schema, emptied, behind a fresh engine."""
    engine = create_engine(pg_dsn, schema=pg_schema)
    db = Db(engine, session_factory(engine))
    try:
        await db.clear()
        yield db
    finally:
        await engine.dispose()
