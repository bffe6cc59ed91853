"""Engine URLs, schema scoping, timestamps and the error wrapping (no database needed)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from hub.errors import HubError
from hub.storage.columns import UTCDateTime
from hub.storage.db import create_engine, engine_schema
from hub.storage.errors import StorageError, StorageUnavailable, storage_errors, wrap


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///:memory:", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite"),
        ("postgresql://u@db/outpost", "postgresql+asyncpg"),
        ("postgres://u@db/outpost", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@db/outpost", "postgresql+asyncpg"),
    ],
)
def test_urls_get_the_async_driver(url: str, expected: str) -> None:
    assert create_engine(url).url.drivername == expected


def test_a_schema_comes_from_the_argument_or_the_url() -> None:
    assert engine_schema(create_engine("postgresql://u@db/o?schema=run_a")) == "run_a"
    assert engine_schema(create_engine("postgresql://u@db/o?schema=a", schema="b")) == "b"
    assert engine_schema(create_engine("postgresql://u@db/o")) is None
    assert "schema" not in create_engine("postgresql://u@db/o?schema=a").url.query


@pytest.mark.parametrize("schema", ["Run", "a-b", "a;drop", "1abc", "x" * 64])
def test_odd_schema_names_are_refused(schema: str) -> None:
    with pytest.raises(StorageError, match="must match"):
        create_engine("postgresql://u@db/o", schema=schema)


def test_sqlite_takes_no_schema() -> None:
    with pytest.raises(StorageError, match="PostgreSQL only"):
        create_engine("sqlite:///:memory:", schema="run_a")


def test_other_databases_are_refused_without_showing_the_password() -> None:
    with pytest.raises(StorageError, match="unsupported database URL") as caught:
        create_engine("mysql://admin:hunter2@db/outpost")
    assert "hunter2" not in str(caught.value)


def test_storage_errors_are_hub_errors() -> None:
    assert issubclass(StorageError, HubError)


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), postgresql.dialect())  # noqa: DTZ001


def test_timestamps_read_back_from_sqlite_are_utc() -> None:
    value = UTCDateTime().process_result_value(datetime(2026, 1, 1, 12), sqlite.dialect())  # noqa: DTZ001
    assert value is not None
    assert value.utcoffset() is not None
    assert value.hour == 12


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (OSError("connection refused"), True),
        (TimeoutError(), True),
        (sa_exc.OperationalError("x", {}, Exception("database is locked")), True),
        (sa_exc.OperationalError("x", {}, Exception("no such table: acks")), False),
        (sa_exc.DBAPIError("x", {}, _PgError("40001")), True),
        (sa_exc.DBAPIError("x", {}, _PgError("08006")), True),
        (sa_exc.IntegrityError("x", {}, _PgError("23505")), False),
        (sa_exc.ProgrammingError("x", {}, _PgError("42P01")), False),
    ],
)
def test_connection_and_busy_errors_are_retriable(error: Exception, retriable: bool) -> None:
    wrapped = wrap(error)
    assert wrapped.retriable is retriable
    assert isinstance(wrapped, StorageUnavailable) is retriable


def test_the_original_error_is_the_cause() -> None:
    original = OSError("gone")
    with pytest.raises(StorageUnavailable) as caught, storage_errors():
        raise original
    assert caught.value.__cause__ is original
