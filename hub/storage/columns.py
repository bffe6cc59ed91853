"""Portable column types: UTC timestamps and JSON that work on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect.

    PostgreSQL stores `timestamptz`; SQLite stores UTC text without an offset, which
    sorts and compares correctly because every value is UTC. Naive datetimes are
    refused on the way in (they are bugs: the wire contract only has aware ones);
    values always come back aware, in UTC.

    Example:
        >>> from sqlalchemy.dialects import sqlite
        >>> from datetime import timedelta, timezone
        >>> t = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
        >>> UTCDateTime().process_bind_param(t, sqlite.dialect())
        datetime.datetime(2026, 1, 1, 10, 0)
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; SQLite gets the naive UTC wall time."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware values")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDoc: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
"""JSON on SQLite, JSONB on PostgreSQL."""

BigId: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
"""An auto-incrementing 64-bit key (SQLite only auto-increments `INTEGER PRIMARY KEY`)."""
