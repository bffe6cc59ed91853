"""Run the hub's Alembic migrations from code: no `alembic.ini` at run time.

The `Config` is built here and points at the `migrations` folder inside the
installed package. On PostgreSQL the whole upgrade runs in one transaction under
an advisory lock, so two hub processes starting together cannot both migrate;
the engine's schema (see `hub.storage.db`) is created first when missing.

Example:
    >>> import asyncio
    >>> from hub.storage.db import create_engine
    >>> engine = create_engine("sqlite:///:memory:")
    >>> asyncio.run(migrate(engine))
    >>> asyncio.run(schema_drift(engine))
    []
    >>> asyncio.run(engine.dispose())
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.storage.db import create_engine, engine_schema
from hub.storage.errors import storage_errors
from hub.storage.models import Base

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
_ADVISORY_LOCK_KEY = 0x6F7574706F7374  # "outpost": serialises concurrent migrations


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic `Config` for the hub's migrations, optionally bound to `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def migrate(engine_or_url: AsyncEngine | str, *, revision: str = "head") -> None:
    """Upgrade the database to `revision` (default: the newest); a no-op when up to date."""
    engine = create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        with storage_errors():
            async with engine.begin() as conn:
                await conn.run_sync(_upgrade, revision, engine_schema(engine))
    finally:
        if isinstance(engine_or_url, str):
            await engine.dispose()


async def schema_drift(bind: AsyncEngine | AsyncConnection) -> list[Any]:
    """Differences between the live schema and the models (empty when they agree).

    Alembic's autogenerate comparison, plus the index method on PostgreSQL (BRIN
    versus B-tree), which Alembic does not compare.
    """
    with storage_errors():
        if isinstance(bind, AsyncConnection):
            return await bind.run_sync(_compare)
        async with bind.connect() as conn:
            return await conn.run_sync(_compare)


def _upgrade(connection: Connection, revision: str, schema: str | None) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        if schema is not None:  # validated by create_engine: a plain lower-case identifier
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    command.upgrade(alembic_config(connection), revision)


def _compare(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    diffs: list[Any] = list(compare_metadata(context, Base.metadata))
    if connection.dialect.name == "postgresql":
        diffs.extend(_index_method_diffs(connection))
    return diffs


def _index_method_diffs(connection: Connection) -> list[tuple[str, str, str, str, str]]:
    inspector = inspect(connection)
    diffs = []
    for table in Base.metadata.sorted_tables:
        live = {
            index["name"]: index.get("dialect_options", {}).get("postgresql_using", "btree")
            for index in inspector.get_indexes(table.name)
        }
        for index in table.indexes:
            wanted = index.dialect_options["postgresql"]["using"] or "btree"
            if index.name in live and live[index.name] != wanted:
                diffs.append(
                    ("modify_index_method", table.name, str(index.name), live[index.name], wanted)
                )
    return diffs
