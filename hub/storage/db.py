"""Engines and sessions: one code path for SQLite (embedded) and PostgreSQL (scale).

`create_engine` accepts the URL forms people type (`sqlite:///hub.db`,
`postgresql://user@host/db`) and picks the async driver (aiosqlite, asyncpg).

* SQLite: WAL journal, `synchronous=NORMAL`, foreign keys on, a busy timeout, and
  every transaction opened with `BEGIN IMMEDIATE`, so a writer waits for the lock
  (up to the busy timeout) instead of failing half way through its transaction.
* PostgreSQL: a small pool sized for a 2-core box, pre-ping, connect and command
  timeouts. A *schema* (the `schema=` argument or a `?schema=NAME` URL parameter)
  scopes every table: it becomes the connection's `search_path`, so the same
  unqualified SQL, Alembic's version table and reflection all land in it. Tests
  use one schema per run; `migrate` creates it when missing.

Example:
    >>> engine = create_engine("sqlite:///:memory:")
    >>> engine.dialect.name, engine.dialect.driver
    ('sqlite', 'aiosqlite')
    >>> str(create_engine("postgresql://u@db/outpost?schema=run_1").url)
    'postgresql+asyncpg://u@db/outpost'
    >>> engine_schema(create_engine("postgresql://u@db/outpost?schema=run_1"))
    'run_1'
"""

from __future__ import annotations

import re
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import StaticPool

from hub.storage.errors import StorageError, storage_errors

__all__ = [
    "StorageError",
    "create_engine",
    "engine_schema",
    "session_factory",
    "transaction",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_POOL_SIZE = 4
PG_MAX_OVERFLOW = 4
PG_CONNECT_TIMEOUT_S = 10.0
PG_COMMAND_TIMEOUT_S = 120.0
SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_schemas: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def create_engine(url: str, *, schema: str | None = None, echo: bool = False) -> AsyncEngine:
    """An async engine for a SQLite or PostgreSQL URL, tuned for the hub.

    `schema` (PostgreSQL only) overrides a `?schema=` URL parameter; SQLite has no
    schemas (one file is one database) and refuses one.
    """
    parsed = _normalise(url)
    url_schema = parsed.query.get("schema")
    parsed = parsed.difference_update_query(["schema"])
    chosen = schema or (url_schema if isinstance(url_schema, str) else None)
    if parsed.get_backend_name() == "sqlite":
        if chosen:
            raise StorageError("a schema applies to PostgreSQL only; SQLite URLs take none")
        return _sqlite_engine(parsed, echo=echo)
    return _postgres_engine(parsed, _checked_schema(chosen), echo=echo)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for `engine`; objects stay usable after commit (`expire_on_commit=False`).

    Example:
        >>> make = session_factory(create_engine("sqlite:///:memory:"))
        >>> make.kw["expire_on_commit"]
        False
    """
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session in a transaction, committed when the block succeeds, rolled back otherwise.

    Database errors raised in the block or by the commit leave as `StorageError`
    (`retriable` for connection trouble), so callers need no SQLAlchemy imports.

    Example:
        >>> async def store(sessions, envelopes):
        ...     async with transaction(sessions) as session:
        ...         return await store_envelopes(session, envelopes=envelopes)
    """
    with storage_errors():
        async with sessions() as session, session.begin():
            yield session


def engine_schema(engine: AsyncEngine) -> str | None:
    """The PostgreSQL schema `engine` was scoped to, or None (default schema, or SQLite)."""
    return _schemas.get(engine.sync_engine)


def _normalise(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"not a database URL: {_redact(url)!r}") from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise StorageError(
            f"unsupported database URL {_redact(url)!r}: use sqlite+aiosqlite:///PATH "
            "or postgresql+asyncpg://USER@HOST/DB"
        )
    return parsed.set(drivername=driver)


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


def _checked_schema(schema: str | None) -> str | None:
    if schema is not None and not SCHEMA_PATTERN.fullmatch(schema):
        raise StorageError(f"schema {schema!r} must match {SCHEMA_PATTERN.pattern}")
    return schema


def _sqlite_engine(url: URL, *, echo: bool) -> AsyncEngine:
    database = url.database or ""
    in_memory = database in ("", ":memory:")
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"poolclass": StaticPool} if in_memory else {}
    engine = _create_async_engine(
        url,
        echo=echo,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        **options,
    )
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: object) -> None:
    """Per-connection settings; the driver's own transaction handling is switched off."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front: a deferred transaction that read first
    # fails at once with SQLITE_BUSY when another writer committed in between.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _postgres_engine(url: URL, schema: str | None, *, echo: bool) -> AsyncEngine:
    server_settings = {"application_name": "outpost-hub"}
    if schema is not None:
        server_settings["search_path"] = schema
    engine = _create_async_engine(
        url,
        echo=echo,
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_MAX_OVERFLOW,
        pool_timeout=30,
        pool_recycle=1800,
        pool_pre_ping=True,
        connect_args={
            "timeout": PG_CONNECT_TIMEOUT_S,
            "command_timeout": PG_COMMAND_TIMEOUT_S,
            "server_settings": server_settings,
        },
    )
    if schema is not None:
        _schemas[engine.sync_engine] = schema
    return engine
