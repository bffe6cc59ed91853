"""The audit log's rows: append under a lock, read in id order.

Hashing is the caller's business (`hub.audit`); this module only makes sure two
writers cannot both append after the same row: on PostgreSQL the table is locked
in EXCLUSIVE mode (readers go on, other writers wait until the transaction ends);
on SQLite every transaction already holds the database's write lock.

A `SELECT ... FOR UPDATE` on the last row would not do: it locks nothing when the
table is empty, and a waiter wakes up holding the same old last row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import AuditRow


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One stored audit row, exactly as stored."""

    id: int
    at: datetime
    actor: str
    role: str | None
    action: str
    target: str | None
    decision: str
    result: str | None
    detail: str
    prev_hash: str
    hash: str


def _record(row: AuditRow) -> AuditRecord:
    return AuditRecord(
        row.id,
        row.at,
        row.actor,
        row.role,
        row.action,
        row.target,
        row.decision,
        row.result,
        row.detail,
        row.prev_hash,
        row.hash,
    )


@translated
async def lock_audit_log(session: AsyncSession) -> None:
    """Make other appenders wait until this transaction ends (see the module doc)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))


@translated
async def audit_head(session: AsyncSession) -> tuple[int, str] | None:
    """(id, hash) of the newest row, or None when the log is empty."""
    query = select(AuditRow.id, AuditRow.hash).order_by(AuditRow.id.desc()).limit(1)
    row = (await session.execute(query)).first()
    return None if row is None else (row.id, row.hash)


@translated
async def append_audit_row(session: AsyncSession, *, record: AuditRecord) -> None:
    """Insert a sealed row (call `lock_audit_log` first, in the same transaction)."""
    session.add(
        AuditRow(
            id=record.id,
            at=record.at,
            actor=record.actor,
            role=record.role,
            action=record.action,
            target=record.target,
            decision=record.decision,
            result=record.result,
            detail=record.detail,
            prev_hash=record.prev_hash,
            hash=record.hash,
        )
    )
    await session.flush()


@translated
async def audit_rows(
    session: AsyncSession,
    *,
    after_id: int | None = None,
    before_id: int | None = None,
    limit: int,
    newest_first: bool = False,
    actor: str | None = None,
    action_prefix: str | None = None,
    decision: str | None = None,
) -> list[AuditRecord]:
    """Rows with ids in (after_id, before_id), oldest or newest first, optionally filtered."""
    query = select(AuditRow)
    if after_id is not None:
        query = query.where(AuditRow.id > after_id)
    if before_id is not None:
        query = query.where(AuditRow.id < before_id)
    if actor is not None:
        query = query.where(AuditRow.actor == actor)
    if action_prefix is not None:
        query = query.where(AuditRow.action.startswith(action_prefix, autoescape=True))
    if decision is not None:
        query = query.where(AuditRow.decision == decision)
    order = AuditRow.id.desc() if newest_first else AuditRow.id.asc()
    return [_record(row) for row in await session.scalars(query.order_by(order).limit(limit))]


@translated
async def audit_row_hash(session: AsyncSession, *, row_id: int) -> str | None:
    """The stored hash of one row, or None when there is no such row."""
    return await session.scalar(select(AuditRow.hash).where(AuditRow.id == row_id))
