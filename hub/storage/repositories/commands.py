"""Commands the hub sent (`commands`) and the device acks that advance them (`acks`).

A command's `status_rank` only grows: `sent`/`publish_failed` 0, `received` 1,
`executing` 2, a final status 3. Every update is conditional on a lower rank, so
acks applied twice or out of order (a re-sent `received` after `done`) leave the
most advanced state in place.

Example:
    >>> STATUS_RANK["received"] < STATUS_RANK["executing"] < STATUS_RANK["done"]
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import AckRow, CommandRow, table_of

STATUS_RANK: Mapping[str, int] = {
    "sent": 0,
    "publish_failed": 0,
    "received": 1,
    "executing": 2,
    "done": 3,
    "failed": 3,
    "rejected": 3,
    "expired": 3,
}
"""How far along a status is; a command never moves to a lower rank."""


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A command as stored."""

    cmd_id: str
    device_id: str
    site_id: str
    type: str
    params: dict[str, Any]
    issued_by: str
    issued_at: datetime
    expires_at: datetime
    reason: str | None
    sig: str
    batch: str | None
    status: str
    detail: str | None
    updated_at: datetime
    published_at: datetime | None = None
    publish_error: str | None = None


@dataclass(frozen=True, slots=True)
class AckRecord:
    """One lifecycle report of a device about a command."""

    status: str
    at: datetime
    detail: str | None
    reason: str | None


def _record(row: CommandRow) -> CommandRecord:
    return CommandRecord(
        cmd_id=row.cmd_id,
        device_id=row.device_id,
        site_id=row.site_id,
        type=row.type,
        params=dict(row.params or {}),
        issued_by=row.issued_by,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        reason=row.reason,
        sig=row.sig,
        batch=row.batch,
        status=row.status,
        detail=row.detail,
        updated_at=row.updated_at,
        published_at=row.published_at,
        publish_error=row.publish_error,
    )


@translated
async def insert_commands(session: AsyncSession, *, commands: Sequence[CommandRecord]) -> None:
    """Store new commands (their `cmd_id`s are fresh UUIDs: a clash is a bug, and raises)."""
    if not commands:
        return
    rows = [
        {
            "cmd_id": c.cmd_id,
            "device_id": c.device_id,
            "site_id": c.site_id,
            "type": c.type,
            "params": c.params,
            "issued_by": c.issued_by,
            "issued_at": c.issued_at,
            "expires_at": c.expires_at,
            "reason": c.reason,
            "sig": c.sig,
            "batch": c.batch,
            "status": c.status,
            "status_rank": STATUS_RANK[c.status],
            "detail": c.detail,
            "updated_at": c.updated_at,
            "published_at": c.published_at,
            "publish_error": c.publish_error,
        }
        for c in commands
    ]
    await session.execute(insert(table_of(CommandRow)), rows)


@translated
async def mark_published(session: AsyncSession, *, cmd_ids: Sequence[str], at: datetime) -> None:
    """The broker acknowledged these commands (PUBACK) at `at`."""
    if cmd_ids:
        await session.execute(
            update(CommandRow).where(CommandRow.cmd_id.in_(cmd_ids)).values(published_at=at)
        )


@translated
async def mark_publish_failed(
    session: AsyncSession, *, cmd_id: str, at: datetime, error: str
) -> None:
    """The publish failed: noted, and the status becomes `publish_failed` unless an ack came."""
    await session.execute(
        update(CommandRow)
        .where(CommandRow.cmd_id == cmd_id)
        .values(published_at=at, publish_error=error)
    )
    await session.execute(
        update(CommandRow)
        .where(CommandRow.cmd_id == cmd_id, CommandRow.status_rank == 0)
        .values(status="publish_failed", detail=error, updated_at=at)
    )


@translated
async def advance_commands(session: AsyncSession, *, acks: Sequence[Mapping[str, Any]]) -> int:
    """Apply `acks` rows (as written to `acks`) to their commands; return commands advanced.

    An ack changes a command only when it names the command's own device and is
    further along than the stored status; acks of commands the hub did not send
    (a test harness, another hub) match nothing.
    """
    params = [
        {
            "b_cmd_id": a["cmd_id"],
            "b_device": a["device"],
            "b_status": a["status"],
            "b_rank": STATUS_RANK[a["status"]],
            "b_detail": a.get("detail") or a.get("reason"),
            "b_at": a["at"],
        }
        for a in acks
        if a.get("status") in STATUS_RANK
    ]
    if not params:
        return 0
    table = table_of(CommandRow)
    statement = (
        update(table)
        .where(
            table.c.cmd_id == bindparam("b_cmd_id"),
            table.c.device_id == bindparam("b_device"),
            table.c.status_rank < bindparam("b_rank"),
        )
        .values(
            status=bindparam("b_status"),
            status_rank=bindparam("b_rank"),
            detail=bindparam("b_detail"),
            updated_at=bindparam("b_at"),
        )
    )
    advanced = 0
    # One at a time: acks of one command in one batch must each see the previous one.
    for one in params:
        result = await session.execute(statement, one)
        advanced += int(getattr(result, "rowcount", 0))
    return advanced


@translated
async def get_command(session: AsyncSession, *, cmd_id: str) -> CommandRecord | None:
    """The command, or None."""
    row = await session.get(CommandRow, cmd_id, populate_existing=True)
    return None if row is None else _record(row)


@translated
async def list_commands(
    session: AsyncSession,
    *,
    device_id: str,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[CommandRecord]:
    """Up to `limit` of the device's commands, newest first, older than `before`."""
    query = (
        select(CommandRow)
        .where(CommandRow.device_id == device_id)
        .order_by(CommandRow.issued_at.desc(), CommandRow.cmd_id.desc())
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    if before is not None:
        at, cmd_id = before
        query = query.where(
            or_(
                CommandRow.issued_at < at,
                and_(CommandRow.issued_at == at, CommandRow.cmd_id < cmd_id),
            )
        )
    return [_record(r) for r in await session.scalars(query)]


@translated
async def command_acks(session: AsyncSession, *, cmd_id: str, device_id: str) -> list[AckRecord]:
    """The device's acks of the command, by time (duplicates included)."""
    query = (
        select(AckRow.status, AckRow.at, AckRow.detail, AckRow.reason)
        .where(AckRow.cmd_id == cmd_id, AckRow.device == device_id)
        .order_by(AckRow.at, AckRow.stream, AckRow.seq)
    )
    return [AckRecord(r.status, r.at, r.detail, r.reason) for r in await session.execute(query)]
