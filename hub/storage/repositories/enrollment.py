"""Enrollment tokens: rows of `enrollment_tokens`, found by the SHA-256 of the token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import EnrollmentToken


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An enrollment token as stored (never the token itself)."""

    id: int
    site_id: str
    group_id: int | None
    name_prefix: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by_device: str | None


def _record(row: EnrollmentToken) -> TokenRecord:
    return TokenRecord(
        row.id,
        row.site_id,
        row.group_id,
        row.name_prefix,
        row.created_by,
        row.created_at,
        row.expires_at,
        row.used_at,
        row.used_by_device,
    )


@translated
async def insert_token(
    session: AsyncSession,
    *,
    token_hash: str,
    site_id: str,
    group_id: int | None,
    name_prefix: str | None,
    created_by: str,
    now: datetime,
    expires_at: datetime,
) -> TokenRecord:
    """Store a new token's hash and what it enrolls into."""
    row = EnrollmentToken(
        token_hash=token_hash,
        site_id=site_id,
        group_id=group_id,
        name_prefix=name_prefix,
        created_by=created_by,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return _record(row)


@translated
async def token_for_update(session: AsyncSession, *, token_hash: str) -> TokenRecord | None:
    """The token with this hash, its row locked until the transaction ends; None if unknown."""
    row = await session.scalar(
        select(EnrollmentToken)
        .where(EnrollmentToken.token_hash == token_hash)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return None if row is None else _record(row)


@translated
async def mark_token_used(
    session: AsyncSession, *, token_id: int, device_id: str, now: datetime
) -> bool:
    """Spend the token on `device_id`; False when it was spent already."""
    result = await session.execute(
        update(EnrollmentToken)
        .where(EnrollmentToken.id == token_id, EnrollmentToken.used_at.is_(None))
        .values(used_at=now, used_by_device=device_id)
    )
    return bool(getattr(result, "rowcount", 0))
