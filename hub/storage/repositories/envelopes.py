"""Storing uplink envelopes idempotently, and the device status they carry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Table, case, func
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import (
    AckRow,
    Detection,
    DeviceStatus,
    EventRow,
    FrameRow,
    ReceivedSeq,
    Telemetry,
    table_of,
)
from hub.storage.repositories.bulk import dialect_insert, insert_ignore
from hub.storage.repositories.commands import advance_commands
from hub.storage.rows import Row, Uplink, plan_rows

DATA_TABLES = ("telemetry", "detections", "events", "acks", "frames", "device_status")
"""Tables whose counts make up `StoreResult.inserted` / `.duplicates`."""


@dataclass(frozen=True, slots=True)
class TableCounts:
    """Rows written to one table, and rows skipped because they were already there.

    For `device_status`, `inserted` counts states applied and `duplicates` states
    ignored because a newer one was already stored.
    """

    inserted: int = 0
    duplicates: int = 0


@dataclass(frozen=True)
class StoreResult:
    """What `store_envelopes` did, per table (`telemetry`, ..., `received_seqs`)."""

    tables: Mapping[str, TableCounts]

    @property
    def inserted(self) -> int:
        """Rows written to the data tables (everything but `received_seqs`)."""
        return sum(self.tables.get(t, TableCounts()).inserted for t in DATA_TABLES)

    @property
    def duplicates(self) -> int:
        """Rows of the data tables skipped as re-sends (or stale states)."""
        return sum(self.tables.get(t, TableCounts()).duplicates for t in DATA_TABLES)


_ROW_TABLES: tuple[tuple[str, Table], ...] = (
    ("telemetry", table_of(Telemetry)),
    ("detections", table_of(Detection)),
    ("events", table_of(EventRow)),
    ("acks", table_of(AckRow)),
    ("frames", table_of(FrameRow)),
    ("received_seqs", table_of(ReceivedSeq)),
)


@translated
async def store_envelopes(session: AsyncSession, *, envelopes: Sequence[Uplink]) -> StoreResult:
    """Write a batch of envelopes, each to its table, skipping what is already stored.

    Every envelope's `(device, stream, seq)` lands in `received_seqs` (frames sent
    for inference only there); snapshot and capture frames land in `frames`; `state`
    envelopes update `device_status` when newer; `ack` envelopes advance the status of
    the command they answer (`commands`). Runs in the caller's transaction: commit it
    to make the batch durable, all or nothing.

    Example:
        >>> async def ingest(sessions, envelopes):
        ...     async with sessions() as session, session.begin():
        ...         return await store_envelopes(session, envelopes=envelopes)
    """
    plan = plan_rows(envelopes)
    rows_by_table = {
        "telemetry": plan.telemetry,
        "detections": plan.detections,
        "events": plan.events,
        "acks": plan.acks,
        "frames": plan.frames,
        "received_seqs": plan.received,
    }
    counts: dict[str, TableCounts] = {}
    for name, table in _ROW_TABLES:
        rows = rows_by_table[name]
        inserted = await insert_ignore(session, table=table, rows=rows)
        counts[name] = TableCounts(inserted, len(rows) - inserted)
    applied = await _apply_states(session, states=plan.states.values())
    counts["device_status"] = TableCounts(applied, plan.state_envelopes - applied)
    # Every ack, even one already stored: advancing is idempotent, and a re-send after a
    # crash between the two writes must still reach the command.
    await advance_commands(session, acks=plan.acks)
    return StoreResult(counts)


async def _apply_states(session: AsyncSession, *, states: Iterable[Row]) -> int:
    """Upsert `device_status` rows where `state_ts` is newer; return how many applied.

    A state that is not newer than the stored one (a late re-send) changes nothing.
    An offline state (the last will) flips `online` and `state_ts` but keeps the
    last state the agent reported itself, its `agent_version` and `last_seen`.
    """
    rows = list(states)
    if not rows:
        return 0
    applied = 0
    conn = await session.connection()
    insert = dialect_insert(conn)
    table = table_of(DeviceStatus)
    for row in rows:
        statement = insert(table).values(row)
        new = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.device],
            set_={
                "online": new.online,
                "state_ts": new.state_ts,
                "last_seen": case((new.online, new.last_seen), else_=table.c.last_seen),
                "state": case((new.online, new.state), else_=table.c.state),
                "agent_version": func.coalesce(new.agent_version, table.c.agent_version),
            },
            where=table.c.state_ts < new.state_ts,
        )
        applied += (await conn.execute(statement)).rowcount
    return applied
