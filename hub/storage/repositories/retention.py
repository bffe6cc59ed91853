"""Retention: delete what is older than the configured ages, archiving raw telemetry first."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hub.storage.archive import append_points
from hub.storage.errors import translated
from hub.storage.models import (
    AckRow,
    Base,
    DeadLetter,
    Detection,
    EventRow,
    FrameRow,
    ReceivedSeq,
    Telemetry,
    TelemetryRollup,
)
from hub.storage.repositories.marks import WILL_STREAM

ARCHIVE_CHUNK = 20_000
"""Raw points deleted (and returned for the archive) per statement."""
ARCHIVE_FLUSH = 200_000
"""Points buffered before they are written out as gzip members."""


@dataclass(frozen=True)
class RetentionResult:
    """Rows deleted per table, and the archive files written."""

    deleted: dict[str, int]
    archived: int = 0
    files: list[Path] = field(default_factory=list)


@translated
async def enforce_retention(
    session: AsyncSession,
    *,
    now: datetime,
    raw_days: float,
    rollup_days: float,
    events_days: float,
    archive_dir: Path | None,
    frames_days: float = 7,
) -> RetentionResult:
    """Delete raw telemetry and detections older than `raw_days`, rollups older than
    `rollup_days`, events, acks, dead letters and last-will seqs older than `events_days`,
    and snapshot and capture frames older than `frames_days`.

    With `archive_dir`, raw telemetry is archived before it goes (see
    `hub.storage.archive`); the archive files are complete before this returns, so
    committing the caller's transaction afterwards never loses a point.

    Example:
        >>> async def nightly(session, now):
        ...     return await enforce_retention(session, now=now, raw_days=30, rollup_days=400,
        ...                                    events_days=400, archive_dir=None)
    """
    conn = await session.connection()
    raw_cutoff = now - timedelta(days=raw_days)
    events_cutoff = now - timedelta(days=events_days)
    deleted: dict[str, int] = {}
    archived, files = 0, list[Path]()
    if archive_dir is None:
        deleted["telemetry"] = await _delete(conn, Telemetry, Telemetry.ts < raw_cutoff)
    else:
        archived, files = await _archive_and_delete(conn, raw_cutoff, archive_dir)
        deleted["telemetry"] = archived
    deleted["detections"] = await _delete(conn, Detection, Detection.ts < raw_cutoff)
    deleted["telemetry_rollups"] = await _delete(
        conn, TelemetryRollup, TelemetryRollup.minute < now - timedelta(days=rollup_days)
    )
    deleted["events"] = await _delete(conn, EventRow, EventRow.ts < events_cutoff)
    deleted["acks"] = await _delete(conn, AckRow, AckRow.at < events_cutoff)
    deleted["deadletters"] = await _delete(conn, DeadLetter, DeadLetter.received_at < events_cutoff)
    deleted["frames"] = await _delete(
        conn, FrameRow, FrameRow.ts < now - timedelta(days=frames_days)
    )
    will_cutoff_ms = int(events_cutoff.timestamp() * 1000)
    deleted["received_seqs"] = await _delete(
        conn, ReceivedSeq, ReceivedSeq.stream == WILL_STREAM, ReceivedSeq.seq < will_cutoff_ms
    )
    return RetentionResult(deleted, archived, files)


async def _delete(conn: AsyncConnection, model: type[Base], *where: ColumnElement[bool]) -> int:
    return (await conn.execute(delete(model).where(*where))).rowcount


_RAW_COLUMNS = (
    Telemetry.device,
    Telemetry.stream,
    Telemetry.seq,
    Telemetry.idx,
    Telemetry.ts,
    Telemetry.metric,
    Telemetry.value,
    Telemetry.tags,
)
_RAW_KEY = (Telemetry.device, Telemetry.stream, Telemetry.seq, Telemetry.idx)


async def _archive_and_delete(
    conn: AsyncConnection, cutoff: datetime, root: Path
) -> tuple[int, list[Path]]:
    """Delete old points chunk by chunk with RETURNING, writing them out as they come."""
    total, buffered, files = 0, list[dict[str, Any]](), set[Path]()
    while True:
        victims = select(*_RAW_KEY).where(Telemetry.ts < cutoff).limit(ARCHIVE_CHUNK)
        statement = delete(Telemetry).where(tuple_(*_RAW_KEY).in_(victims)).returning(*_RAW_COLUMNS)
        rows = [dict(row._mapping) for row in await conn.execute(statement)]
        total += len(rows)
        buffered.extend(rows)
        if len(buffered) >= ARCHIVE_FLUSH or len(rows) < ARCHIVE_CHUNK:
            files.update(await _write(root, buffered))
            buffered = []
        if len(rows) < ARCHIVE_CHUNK:
            return total, sorted(files)


async def _write(root: Path, points: list[dict[str, Any]]) -> list[Path]:
    points.sort(key=lambda p: (p["device"], p["ts"], p["stream"], p["seq"], p["idx"]))
    return await asyncio.to_thread(append_points, root, points)
