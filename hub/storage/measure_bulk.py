"""Measure the bulk-insert strategies for telemetry on a real PostgreSQL (or SQLite).

Run: `python -m hub.storage.measure_bulk postgresql://USER@HOST:PORT/DB [--points N]`
(or a `sqlite:///PATH` URL of a scratch file, which is deleted afterwards).
Every strategy writes the same N points (default 50,000) into a fresh copy of the
real `telemetry` table (all its indexes), on PostgreSQL inside a throw-away schema,
first into an empty table ("new"), then the same rows again ("resend": every row
a duplicate). Each figure is the median of `--repeat` runs, in rows per second;
`--batch` rows go to each call, one transaction per call (default: all in one);
`--only` restricts the run to strategies whose names start with the given words.
On PostgreSQL a bare `COPY` of the same rows into the table, without conflict
handling, is the same-machine ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hub.storage.db import create_engine, session_factory
from hub.storage.migrate import migrate
from hub.storage.models import Telemetry, table_of
from hub.storage.repositories.bulk import Row, Strategy, insert_ignore

TABLE = table_of(Telemetry)
Job = Callable[[AsyncSession, Sequence[Row]], Awaitable[int]]


def make_rows(points: int, *, per_message: int = 500) -> list[Row]:
    """`points` telemetry rows as `store_envelopes` builds them: 500 points per envelope."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    metrics = ("cpu", "mem", "battery.soc", "wheel.left.rpm", "wheel.right.rpm")
    return [
        {
            "device": f"amr-{n % 20}",
            "stream": "s1",
            "seq": n // per_message + 1,
            "idx": n % per_message,
            "ts": start + timedelta(milliseconds=10 * n),
            "metric": metrics[n % len(metrics)],
            "value": float(n % 977) / 7.0,
            "tags": {"site": "north"} if n % 3 == 0 else {},
        }
        for n in range(points)
    ]


def strategies(dialect: str) -> dict[str, Job]:
    """Name → coroutine inserting rows with that strategy, for `dialect`."""

    def values(chunk: int) -> Job:
        return lambda s, r: insert_ignore(
            s, table=TABLE, rows=r, strategy=Strategy.VALUES, chunk=chunk
        )

    jobs: dict[str, Job] = {f"values/{c}": values(c) for c in (500, 1000, 4000)}
    jobs["executemany"] = lambda s, r: insert_ignore(
        s, table=TABLE, rows=r, strategy=Strategy.EXECUTEMANY
    )
    if dialect != "postgresql":
        return jobs
    jobs["unnest"] = lambda s, r: insert_ignore(s, table=TABLE, rows=r, strategy=Strategy.UNNEST)
    jobs["copy+insert"] = lambda s, r: insert_ignore(s, table=TABLE, rows=r, strategy=Strategy.COPY)
    jobs["bare COPY (ceiling)"] = _bare_copy
    return jobs


async def _bare_copy(session: AsyncSession, rows: Sequence[Row]) -> int:
    conn = await session.connection()
    driver: Any = (await conn.get_raw_connection()).driver_connection
    names = [c.name for c in TABLE.columns]
    records = [tuple(json.dumps(r[n]) if n == "tags" else r[n] for n in names) for r in rows]
    status: str = await driver.copy_records_to_table("telemetry", records=records, columns=names)
    return int(status.rsplit(" ", 1)[-1])


async def _timed(
    engine: AsyncEngine, job: Job, rows: Sequence[Row], batch: int
) -> tuple[float, int]:
    sessions = session_factory(engine)
    inserted = 0
    began = time.perf_counter()
    for start in range(0, len(rows), batch):
        async with sessions() as session, session.begin():
            inserted += await job(session, rows[start : start + batch])
    return time.perf_counter() - began, inserted


async def _truncate(engine: AsyncEngine) -> None:
    # TRUNCATE on PostgreSQL: DELETE would leave dead rows and bloated indexes behind,
    # slowing down whichever strategy runs next.
    statement = (
        "TRUNCATE telemetry" if engine.dialect.name == "postgresql" else "DELETE FROM telemetry"
    )
    async with engine.begin() as conn:
        await conn.execute(text(statement))


async def measure(
    engine: AsyncEngine, rows: Sequence[Row], repeat: int, batch: int, only: Sequence[str] = ()
) -> dict[str, Any]:
    """{strategy: {"new_rows_s", "resend_rows_s"}} plus the bare COPY ceiling."""
    results: dict[str, Any] = {}
    for name, job in strategies(engine.dialect.name).items():
        if only and not name.startswith(tuple(only)):
            continue
        new, resend = [], []
        for _ in range(repeat):
            await _truncate(engine)
            elapsed, inserted = await _timed(engine, job, rows, batch)
            assert inserted == len(rows), (name, inserted)  # noqa: S101 - a broken strategy
            new.append(len(rows) / elapsed)
            if name.startswith("bare"):
                continue
            elapsed, inserted = await _timed(engine, job, rows, batch)
            assert inserted == 0, (name, inserted)  # noqa: S101
            resend.append(len(rows) / elapsed)
        results[name] = {
            "new_rows_s": round(statistics.median(new)),
            "resend_rows_s": round(statistics.median(resend)) if resend else None,
        }
    return results


async def run(
    url: str, points: int, repeat: int, batch: int | None = None, only: Sequence[str] = ()
) -> dict[str, Any]:
    """Create a throw-away schema (or use the scratch SQLite file), measure, clean up."""
    schema = f"measure_bulk_{secrets.token_hex(4)}"
    is_pg = url.startswith(("postgres", "postgresql"))
    engine = create_engine(url, schema=schema if is_pg else None)
    try:
        await migrate(engine)
        rows = make_rows(points)
        warm = strategies(engine.dialect.name)["executemany"]
        await _timed(engine, warm, rows[:1000], 1000)  # warm the pool and caches
        results = await measure(engine, rows, repeat, batch or points, only)
        version = await _server_version(engine)
    finally:
        await _clean_up(engine, schema if is_pg else None)
    env = {
        "points": points,
        "batch": batch or points,
        "repeat": repeat,
        "database": version,
        "cpus": os.cpu_count(),
    }
    return {"env": env, "results": results}


async def _server_version(engine: AsyncEngine) -> str:
    query = (
        "SHOW server_version"
        if engine.dialect.name == "postgresql"
        else "SELECT 'SQLite ' || sqlite_version()"
    )
    async with engine.connect() as conn:
        return str((await conn.execute(text(query))).scalar_one())


async def _clean_up(engine: AsyncEngine, schema: str | None) -> None:
    if schema is not None:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    database = engine.url.database
    await engine.dispose()
    if schema is None and database:
        for suffix in ("", "-wal", "-shm"):
            Path(database + suffix).unlink(missing_ok=True)  # noqa: ASYNC240 - a script, at exit


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, measure, print one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m hub.storage.measure_bulk")
    parser.add_argument("url", help="postgresql://USER@HOST:PORT/DB or sqlite:///SCRATCH.db")
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None, help="rows per call (default: all)")
    parser.add_argument("--only", nargs="*", default=[], help="strategy name prefixes to run")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.url, args.points, args.repeat, args.batch, args.only))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
