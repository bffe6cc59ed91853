"""The agent's SQLite store-and-forward buffer.

DESIGN.md, "Delivery: nothing acknowledged is ever lost".

Every uplink message is written here before anything else; the uplink claims rows
to publish, and rows are deleted only when the hub's `ingested` watermark covers
them.

Sequence numbers are assigned when a row is first *claimed* for publishing, not
when it is put. The hub acknowledges with a watermark, "the highest contiguous
`seq` of this stream I hold durably"; a gap in the numbers would stall that
watermark forever. Rows dropped under the size cap are therefore always rows that
were never published and so never numbered: numbering at claim time means a drop
can never open a gap. Only rows with no `seq` are ever dropped. `claim()` commits
the new numbers (and the counter, in `meta`) before it returns the messages, so a
number is never handed out twice, even across a crash.

Durability (`synchronous`, with the database in WAL mode):

- `"NORMAL"`: a committed row survives a crash or `kill -9` of the agent; a power
  loss or kernel crash may roll back the last transactions (never corrupting the
  file). No fsync on most commits, so it writes fastest.
- `"FULL"`: every commit is fsynced, so committed rows survive power loss too, at
  a lower write rate (one fsync per batch).

`put()` returns once its row is committed. Concurrent `put()` calls are batched:
each call appends its row to a pending list, the first one schedules a flush,
and the flush writes everything pending at that moment in one transaction
(while it is written, new puts gather for the next one). The rows go in as
multi-row `INSERT` statements of up to 512 rows rather than one `executemany`:
the sqlite3 module takes the GIL back after every statement it steps, so a
block of rows costs one GIL round trip instead of one per row, and the event
loop keeps running while SQLite works. One worker thread owns the connection
and runs every database operation, so the event loop never blocks on SQLite
and no two transactions ever interleave.

After a crash, reopening the same file keeps the stream, the seq counter, the
rows and the drop counters; rows that were published but not confirmed are
claimable again as re-sends once their `sent_at` is before `resend_before`.

Size cap: the outbox counts *logical bytes*, the sum of the body lengths plus
`ROW_OVERHEAD_BYTES` per row (roughly what a row costs SQLite in its table and
indexes). After every write transaction, above `downsample_at * cap` the older
half of the unnumbered telemetry rows is thinned (every second one deleted);
still above the cap, the oldest unnumbered telemetry rows go, then the oldest
unnumbered detections. Safety rows (events, acks, state) are never dropped: the
outbox grows past its cap rather than lose one. Each dropped row is counted per
priority class in `meta`, so the counters survive restarts.

Example:
    >>> import asyncio, tempfile
    >>> async def demo(path: Path) -> tuple[int, int]:
    ...     outbox = await Outbox.open(path, device="amr-7")
    ...     await outbox.put(Channel.EVENTS, b'{"ts":"2026-01-01T00:00:00Z","type":"link_lost"}')
    ...     [message] = await outbox.claim(limit=10, live_since=0, backlog_limit=0, resend_before=0)
    ...     deleted = await outbox.confirm(outbox.stream, message.seq)
    ...     await outbox.close()
    ...     return message.seq, deleted
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     asyncio.run(demo(Path(tmp) / "outbox.db"))
    (1, 1)
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeVar, cast

import orjson
import sqlite_utils

from edge_agent.errors import AgentError
from protocol.errors import TopicError
from protocol.models import PriorityClass
from protocol.topics import Channel, check_device_id
from protocol.version import PROTOCOL_VERSION

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
Synchronous = Literal["NORMAL", "FULL"]
"""SQLite `synchronous` settings the outbox accepts (see the module docstring)."""

ROW_OVERHEAD_BYTES: Final = 64
"""Logical bytes counted per row on top of its body (row header, seq, timestamps, indexes)."""

BUSY_TIMEOUT_S: Final = 5.0
"""How long a connection waits for another one's write lock before failing."""

SCHEMA_VERSION: Final = 1
"""The schema `migrate` brings a database to (kept in `PRAGMA user_version`)."""

PRIORITY_BY_CHANNEL: dict[Channel, PriorityClass] = {
    Channel.EVENTS: PriorityClass.SAFETY,
    Channel.ACKS: PriorityClass.SAFETY,
    Channel.STATE: PriorityClass.SAFETY,
    Channel.DETECTIONS: PriorityClass.DETECTIONS,
    Channel.FRAMES: PriorityClass.DETECTIONS,
    Channel.TELEMETRY: PriorityClass.TELEMETRY,
}
"""Which priority class each uplink channel's rows belong to."""

