"""`AuditLog`: append entries to the hash chain, page through it, verify it.

Appends are serialised by the repository's lock, so concurrent writers (API
processes, the control service) extend one chain and never fork it. Call
`record(entry, session=...)` inside the transaction that makes the change, so the
change and its audit row commit together; without a session it writes in a
transaction of its own.

Example:
    >>> async def grant(audit, sessions):
    ...     async with transaction(sessions) as session:
    ...         ...  # change something
    ...         await audit.record(Entry(actor="ana", role="admin", action="user.update",
    ...                                  decision="allowed", target="user:7"), session=session)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.audit.chain import GENESIS, ChainCheck, Entry, Problem, seal
from hub.storage.db import transaction
from hub.storage.repositories.audit import (
    AuditRecord,
    append_audit_row,
    audit_head,
    audit_row_hash,
    audit_rows,
    lock_audit_log,
)

logger = logging.getLogger(__name__)

VERIFY_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of walking the chain."""

    rows: int
    head: tuple[int, str] | None
    problem: Problem | None

    @property
    def intact(self) -> bool:
        """True when no break was found."""
        return self.problem is None


class AuditLog:
    """The hub's append-only, hash-chained audit log."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._clock = sessions, clock

    async def record(self, entry: Entry, *, session: AsyncSession | None = None) -> AuditRecord:
        """Append `entry`, in `session`'s transaction or in one of its own."""
        if session is not None:
            return await self._append(session, entry)
        async with transaction(self._sessions) as own:
            return await self._append(own, entry)

    async def _append(self, session: AsyncSession, entry: Entry) -> AuditRecord:
        await lock_audit_log(session)
        head = await audit_head(session)
        row_id, prev = (1, GENESIS) if head is None else (head[0] + 1, head[1])
        record = seal(entry, row_id=row_id, prev_hash=prev, at=self._clock())
        await append_audit_row(session, record=record)
        logger.debug("audit %s %s %s by %s", record.id, entry.action, entry.decision, entry.actor)
        return record

    async def page(
        self,
        *,
        before_id: int | None,
        limit: int,
        actor: str | None = None,
        action_prefix: str | None = None,
        decision: str | None = None,
    ) -> list[AuditRecord]:
        """Up to `limit` rows older than `before_id` (newest first)."""
        async with transaction(self._sessions) as session:
            return await audit_rows(
                session,
                before_id=before_id,
                limit=limit,
                newest_first=True,
                actor=actor,
                action_prefix=action_prefix,
                decision=decision,
            )

    async def verify(self, *, anchor: tuple[int, str] | None = None) -> Verdict:
        """Walk the whole chain from row 1; stop at the first break.

        `anchor` (an id and the hash it had when recorded elsewhere) must still be
        there, unchanged: that catches a truncated tail or a rewritten chain.
        """
        check = ChainCheck()
        while check.problem is None:
            async with transaction(self._sessions) as session:
                rows = await audit_rows(session, after_id=check.last_id, limit=VERIFY_PAGE)
            if not all(check.feed(row) for row in rows) or len(rows) < VERIFY_PAGE:
                break
        if check.problem is None and anchor is not None:
            check.problem = await self._check_anchor(anchor)
        head = (check.last_id, check.last_hash) if check.rows else None
        return Verdict(check.rows, head, check.problem)

    async def _check_anchor(self, anchor: tuple[int, str]) -> Problem | None:
        row_id, expected = anchor
        async with transaction(self._sessions) as session:
            stored = await audit_row_hash(session, row_id=row_id)
        if stored is None:
            return Problem(row_id, "truncated", f"row {row_id} of the anchor is gone (truncated)")
        if stored != expected:
            return Problem(
                row_id, "edited", f"row {row_id} no longer has the anchor's hash (chain rewritten)"
            )
        return None
