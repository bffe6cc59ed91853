"""The `ingested` watermark: the highest seq of a stream below which nothing is missing."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, exists, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.storage.errors import translated
from hub.storage.models import ReceivedSeq, StreamMark
from protocol import is_gateway_stream

WILL_STREAM = "will"
"""Stream of last-will messages (`seq` = connection time in ms): it never has a watermark."""

Key = tuple[str, str]


def _marked(keys: Iterable[Key]) -> list[Key]:
    return sorted({key for key in keys if key[1] != WILL_STREAM and not is_gateway_stream(key[1])})


@translated
async def advance_marks(session: AsyncSession, *, keys: Iterable[Key]) -> dict[Key, int]:
    """Move each `(device, stream)` mark over the contiguous seqs received; return the moved.

    From the stored mark (0 when none) the mark advances while `mark + 1` is in
    `received_seqs`, never backwards: when two workers race, the higher mark wins.
    Received seqs at or below the mark are then deleted (they are covered). Runs in
    the caller's transaction, normally the one that stored the envelopes.

    Example:
        >>> async def after_store(session, envelopes):
        ...     return await advance_marks(session, keys={(e.device, e.stream) for e in envelopes})
    """
    moved: dict[Key, int] = {}
    for device, stream in _marked(keys):
        mark = await _stored_mark(session, device, stream)
        top = await _contiguous_top(session, device, stream, mark)
        if top > mark and await _raise_mark(session, device, stream, top):
            moved[(device, stream)] = top
        await _compact(session, device, stream, max(top, mark))
    return moved


@translated
async def current_marks(session: AsyncSession, *, keys: Iterable[Key]) -> dict[Key, int]:
    """The stored marks of `keys` (keys without a mark, and the `will` stream, are absent)."""
    wanted = _marked(keys)
    if not wanted:
        return {}
    query = select(StreamMark.device, StreamMark.stream, StreamMark.seq).where(
        tuple_(StreamMark.device, StreamMark.stream).in_(wanted)
    )
    rows = (await session.execute(query)).all()
    return {(device, stream): seq for device, stream, seq in rows}


async def _stored_mark(session: AsyncSession, device: str, stream: str) -> int:
    query = select(StreamMark.seq).where(StreamMark.device == device, StreamMark.stream == stream)
    return (await session.execute(query)).scalar_one_or_none() or 0


async def _contiguous_top(session: AsyncSession, device: str, stream: str, mark: int) -> int:
    """The end of the run of received seqs that starts at `mark + 1` (`mark` if none)."""
    here = (ReceivedSeq.device == device, ReceivedSeq.stream == stream)
    first = select(ReceivedSeq.seq).where(*here, ReceivedSeq.seq == mark + 1)
    if (await session.execute(first)).first() is None:
        return mark
    after = aliased(ReceivedSeq)
    has_next = exists().where(
        after.device == ReceivedSeq.device,
        after.stream == ReceivedSeq.stream,
        after.seq == ReceivedSeq.seq + 1,
    )
    end = select(func.min(ReceivedSeq.seq)).where(*here, ReceivedSeq.seq > mark, ~has_next)
    top = (await session.execute(end)).scalar_one()
    return int(top)


async def _raise_mark(session: AsyncSession, device: str, stream: str, seq: int) -> bool:
    """Upsert the mark only upwards; False when a racing worker already went as far."""
    conn = await session.connection()
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(StreamMark).values(device=device, stream=stream, seq=seq)
    statement = statement.on_conflict_do_update(
        index_elements=[StreamMark.device, StreamMark.stream],
        set_={"seq": statement.excluded.seq},
        where=StreamMark.seq < statement.excluded.seq,
    )
    return (await conn.execute(statement)).rowcount > 0


async def _compact(session: AsyncSession, device: str, stream: str, mark: int) -> None:
    conn = await session.connection()
    await conn.execute(
        delete(ReceivedSeq).where(
            ReceivedSeq.device == device, ReceivedSeq.stream == stream, ReceivedSeq.seq <= mark
        )
    )
