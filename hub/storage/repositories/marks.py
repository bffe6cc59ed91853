"""The `ingested` watermark: the highest seq of a stream below which nothing is missing."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, delete, exists, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.storage.errors import translated
from hub.storage.models import ReceivedSeq, StreamMark
from hub.storage.repositories.bulk import dialect_insert
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
    the caller's transaction, normally the one that stored the envelopes, in four
    statements whatever the number of keys.

    Example:
        >>> async def after_store(session, envelopes):
        ...     return await advance_marks(session, keys={(e.device, e.stream) for e in envelopes})
    """
    wanted = _marked(keys)
    if not wanted:
        return {}
    marks = {key: 0 for key in wanted} | await current_marks(session, keys=wanted)
    tops = await _contiguous_tops(session, marks)
    moved = await _raise_marks(session, {k: top for k, top in tops.items() if top > marks[k]})
    await _compact(session, {key: max(mark, tops.get(key, mark)) for key, mark in marks.items()})
    return {key: tops[key] for key in moved}


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


async def _contiguous_tops(session: AsyncSession, marks: dict[Key, int]) -> dict[Key, int]:
    """Per key, the end of the run of received seqs that starts at `mark + 1`; keys whose
    `mark + 1` was not received are absent."""
    after = aliased(ReceivedSeq)
    has_next = (
        exists()
        .where(
            after.device == ReceivedSeq.device,
            after.stream == ReceivedSeq.stream,
            after.seq == ReceivedSeq.seq + 1,
        )
        .correlate(ReceivedSeq)
    )
    # Only the first seq above each mark and the ends of runs above it come back.
    query = select(ReceivedSeq.device, ReceivedSeq.stream, ReceivedSeq.seq, has_next).where(
        or_(
            *(
                and_(
                    ReceivedSeq.device == device,
                    ReceivedSeq.stream == stream,
                    ReceivedSeq.seq > mark,
                    or_(ReceivedSeq.seq == mark + 1, ~has_next),
                )
                for (device, stream), mark in marks.items()
            )
        )
    )
    starts: set[Key] = set()
    ends: dict[Key, list[int]] = {}
    for device, stream, seq, continues in (await session.execute(query)).all():
        key = (device, stream)
        if seq == marks[key] + 1:
            starts.add(key)
        if not continues:
            ends.setdefault(key, []).append(seq)
    return {key: min(ends[key]) for key in starts}


async def _raise_marks(session: AsyncSession, tops: dict[Key, int]) -> set[Key]:
    """Upsert the marks only upwards; the keys a racing worker already took as far are absent."""
    if not tops:
        return set()
    conn = await session.connection()
    insert = dialect_insert(conn)
    statement = insert(StreamMark).values(
        [{"device": d, "stream": s, "seq": seq} for (d, s), seq in tops.items()]
    )
    upsert = statement.on_conflict_do_update(
        index_elements=[StreamMark.device, StreamMark.stream],
        set_={"seq": statement.excluded.seq},
        where=StreamMark.seq < statement.excluded.seq,
    ).returning(StreamMark.device, StreamMark.stream)
    return {(d, s) for d, s in (await conn.execute(upsert)).all()}


async def _compact(session: AsyncSession, marks: dict[Key, int]) -> None:
    """Delete the received seqs each mark covers (seqs start at 1: a mark of 0 covers none)."""
    marks = {key: mark for key, mark in marks.items() if mark > 0}
    if not marks:
        return
    conn = await session.connection()
    await conn.execute(
        delete(ReceivedSeq).where(
            or_(
                *(
                    and_(
                        ReceivedSeq.device == device,
                        ReceivedSeq.stream == stream,
                        ReceivedSeq.seq <= mark,
                    )
                    for (device, stream), mark in marks.items()
                )
            )
        )
    )