# Priority classes as stored in `rows.prio` (0 safety, 1 detections, 2 telemetry).
_CLASSES: Final = (PriorityClass.SAFETY, PriorityClass.DETECTIONS, PriorityClass.TELEMETRY)
_DETECTIONS, _TELEMETRY = 1, 2
# channel -> (plain str for SQLite, prio code): one dict lookup on the put() path.
_ROW_KIND: Final = {
    channel: (channel.value, _CLASSES.index(cls)) for channel, cls in PRIORITY_BY_CHANNEL.items()
}
_CHANNEL_BY_KIND: Final = {channel.value: channel for channel in PRIORITY_BY_CHANNEL}
_DROPPED_KEYS: Final = tuple(f"dropped.{cls.value}" for cls in _CLASSES)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)  # noqa: DTZ001 - only renders UTC microseconds
_MICROSECOND: Final = timedelta(microseconds=1)

INSERT_SQL: Final = "INSERT INTO rows (kind, prio, enq, ts, body) VALUES (?, ?, ?, ?, ?)"
"""The row insert; its parameters are `(kind, prio, enqueued_epoch_s, ts_us, body)`.

The outbox runs it with several rows per statement; the benchmark's bare-SQLite
side runs it as is with `executemany`, on the same schema.
"""
_COLUMNS: Final = 5
_BLOCK_ROWS: Final = 512  # rows per INSERT statement, unless SQLite allows fewer parameters

_INDEXES: Final = (
    # Safety rows first, and the cap's "oldest of a class" scans.
    "CREATE INDEX IF NOT EXISTS rows_unsent_class ON rows (prio, id) WHERE seq IS NULL",
    # Live and backlog selection by enqueue time (rowid breaks ties, oldest first).
    "CREATE INDEX IF NOT EXISTS rows_unsent_enq ON rows (enq) WHERE seq IS NULL",
    # Re-sends in seq order and the watermark's delete.
    "CREATE INDEX IF NOT EXISTS rows_inflight ON rows (seq, sent_at) WHERE seq IS NOT NULL",
)
_SELECT_RESENDS: Final = (
    "SELECT id, seq, kind, ts, body FROM rows WHERE seq IS NOT NULL AND sent_at < ? "
    "ORDER BY seq LIMIT ?"
)
_SELECT_SAFETY: Final = (
    "SELECT id, kind, ts, body FROM rows WHERE seq IS NULL AND prio = 0 ORDER BY id LIMIT ?"
)
_SELECT_LIVE: Final = (
    "SELECT id, kind, ts, body FROM rows WHERE seq IS NULL AND enq >= ? AND prio > 0 "
    "ORDER BY enq, id LIMIT ?"
)
_SELECT_BACKLOG: Final = (
    "SELECT id, kind, ts, body FROM rows WHERE seq IS NULL AND enq < ? AND prio > 0 "
    "ORDER BY enq, id LIMIT ?"
)
_THIN_OLDER_HALF: Final = """
    DELETE FROM rows WHERE id IN (
        SELECT id FROM (
            SELECT id, row_number() OVER (ORDER BY id) AS n FROM rows
            WHERE seq IS NULL AND prio = ? ORDER BY id LIMIT ?
        ) WHERE n % 2 = 0
    ) RETURNING length(body)
"""
_SET_SENT: Final = "UPDATE rows SET sent_at = ? WHERE id = ?"
_SET_SEQ: Final = "UPDATE rows SET seq = ?, sent_at = ? WHERE id = ?"
_UPSERT_META: Final = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


class OutboxError(AgentError):
    """The outbox could not do what was asked (SQLite failed, closed, bad argument)."""


@dataclass(frozen=True)
class OutgoingMessage:
    """A claimed row, ready to publish: `payload` is the full encoded envelope.

    `first_sent` is False for a re-send of an already published row; `backlog`
    is True for a row claimed under `backlog_limit` (what a drain rate counts).
    """

    seq: int
    channel: Channel
    payload: bytes
    first_sent: bool
    backlog: bool = False


