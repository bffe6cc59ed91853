"""Agent enqueue rows/s (`Outbox.put` from the event loop) against bare SQLite.

Numerator: `rows` puts of a realistic telemetry body, timed until every put has
returned, that is until every row is committed. They come from `producers`
long-lived tasks that each await their puts one after the other, the shape of
the agent's own loops (telemetry, perception, safety, state), so that many puts
are pending at any moment and the outbox batches them. `details` also reports
the other shape, bursts of puts that one task gathers in chunks, with what
asyncio alone allows in that shape (each gathered call is a Task with its
wake-up and gather's callback, whatever it does).

Denominator: one bare `sqlite3.executemany` of the same rows in one
transaction, same schema and indexes (`edge_agent.outbox.migrate`), same PRAGMAs
(`configure`: WAL and the same `synchronous`), same insert statement.

Both sides write fresh database files in the same directory; rounds alternate
between the sides so that a noisy neighbour hits both, and each side keeps its
best round. The headline ratio is for `synchronous = NORMAL`, the agent's
default; `details` holds both sides for NORMAL and FULL.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

from bench.report import BenchResult, Measure, rate
from edge_agent.outbox import INSERT_SQL, Outbox, Synchronous, configure, migrate
from protocol import Channel, TelemetryBatch, TelemetryPoint, encode

TARGET = 0.5
DEVICE = "bench-1"
PRODUCERS = 1000
CHUNK = 1000
Shape = Literal["producers", "gather"]


def telemetry_body() -> bytes:
    """A realistic telemetry body: two tagged points, about 230 bytes of JSON."""
    ts = datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    points = [
        TelemetryPoint(ts=ts, metric=metric, value=value, tags={"unit": unit, "host": DEVICE})
        for metric, value, unit in (("cpu.load", 0.42, "ratio"), ("battery.soc", 87.5, "pct"))
    ]
    return encode(TelemetryBatch(points=points))


async def from_producers(outbox: Outbox, body: bytes, *, rows: int) -> None:
    """`rows` puts from `PRODUCERS` tasks, each awaiting its own puts in sequence."""

    async def producer(count: int) -> None:
        for _ in range(count):
            await outbox.put(Channel.TELEMETRY, body)

    shares = [rows // PRODUCERS + (i < rows % PRODUCERS) for i in range(PRODUCERS)]
    await asyncio.gather(*(producer(share) for share in shares))


async def from_gather(outbox: Outbox, body: bytes, *, rows: int) -> None:
    """`rows` puts, `CHUNK` at a time issued together with `asyncio.gather`."""
    for start in range(0, rows, CHUNK):
        count = min(CHUNK, rows - start)
        await asyncio.gather(*[outbox.put(Channel.TELEMETRY, body) for _ in range(count)])


async def gather_ceiling(rows: int) -> None:
    """The gather shape with no outbox at all: each coroutine awaits one shared future.

    What asyncio alone costs per gathered call (a Task, its wake-up, gather's
    callback): no outbox `put` can go faster in that shape.
    """
    loop = asyncio.get_running_loop()
    for start in range(0, rows, CHUNK):
        done: asyncio.Future[None] = loop.create_future()

        async def call(done: asyncio.Future[None] = done) -> None:
            await done

        calls = asyncio.gather(*[call() for _ in range(min(CHUNK, rows - start))])
        loop.call_soon(done.set_result, None)
        await calls


def ceiling_rate(*, rows: int, seconds: float, rounds: int) -> float:
    """Best calls/s of `gather_ceiling`."""
    with asyncio.Runner() as runner:

        def burst() -> int:
            runner.run(gather_ceiling(rows))
            return rows

        return rate(burst, min_seconds=seconds, rounds=rounds)


SHAPES: dict[Shape, Callable[..., Coroutine[Any, Any, None]]] = {
    "producers": from_producers,
    "gather": from_gather,
}


def ours_round(path: Path, sync: Synchronous, *, shape: Shape, rows: int, seconds: float) -> float:
    """Rows/s of `Outbox.put` bursts into a fresh database on a fresh event loop."""
    body, burst_of = telemetry_body(), SHAPES[shape]
    with asyncio.Runner() as runner:
        outbox = runner.run(Outbox.open(path, device=DEVICE, synchronous=sync))

        def burst() -> int:
            runner.run(burst_of(outbox, body, rows=rows))
            return rows

        try:
            return rate(burst, min_seconds=seconds, rounds=1)
        finally:
            runner.run(outbox.close())


def bare_round(path: Path, sync: Synchronous, *, rows: int, seconds: float) -> float:
    """Rows/s of one bare `executemany` transaction per burst into a fresh database."""
    body, now = telemetry_body(), time.time()
    params = [("telemetry", 2, now, round(now * 1_000_000), body) for _ in range(rows)]
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        configure(conn, synchronous=sync)
        migrate(sqlite_utils.Database(conn))

        def burst() -> int:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT_SQL, params)
            conn.execute("COMMIT")
            return rows

        return rate(burst, min_seconds=seconds, rounds=1)


def measure(
    work: Path, sync: Synchronous, *, rows: int, seconds: float, rounds: int
) -> dict[str, float]:
    """Best rows/s of each side (both shapes of ours), rounds interleaved."""
    best = {"producers": 0.0, "gather": 0.0, "bare": 0.0}
    for n in range(rounds):
        for shape in ("producers", "gather"):
            path = work / f"{shape}-{sync}-{n}.db"
            got = ours_round(path, sync, shape=shape, rows=rows, seconds=seconds)
            best[shape] = max(best[shape], got)
        got = bare_round(work / f"bare-{sync}-{n}.db", sync, rows=rows, seconds=seconds)
        best["bare"] = max(best["bare"], got)
    return best


@contextmanager
def _workdir(directory: Path | None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="outpost-bench-outbox-", dir=directory) as tmp:
        yield Path(tmp)


def run(
    *, seconds: float = 0.5, rows: int = 20_000, rounds: int = 3, directory: Path | None = None
) -> BenchResult:
    """Measure NORMAL and FULL; the headline ratio is NORMAL's (the agent's default)."""
    figures: dict[str, dict[str, Any]] = {}
    with _workdir(directory) as work:
        for sync in ("NORMAL", "FULL"):
            best = measure(work, sync, rows=rows, seconds=seconds, rounds=rounds)
            figures[sync] = {
                "ours_rows_per_s": round(best["producers"]),
                "bare_rows_per_s": round(best["bare"]),
                "ratio": round(best["producers"] / best["bare"], 4),
                "gather_rows_per_s": round(best["gather"]),
                "gather_ratio": round(best["gather"] / best["bare"], 4),
            }
        ceiling = ceiling_rate(rows=rows, seconds=seconds, rounds=rounds)
    normal = figures["NORMAL"]
    return BenchResult(
        name="outbox",
        numerator=Measure(
            normal["ours_rows_per_s"],
            "rows/s",
            f"Outbox.put from {PRODUCERS} producer tasks, until committed",
        ),
        denominator=Measure(
            normal["bare_rows_per_s"], "rows/s", "bare sqlite3 executemany, one transaction"
        ),
        target=TARGET,
        details={
            "synchronous": figures,
            "rows_per_burst": rows,
            "body_bytes": len(telemetry_body()),
            "gather_chunk": CHUNK,
            "gather_asyncio_ceiling_calls_per_s": round(ceiling),
            "sqlite": sqlite3.sqlite_version,
            "directory": str(directory or Path(tempfile.gettempdir())),
        },
    )
