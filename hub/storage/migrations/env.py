"""Alembic environment for the hub: runs on a connection handed over by `migrate`.

`hub.storage.migrate.migrate` opens an async connection, and from inside
`run_sync` puts the synchronous facade of it in `config.attributes["connection"]`;
this file only configures the context on it. The `alembic` command line works too
(`alembic -c ... upgrade head` with `sqlalchemy.url` set): then this file builds
its own async engine with `hub.storage.db.create_engine`.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from hub.storage.db import create_engine
from hub.storage.models import Base


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run_on)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Entry point Alembic executes."""
    config = context.config
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run_on(connection)
    elif context.is_offline_mode():
        _run_offline(config.get_main_option("sqlalchemy.url") or "")
    else:
        asyncio.run(_run_with_own_engine(config.get_main_option("sqlalchemy.url") or ""))


main()