@dataclass(frozen=True)
class OutboxStats:
    """What the outbox holds and has dropped; `bytes` is what the cap counts."""

    stream: str
    depth: int
    bytes: int
    oldest_ts: datetime | None
    unsent: int
    inflight: int
    dropped: dict[PriorityClass, int]
    cap_bytes: int


@dataclass(frozen=True)
class _Tally:
    """Running totals the writer keeps so that no write has to scan the table."""

    depth: int
    bytes: int
    inflight: int
    dropped: tuple[int, int, int]

    def dropping(self, prio: int, sizes: Sequence[int]) -> _Tally:
        """The totals after dropping unnumbered rows of `prio` whose bodies had `sizes`."""
        dropped = list(self.dropped)
        dropped[prio] += len(sizes)
        return replace(
            self,
            depth=self.depth - len(sizes),
            bytes=self.bytes - _logical(sizes),
            dropped=(dropped[0], dropped[1], dropped[2]),
        )


class _Commit(asyncio.Future["BaseException | None"]):
    """One batch's commit, awaited by every put() in the batch.

    The result is None, or the exception the write failed with (each waiter wraps
    it in its own `OutboxError`). Cancelling one waiter must not cancel the batch
    for the others, so `cancel()` refuses: a cancelled put() raises
    `CancelledError` once its batch has been written (its row stays written).
    """

    def cancel(self, msg: Any | None = None) -> bool:
        """Refuse: the batch is shared, and its rows are written regardless."""
        return False


