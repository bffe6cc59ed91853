"""Refresh tokens: single use, grouped in families (one family per login session).

Only a SHA-256 of each token's secret is stored. Using a token marks it used
(atomically, so two concurrent uses cannot both succeed); a second use of the
same token is a replay and revokes the whole family.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import RefreshToken

KEEP_EXPIRED = timedelta(days=1)
"""How long expired tokens stay (so a late replay is still recognised as one)."""


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """A stored refresh token."""

    id: str
    user_id: int
    family: str
    token_hash: str
    token_version: int
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@translated
async def store_refresh_token(
    session: AsyncSession,
    *,
    token_id: str,
    user_id: int,
    family: str,
    token_hash: str,
    token_version: int,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Store a new token, and drop the user's tokens that expired long ago."""
    await session.execute(
        delete(RefreshToken).where(
            RefreshToken.user_id == user_id, RefreshToken.expires_at < now - KEEP_EXPIRED
        )
    )
    session.add(
        RefreshToken(
            id=token_id,
            user_id=user_id,
            family=family,
            token_hash=token_hash,
            token_version=token_version,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()


@translated
async def refresh_token(session: AsyncSession, *, token_id: str) -> RefreshRecord | None:
    """The stored token with this id, or None."""
    row = await session.get(RefreshToken, token_id)
    if row is None:
        return None
    return RefreshRecord(
        row.id,
        row.user_id,
        row.family,
        row.token_hash,
        row.token_version,
        row.expires_at,
        row.used_at,
        row.revoked_at,
    )


@translated
async def use_refresh_token(session: AsyncSession, *, token_id: str, now: datetime) -> bool:
    """Mark the token used; False when it was used (or revoked) before."""
    result = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(used_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


@translated
async def revoke_refresh_tokens(
    session: AsyncSession, *, now: datetime, family: str | None = None, user_id: int | None = None
) -> int:
    """Revoke a family's tokens, or all of a user's; how many were still live."""
    if family is None and user_id is None:
        raise ValueError("name a family or a user: revoking every token is not done here")
    query = update(RefreshToken).where(RefreshToken.revoked_at.is_(None))
    if family is not None:
        query = query.where(RefreshToken.family == family)
    if user_id is not None:
        query = query.where(RefreshToken.user_id == user_id)
    result = await session.execute(query.values(revoked_at=now))
    return int(getattr(result, "rowcount", 0))
