"""API keys: found by their public prefix, checked against a SHA-256 of their secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import ApiKey


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored (the secret itself is never stored)."""

    id: int
    user_id: int
    name: str
    prefix: str
    secret_hash: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _record(row: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        row.id,
        row.user_id,
        row.name,
        row.prefix,
        row.secret_hash,
        row.created_at,
        row.last_used_at,
        row.revoked_at,
    )


@translated
async def create_api_key(
    session: AsyncSession,
    *,
    user_id: int,
    name: str,
    prefix: str,
    secret_hash: str,
    now: datetime | None = None,
) -> ApiKeyRecord:
    """Store a new key for `user_id`."""
    row = ApiKey(
        user_id=user_id,
        name=name,
        prefix=prefix,
        secret_hash=secret_hash,
        created_at=now or datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return _record(row)


@translated
async def api_key_by_prefix(session: AsyncSession, *, prefix: str) -> ApiKeyRecord | None:
    """The key with this prefix (revoked or not), or None."""
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    return None if row is None else _record(row)


@translated
async def api_key_by_id(session: AsyncSession, *, key_id: int) -> ApiKeyRecord | None:
    """The key with this id, or None."""
    row = await session.get(ApiKey, key_id)
    return None if row is None else _record(row)


@translated
async def list_api_keys(session: AsyncSession, *, user_id: int | None) -> list[ApiKeyRecord]:
    """A user's keys (every user's when `user_id` is None), newest first."""
    query = select(ApiKey).order_by(ApiKey.id.desc())
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return [_record(r) for r in await session.scalars(query)]


@translated
async def revoke_api_key(session: AsyncSession, *, key_id: int, now: datetime) -> bool:
    """Mark a key revoked; False when it does not exist or was revoked already."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


@translated
async def touch_api_key(session: AsyncSession, *, key_id: int, now: datetime) -> None:
    """Record that the key was used at `now`."""
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