class Outbox:
    """The SQLite store-and-forward buffer of one agent.

    Example:
        >>> async def run(path: Path) -> None:  # doctest: +SKIP
        ...     async with await Outbox.open(path, device="amr-7") as outbox:
        ...         await outbox.put(Channel.TELEMETRY, body)
    """

    stream: str
    """This outbox's stream id: created with the database, new for every new file."""
    device: str
    """The device whose envelopes this outbox builds."""
    path: Path
    """The database file."""

    def __init__(
        self,
        *,
        path: Path,
        device: str,
        stream: str,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        tally: _Tally,
        next_seq: int,
        cap_bytes: int,
        downsample_at: float,
        clock: Callable[[], float],
    ) -> None:
        """Use `Outbox.open`; this only wires an opened database to the event loop."""
        self.path, self.device, self.stream = path, device, stream
        self._conn, self._executor, self._clock = conn, executor, clock
        self._tally, self._next_seq = tally, next_seq
        self._cap, self._downsample_bytes = cap_bytes, int(cap_bytes * downsample_at)
        # SQLite before 3.32 allows only 999 parameters per statement.
        max_rows = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _COLUMNS
        self._block_rows = max(1, min(_BLOCK_ROWS, max_rows))
        self._loop = asyncio.get_running_loop()
        # Flat (kind, prio, enq, ts, body, kind, ...): bound as-is by the multi-row insert.
        self._pending: list[str | int | float | bytes] = []
        self._commit: _Commit | None = None  # the pending rows' batch
        self._last_commit: _Commit | None = None  # the newest batch, for close()
        self._writing = False  # a batch is with the writer thread
        self._closed = False
        self._watermark = 0  # highest seq confirmed since open: lower ones are no-ops
        self._over_cap = False
        prefix = {"v": PROTOCOL_VERSION, "device": device, "stream": stream}
        self._prefix = orjson.dumps(prefix)[:-1] + b',"seq":'

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        device: str,
        synchronous: Synchronous = "NORMAL",
        cap_bytes: int = 256 << 20,
        downsample_at: float = 0.8,
        clock: Callable[[], float] = time.time,
    ) -> Outbox:
        """Open (or create) the outbox at `path`; raise `OutboxError` if it cannot."""
        _check_arguments(device=device, synchronous=synchronous, cap_bytes=cap_bytes)
        if not 0 < downsample_at <= 1:
            raise OutboxError(f"downsample_at must be in (0, 1], got {downsample_at}")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-writer")
        loop = asyncio.get_running_loop()
        opener = partial(_open_writer, path, device=device, synchronous=synchronous, cap=cap_bytes)
        try:
            conn, stream, tally, next_seq = await loop.run_in_executor(executor, opener)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        logger.info(
            "outbox %s open: stream %s, %d rows (%d in flight), %d bytes of %d",
            path,
            stream,
            tally.depth,
            tally.inflight,
            tally.bytes,
            cap_bytes,
        )
        return cls(
            path=path,
            device=device,
            stream=stream,
            conn=conn,
            executor=executor,
            tally=tally,
            next_seq=next_seq,
            cap_bytes=cap_bytes,
            downsample_at=downsample_at,
            clock=clock,
        )

    async def close(self) -> None:
        """Write every pending put, then close the database. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._last_commit is not None:
            await self._last_commit  # batches complete in order: this one is the last
        try:
            await self._loop.run_in_executor(self._executor, self._conn.close)
        finally:
            self._executor.shutdown(wait=False)
        logger.info("outbox %s closed", self.path)

    async def __aenter__(self) -> Outbox:
        """`async with await Outbox.open(...) as outbox:` closes it on the way out."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the outbox."""
        await self.close()

    # --- writing --------------------------------------------------------------------------

    async def put(self, channel: Channel, body: bytes, *, ts: datetime | None = None) -> None:
        """Store one message (`body` = the encoded envelope body); return once committed.

        `ts` is the envelope's timestamp (default: now). Cancelling the call does
        not withdraw the row: it is written with its batch.
        """
        kind = _ROW_KIND.get(channel)
        if kind is None or self._closed:
            raise self._refusal(channel)
        now = self._clock()
        micros = round(now * 1_000_000) if ts is None else _micros(ts)
        self._pending += (kind[0], kind[1], now, micros, body)
        error = await (self._commit or self._new_commit())
        if error is not None:
            raise OutboxError(f"outbox {self.path}: write failed: {error}") from error

    async def put_many(self, items: Sequence[tuple[Channel, bytes]]) -> None:
        """Store several messages, timestamped now, in the same batch; return once committed."""
        if not items:
            return
        if self._closed or any(channel not in _ROW_KIND for channel, _ in items):
            raise self._refusal(next((c for c, _ in items if c not in _ROW_KIND), None))
        now = self._clock()
        micros = round(now * 1_000_000)
        for channel, body in items:
            kind, prio = _ROW_KIND[channel]
            self._pending += (kind, prio, now, micros, body)
        error = await (self._commit or self._new_commit())
        if error is not None:
            raise OutboxError(f"outbox {self.path}: write failed: {error}") from error

    def _refusal(self, channel: object) -> OutboxError:
        if self._closed:
            return OutboxError(f"outbox {self.path} is closed")
        allowed = ", ".join(sorted(c.value for c in PRIORITY_BY_CHANNEL))
        return OutboxError(f"cannot buffer channel {channel!r}: uplink channels are {allowed}")

    def _new_commit(self) -> _Commit:
        commit = self._commit = self._last_commit = _Commit(loop=self._loop)
        if not self._writing:
            # call_soon, not now: every put() issued in this loop iteration joins the batch.
            self._loop.call_soon(self._flush)
        return commit

    def _flush(self) -> None:
        """Hand everything pending to the writer, unless it is busy (then it comes back here)."""
        if self._writing or self._commit is None:
            return
        flat, commit = self._pending, self._commit
        self._pending, self._commit, self._writing = [], None, True
        job = self._loop.run_in_executor(self._executor, self._write, flat)
        job.add_done_callback(partial(self._flushed, commit))

    def _flushed(self, commit: _Commit, job: asyncio.Future[None]) -> None:
        self._writing = False
        commit.set_result(job.exception() if not job.cancelled() else asyncio.CancelledError())
        self._flush()  # rows that arrived while this batch was written

    # --- reading, numbering, confirming -------------------------------------------------

    async def claim(
        self,
        *,
        limit: int,
        live_since: float,
        backlog_limit: int,
        resend_before: float,
        resend_limit: int | None = None,
    ) -> list[OutgoingMessage]:
        """Up to `limit` messages to publish, numbered and committed before they are returned.

        Order: unnumbered safety rows; unnumbered rows enqueued at or after `live_since`
        (live data); re-sends (numbered, unconfirmed, sent before `resend_before`, lowest
        seq first, at most `resend_limit`; None: no limit) in the room live data leaves;
        then at most `backlog_limit` older unnumbered rows. Oldest first within each.
        Re-sends come after live data: after an outage a hub can owe confirmations for
        thousands of rows at once, and re-sending them first would hold the live data
        back behind all of them.
        """
        limit, backlog_limit = max(0, int(limit)), max(0, int(backlog_limit))
        resend_cap = limit if resend_limit is None else max(0, int(resend_limit))
        job = partial(self._claim, limit, live_since, backlog_limit, resend_before, resend_cap)
        return await self._run(job)

    async def confirm(self, stream: str, seq: int) -> int:
        """Apply the hub's watermark: delete our rows with seq <= `seq`; return how many.

        A watermark of another stream (an older incarnation) is ignored.
        """
        if stream != self.stream or seq <= self._watermark:
            return 0
        return await self._run(partial(self._confirm, seq))

    async def stats(self) -> OutboxStats:
        """Depth, logical bytes, age, in-flight and drop counters, without scanning the table."""
        return await self._run(self._stats)

    async def _run(self, job: Callable[[], _T]) -> _T:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")
        try:
            return await self._loop.run_in_executor(self._executor, job)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc

    # --- on the writer thread -------------------------------------------------------------

    def _write(self, flat: list[str | int | float | bytes]) -> None:
        n = len(flat) // _COLUMNS
        bodies = cast("list[bytes]", flat[_COLUMNS - 1 :: _COLUMNS])
        added = sum(map(len, bodies)) + ROW_OVERHEAD_BYTES * n
        tally = replace(self._tally, depth=self._tally.depth + n, bytes=self._tally.bytes + added)
        with _transaction(self._conn):
            _insert(self._conn, flat, block=self._block_rows)
            if tally.bytes > self._downsample_bytes:
                tally = self._enforce_cap(tally)
        self._tally = tally

    def _enforce_cap(self, tally: _Tally) -> _Tally:
        before = tally.dropped
        tally = _thin(self._conn, tally, _TELEMETRY)
        for prio in (_TELEMETRY, _DETECTIONS):
            if tally.bytes > self._cap:
                tally = _drop_oldest(self._conn, tally, prio, excess=tally.bytes - self._cap)
        if tally.dropped != before:
            self._conn.executemany(_UPSERT_META, zip(_DROPPED_KEYS, tally.dropped, strict=True))
        self._report_cap(tally, dropped=tally.dropped != before)
        return tally

    def _report_cap(self, tally: _Tally, *, dropped: bool) -> None:
        # One log line per state change, not one per batch.
        if dropped and not self._over_cap:
            self._over_cap = True
            logger.warning(
                "outbox %s over %d%% of its %d-byte cap: dropping rows (dropped so far %s)",
                self.path,
                round(100 * self._downsample_bytes / self._cap),
                self._cap,
                dict(zip(_CLASSES, tally.dropped, strict=True)),
            )
        elif self._over_cap and tally.bytes <= self._downsample_bytes:
            self._over_cap = False
            logger.info("outbox %s back under its cap (%d bytes)", self.path, tally.bytes)

    def _claim(
        self,
        limit: int,
        live_since: float,
        backlog_limit: int,
        resend_before: float,
        resend_limit: int,
    ) -> list[OutgoingMessage]:
        conn, now, first = self._conn, self._clock(), self._next_seq
        with _transaction(conn):
            live = _pick_live(conn, limit, live_since)
            room = limit - len(live)
            wanted = min(room, resend_limit)
            resends = conn.execute(_SELECT_RESENDS, (resend_before, wanted)).fetchall()
            backlog = _pick_backlog(conn, room - len(resends), live_since, backlog_limit)
            fresh = live + backlog
            conn.executemany(_SET_SENT, ((now, row[0]) for row in resends))
            conn.executemany(_SET_SEQ, ((first + i, now, row[0]) for i, row in enumerate(fresh)))
            if fresh:
                conn.execute(_UPSERT_META, ("seq", first + len(fresh) - 1))
        self._next_seq = first + len(fresh)
        self._tally = replace(self._tally, inflight=self._tally.inflight + len(fresh))
        numbered = [
            self._message(first + i, kind, ts, body, first_sent=True, backlog=i >= len(live))
            for i, (_, kind, ts, body) in enumerate(fresh)
        ]
        again = [self._message(seq, kind, ts, body) for _, seq, kind, ts, body in resends]
        return numbered[: len(live)] + again + numbered[len(live) :]

    def _message(
        self,
        seq: int,
        kind: str,
        ts: int,
        body: bytes,
        *,
        first_sent: bool = False,
        backlog: bool = False,
    ) -> OutgoingMessage:
        # Byte concatenation, not pydantic: this runs for every published row.
        payload = b"".join(
            (
                self._prefix,
                str(seq).encode(),
                b',"ts":"',
                _iso(ts),
                b'","kind":"',
                kind.encode(),
                b'","body":',
                body,
                b"}",
            )
        )
        return OutgoingMessage(seq, _CHANNEL_BY_KIND[kind], payload, first_sent, backlog)

    def _confirm(self, seq: int) -> int:
        with _transaction(self._conn):
            sizes = self._conn.execute(
                "DELETE FROM rows WHERE seq IS NOT NULL AND seq <= ? RETURNING length(body)", (seq,)
            ).fetchall()
        n = len(sizes)
        # Remembered only up to the seqs handed out, so that a later confirm covers them.
        self._watermark = max(self._watermark, min(seq, self._next_seq - 1))
        self._tally = replace(
            self._tally,
            depth=self._tally.depth - n,
            bytes=self._tally.bytes - _logical([s for (s,) in sizes]),
            inflight=self._tally.inflight - n,
        )
        if self._over_cap and self._tally.bytes <= self._downsample_bytes:
            self._report_cap(self._tally, dropped=False)
        return n

    def _stats(self) -> OutboxStats:
        tally = self._tally
        return OutboxStats(
            stream=self.stream,
            depth=tally.depth,
            bytes=tally.bytes,
            oldest_ts=_oldest(self._conn),
            unsent=tally.depth - tally.inflight,
            inflight=tally.inflight,
            dropped=dict(zip(_CLASSES, tally.dropped, strict=True)),
            cap_bytes=self._cap,
        )


