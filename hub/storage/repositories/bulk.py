"""Idempotent bulk inserts: `INSERT ... ON CONFLICT DO NOTHING` in the fastest form measured.

Four strategies, all returning how many rows were actually inserted:

* `values`: multi-row `INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING` in
  chunks (capped by the dialect's bound-parameter limit); the portable baseline.
* `executemany`: one prepared `INSERT ... ON CONFLICT DO NOTHING` run over all rows
  (SQLite's `executemany`; on PostgreSQL SQLAlchemy's "insertmanyvalues" batches
  with `RETURNING`, which is how inserted rows are counted there).
* `unnest`: PostgreSQL only; one statement per table whatever the row count, the
  columns bound as arrays: `INSERT ... SELECT * FROM unnest($1::text[], ...)`.
* `copy`: PostgreSQL only; asyncpg `COPY` straight into the table inside a savepoint,
  which is all a batch of new rows needs; when some rows are stored already (a
  unique violation: a re-send), `COPY` into a session temp table, then
  `INSERT ... SELECT ... ON CONFLICT DO NOTHING`.

`hub/storage/measure_bulk.py` measures them; `docs/hub-storage.md` has the figures
behind the defaults: `executemany` on SQLite; on PostgreSQL `copy` from
`COPY_MIN_ROWS` rows up (its extra round trips cost more than they save on
small batches) and `unnest` below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import StrEnum
from operator import itemgetter
from typing import Any

import orjson
from asyncpg.exceptions import UniqueViolationError  # type: ignore[import-untyped]
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import JSON

Row = Mapping[str, Any]

SQLITE_MAX_VARIABLES = 32_766
PG_MAX_PARAMETERS = 32_767


class Strategy(StrEnum):
    """How rows reach the table."""

    VALUES = "values"
    EXECUTEMANY = "executemany"
    UNNEST = "unnest"
    COPY = "copy"


OPTIMISM_PAUSE = 20
"""After a batch that was partly stored already, this many `copy` batches of that table
go through the staging table at once: re-sends come in runs."""
_conflicts: dict[str, int] = {}
"""Per table: `copy` batches left to stage before trying a straight COPY again."""

COPY_MIN_ROWS = 1000
"""From this many rows up, `copy` beats `unnest` on PostgreSQL (see docs/hub-storage.md)."""
DEFAULT_SQLITE_STRATEGY = Strategy.EXECUTEMANY
"""The SQLite winner of `measure_bulk`."""
DEFAULT_VALUES_CHUNK = 1000


async def insert_ignore(
    session: AsyncSession,
    *,
    table: Table,
    rows: Sequence[Row],
    strategy: Strategy | None = None,
    chunk: int = DEFAULT_VALUES_CHUNK,
) -> int:
    """Insert `rows` into `table`, skipping rows whose primary key exists; return rows inserted.

    `strategy` defaults to the measured winner for the dialect and the row count.
    """
    if not rows:
        return 0
    conn = await session.connection()
    is_pg = conn.dialect.name == "postgresql"
    chosen = strategy or (_pg_default(len(rows)) if is_pg else DEFAULT_SQLITE_STRATEGY)
    if chosen in (Strategy.UNNEST, Strategy.COPY) and not is_pg:
        raise ValueError(f"strategy {chosen.value!r} needs PostgreSQL")
    if chosen is Strategy.UNNEST:
        return await _unnest(conn, table, rows)
    if chosen is Strategy.COPY:
        return await _copy(conn, table, rows)
    if chosen is Strategy.EXECUTEMANY:
        return await _executemany(conn, table, rows)
    return await _values(conn, table, rows, chunk)


def _pg_default(count: int) -> Strategy:
    return Strategy.COPY if count >= COPY_MIN_ROWS else Strategy.UNNEST


def _chunks(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def dialect_insert(conn: AsyncConnection) -> Callable[..., postgresql.Insert | sqlite.Insert]:
    """The connection's dialect's `insert`, the one with `on_conflict_do_*`."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _max_rows(conn: AsyncConnection, table: Table, wanted: int) -> int:
    limit = PG_MAX_PARAMETERS if conn.dialect.name == "postgresql" else SQLITE_MAX_VARIABLES
    return max(1, min(wanted, limit // len(table.columns)))


async def _values(conn: AsyncConnection, table: Table, rows: Sequence[Row], chunk: int) -> int:
    insert = dialect_insert(conn)
    inserted = 0
    for part in _chunks(rows, _max_rows(conn, table, chunk)):
        statement = insert(table).values(list(part)).on_conflict_do_nothing()
        inserted += (await conn.execute(statement)).rowcount
    return inserted


async def _executemany(conn: AsyncConnection, table: Table, rows: Sequence[Row]) -> int:
    if conn.dialect.name == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing()
        returning = statement.returning(*table.primary_key.columns)
        return len((await conn.execute(returning, list(rows))).all())
    result = await conn.execute(sqlite.insert(table).on_conflict_do_nothing(), list(rows))
    return result.rowcount


def _pg_type(dialect: Dialect, table: Table, name: str) -> str:
    column = table.columns[name]
    if isinstance(column.type.dialect_impl(dialect), JSON):
        return "jsonb"
    return column.type.compile(dialect=dialect)


def _json_columns(dialect: Dialect, table: Table) -> frozenset[str]:
    """Columns whose JSON documents travel as text (the driver's JSONB codec takes str)."""
    return frozenset(c.name for c in table.columns if _pg_type(dialect, table, c.name) == "jsonb")


def _as_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _columns_of(dialect: Dialect, table: Table, rows: Sequence[Row]) -> list[list[Any]]:
    json_columns = _json_columns(dialect, table)
    columns = []
    for column in table.columns:
        values = [row[column.name] for row in rows]
        columns.append([_as_json(v) for v in values] if column.name in json_columns else values)
    return columns


def _records_of(dialect: Dialect, table: Table, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
    """`rows` as tuples in column order, for COPY."""
    names = [c.name for c in table.columns]
    json_columns = _json_columns(dialect, table)
    json_at = [i for i, name in enumerate(names) if name in json_columns]
    values = itemgetter(*names)
    if not json_at:
        return [values(row) for row in rows]
    records = []
    for row in rows:
        record = list(values(row))
        for i in json_at:
            record[i] = _as_json(record[i])
        records.append(tuple(record))
    return records


async def _unnest(conn: AsyncConnection, table: Table, rows: Sequence[Row]) -> int:
    names = [c.name for c in table.columns]
    arrays = ", ".join(f"CAST(:{n} AS {_pg_type(conn.dialect, table, n)}[])" for n in names)
    quoted = ", ".join(f'"{n}"' for n in names)
    statement = text(
        f'INSERT INTO "{table.name}" ({quoted}) SELECT * FROM unnest({arrays}) '  # noqa: S608 - names come from our own metadata
        "ON CONFLICT DO NOTHING"
    )
    values = dict(zip(names, _columns_of(conn.dialect, table, rows), strict=True))
    return (await conn.execute(statement, values)).rowcount


async def _copy(conn: AsyncConnection, table: Table, rows: Sequence[Row]) -> int:
    names = [c.name for c in table.columns]
    driver: Any = (await conn.get_raw_connection()).driver_connection
    records = _records_of(conn.dialect, table, rows)
    if _conflicts.get(table.name, 0) == 0:
        try:  # most batches are new rows: straight into the table, as fast as a bare COPY
            async with conn.begin_nested():
                await driver.copy_records_to_table(table.name, records=records, columns=names)
        except UniqueViolationError:  # a re-send: some are stored already
            _conflicts[table.name] = OPTIMISM_PAUSE
        else:
            return len(records)
    else:
        _conflicts[table.name] -= 1
    return await _copy_skipping(conn, driver, table, names, records)


async def _copy_skipping(
    conn: AsyncConnection, driver: Any, table: Table, names: list[str], records: list[Any]
) -> int:
    """COPY into a temp table, then insert what is not stored yet."""
    staging = f"_staging_{table.name}"
    quoted = ", ".join(f'"{n}"' for n in names)
    # Through SQLAlchemy first: that opens the driver's transaction, so the raw COPY
    # below is part of the caller's transaction, not an autocommit of its own.
    await conn.execute(
        text(
            f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" '
            f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
        )
    )
    await driver.copy_records_to_table(staging, records=records, columns=names)
    result = await conn.execute(
        text(
            f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{staging}" '  # noqa: S608
            "ON CONFLICT DO NOTHING"
        )
    )
    await conn.execute(text(f'TRUNCATE "{staging}"'))
    return result.rowcount