# --- SQL helpers (writer thread) ---------------------------------------------------------


class _transaction:  # noqa: N801 - used like contextlib's lower-case managers
    """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` when the body raises."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        # IMMEDIATE takes the write lock up front: no deadlock upgrading a read later.
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        elif self._conn.in_transaction:  # SQLite may already have rolled back (disk full)
            self._conn.execute("ROLLBACK")


def _insert(conn: sqlite3.Connection, flat: list[str | int | float | bytes], *, block: int) -> None:
    """Insert flat row values with multi-row INSERTs of `block` rows, then powers of two.

    One statement per block rather than `executemany`'s one per row: the sqlite3
    module releases the GIL for each statement it steps, so a block is inserted
    without the GIL while the event loop keeps running, instead of fighting for
    the GIL once per row.
    """
    rows, start = len(flat) // _COLUMNS, 0
    while start < rows:
        size = min(block, 1 << ((rows - start).bit_length() - 1))
        conn.execute(_insert_sql(size), flat[start * _COLUMNS : (start + size) * _COLUMNS])
        start += size


@functools.cache
def _insert_sql(rows: int) -> str:
    """`INSERT_SQL` for `rows` rows: few sizes, so sqlite3's statement cache holds them all."""
    return INSERT_SQL + ", (?, ?, ?, ?, ?)" * (rows - 1)


def _pick_live(
    conn: sqlite3.Connection, room: int, live_since: float
) -> list[tuple[int, str, int, bytes]]:
    """Unnumbered rows to publish first: safety rows, then live data."""
    rows: list[tuple[int, str, int, bytes]] = []
    if room > 0:
        rows += conn.execute(_SELECT_SAFETY, (room,)).fetchall()
    if room > len(rows):
        rows += conn.execute(_SELECT_LIVE, (live_since, room - len(rows))).fetchall()
    return rows


def _pick_backlog(
    conn: sqlite3.Connection, room: int, live_since: float, backlog_limit: int
) -> list[tuple[int, str, int, bytes]]:
    """Unnumbered rows from before `live_since`, at most `backlog_limit`."""
    backlog = min(room, backlog_limit)
    if backlog <= 0:
        return []
    return list(conn.execute(_SELECT_BACKLOG, (live_since, backlog)).fetchall())


def _thin(conn: sqlite3.Connection, tally: _Tally, prio: int) -> _Tally:
    """Delete every second row of the older half of the unnumbered rows of `prio`."""
    (count,) = conn.execute(
        "SELECT count(*) FROM rows WHERE seq IS NULL AND prio = ?", (prio,)
    ).fetchone()
    sizes = conn.execute(_THIN_OLDER_HALF, (prio, count // 2)).fetchall()
    return tally.dropping(prio, [s for (s,) in sizes])


def _drop_oldest(conn: sqlite3.Connection, tally: _Tally, prio: int, *, excess: int) -> _Tally:
    """Delete the oldest unnumbered rows of `prio` until `excess` logical bytes are freed."""
    freed, last_id = 0, None
    cursor = conn.execute(
        "SELECT id, length(body) FROM rows WHERE seq IS NULL AND prio = ? ORDER BY id", (prio,)
    )
    for row_id, size in cursor:
        freed, last_id = freed + size + ROW_OVERHEAD_BYTES, row_id
        if freed >= excess:
            break
    cursor.close()
    if last_id is None:
        return tally
    sizes = conn.execute(
        "DELETE FROM rows WHERE seq IS NULL AND prio = ? AND id <= ? RETURNING length(body)",
        (prio, last_id),
    ).fetchall()
    return tally.dropping(prio, [s for (s,) in sizes])


def _oldest(conn: sqlite3.Connection) -> datetime | None:
    """When the oldest row was put (None when empty)."""
    row = conn.execute("SELECT enq FROM rows ORDER BY id LIMIT 1").fetchone()
    return None if row is None else datetime.fromtimestamp(row[0], UTC)


# --- opening -----------------------------------------------------------------------------


def _check_arguments(*, device: str, synchronous: str, cap_bytes: int) -> None:
    try:
        check_device_id(device)
    except TopicError as exc:
        raise OutboxError(str(exc)) from exc
    if synchronous not in ("NORMAL", "FULL"):
        raise OutboxError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
    if cap_bytes <= 0:
        raise OutboxError(f"cap_bytes must be positive, got {cap_bytes}")


def _open_writer(
    path: Path, *, device: str, synchronous: Synchronous, cap: int
) -> tuple[sqlite3.Connection, str, _Tally, int]:
    """Open the write connection, migrate, and load stream, counters and totals."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
    try:
        configure(conn, synchronous=synchronous)
        migrate(sqlite_utils.Database(conn))
        meta = _init_meta(conn, path=path, device=device, cap=cap)
        return conn, meta["stream"], _load_tally(conn, meta), int(meta["seq"]) + 1
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
        raise


def configure(conn: sqlite3.Connection, *, synchronous: Synchronous) -> None:
    """The outbox's PRAGMAs: WAL, `synchronous`, busy timeout (the benchmark reuses them)."""
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")


def migrate(db: sqlite_utils.Database) -> None:
    """Bring the schema (tables `rows`, `meta`) up to `SCHEMA_VERSION`; steps are idempotent."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise OutboxError(
            f"outbox schema version {version} is newer than this agent's {SCHEMA_VERSION}: "
            "upgrade the agent, or export the buffer and move the file aside"
        )
    for step, target in zip(
        _MIGRATIONS[version:], range(version + 1, SCHEMA_VERSION + 1), strict=True
    ):
        step(db)
        db.execute(f"PRAGMA user_version = {target}")  # last, so a crash re-runs the step


def _schema_v1(db: sqlite_utils.Database) -> None:
    db.table("rows").create(
        {
            "id": int,
            "kind": str,  # the channel, also the envelope's `kind`
            "prio": int,  # 0 safety, 1 detections, 2 telemetry
            "enq": float,  # epoch seconds when put(): live vs backlog, oldest_ts
            "ts": int,  # the envelope's ts, microseconds since the epoch (UTC)
            "seq": int,  # NULL until first claimed
            "sent_at": float,  # epoch seconds of the last publish
            "body": bytes,  # the encoded envelope body
        },
        pk="id",
        not_null={"kind", "prio", "enq", "ts", "body"},
        if_not_exists=True,
    )
    db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    for sql in _INDEXES:
        db.execute(sql)


_MIGRATIONS: Final[tuple[Callable[[sqlite_utils.Database], None], ...]] = (_schema_v1,)


def _init_meta(conn: sqlite3.Connection, *, path: Path, device: str, cap: int) -> dict[str, str]:
    """Create the stream on first open; check the device; record the cap for `read_stats`."""
    with _transaction(conn):
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if "stream" not in meta:
            meta = {"stream": secrets.token_hex(8), "device": device, "seq": "0"}
            meta |= dict.fromkeys(_DROPPED_KEYS, "0")
        elif meta.get("device", device) != device:
            raise OutboxError(
                f"outbox {path} holds messages of device {meta['device']!r}, not {device!r}: "
                "export it with `edge-agent buffer export` and move it aside"
            )
        meta["cap_bytes"] = str(cap)
        conn.executemany(_UPSERT_META, meta.items())
    return meta


def _load_tally(conn: sqlite3.Connection, meta: dict[str, str]) -> _Tally:
    """Totals from one scan at open; the writer keeps them current afterwards."""
    depth, body_bytes, inflight = conn.execute(
        "SELECT count(*), coalesce(sum(length(body)), 0), count(seq) FROM rows"
    ).fetchone()
    d = [int(meta.get(key, "0")) for key in _DROPPED_KEYS]
    return _Tally(depth, body_bytes + ROW_OVERHEAD_BYTES * depth, inflight, (d[0], d[1], d[2]))


# --- small pure helpers ------------------------------------------------------------------


def _logical(sizes: Sequence[int]) -> int:
    return sum(sizes) + ROW_OVERHEAD_BYTES * len(sizes)


def _micros(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise OutboxError(f"ts must be timezone-aware, got {ts!r}")
    return (ts - _EPOCH) // _MICROSECOND


def _iso(micros: int) -> bytes:
    """ISO 8601 UTC with `Z`, exactly as pydantic renders an aware datetime."""
    return (_NAIVE_EPOCH + timedelta(microseconds=micros)).isoformat().encode() + b"Z"


# --- read-only access while the agent runs ------------------------------------------------


def _open_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection; WAL lets it read while the agent writes."""
    if not path.is_file():
        raise OutboxError(f"no outbox at {path}")
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
        )
        conn.execute("SELECT 1 FROM meta LIMIT 1")
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot read outbox {path}: {exc}") from exc
    return conn


def read_stats(path: Path) -> OutboxStats:
    """The outbox's stats, read-only: for `edge-agent status` while the agent runs."""
    with closing(_open_reader(path)) as conn:
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            tally = _load_tally(conn, meta)
            oldest = _oldest(conn)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot read outbox {path}: {exc}") from exc
    return OutboxStats(
        stream=meta.get("stream", ""),
        depth=tally.depth,
        bytes=tally.bytes,
        oldest_ts=oldest,
        unsent=tally.depth - tally.inflight,
        inflight=tally.inflight,
        dropped=dict(zip(_CLASSES, tally.dropped, strict=True)),
        cap_bytes=int(meta.get("cap_bytes", "0")),
    )


def export_rows(path: Path, out: IO[str], *, limit: int | None = None) -> int:
    """Write the outbox's rows, oldest first, as JSON lines to `out`; return how many.

    Each line: `{"id", "stream", "seq", "kind", "class", "ts", "enqueued_at",
    "sent_at", "bytes", "body"}`; `body` is the message body as JSON (or
    `body_base64` when the stored bytes are not JSON). Read-only.
    """
    with closing(_open_reader(path)) as conn:
        db = sqlite_utils.Database(conn, execute_plugins=False)
        try:
            stream = dict(conn.execute("SELECT key, value FROM meta").fetchall()).get("stream")
            count = 0
            for row in db.table("rows").rows_where(order_by="id", limit=limit):
                out.write(_export_line(row, stream))
                count += 1
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot read outbox {path}: {exc}") from exc
    return count


def _export_line(row: dict[str, Any], stream: str | None) -> str:
    body: bytes = row["body"]
    line: dict[str, Any] = {
        "id": row["id"],
        "stream": stream,
        "seq": row["seq"],
        "kind": row["kind"],
        "class": _CLASSES[row["prio"]].value,
        "ts": _iso(row["ts"]).decode(),
        "enqueued_at": datetime.fromtimestamp(row["enq"], UTC).isoformat(),
        "sent_at": None
        if row["sent_at"] is None
        else datetime.fromtimestamp(row["sent_at"], UTC).isoformat(),
        "bytes": len(body),
    }
    line.update(_export_body(body))
    return orjson.dumps(line).decode() + "\n"


def _export_body(body: bytes) -> dict[str, Any]:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}
    return {"body": orjson.Fragment(body)}
