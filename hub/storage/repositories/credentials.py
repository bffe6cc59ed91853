"""Device MQTT credentials: issued by the hub, checked by the embedded broker.

The password is random, shown once, and only its argon2 hash is stored.
Issuing again replaces the password (and lifts a revocation); revoking keeps the
row so an audit can tell a revoked device from an unknown one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import DeviceCredential

_hasher = PasswordHasher()


@dataclass(frozen=True)
class CredentialView:
    """A device credential as listed (never the password)."""

    device: str
    created_at: datetime
    revoked_at: datetime | None


def new_password() -> str:
    """A random password: 32 bytes of entropy, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    """The argon2id hash stored for `password`."""
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    """Whether `password` matches the stored hash (slow by design: run it off the loop).

    Example:
        >>> stored = hash_password("s3cret")
        >>> password_matches(stored, "s3cret"), password_matches(stored, "guess")
        (True, False)
    """
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@translated
async def issue_credentials(
    session: AsyncSession,
    *,
    device: str,
    password: str,
    now: datetime | None = None,
    password_hash: str | None = None,
) -> None:
    """Store (or replace) the device's password hash; a revoked device is re-admitted.

    `password_hash` (from `hash_password(password)`, computed off the event loop) saves
    hashing here, inside the caller's transaction.
    """
    now = now or datetime.now(UTC)
    digest = password_hash or hash_password(password)
    existing = await session.get(DeviceCredential, device)
    if existing is None:
        session.add(DeviceCredential(device=device, password_hash=digest, created_at=now))
    else:
        existing.password_hash, existing.created_at, existing.revoked_at = digest, now, None
    await session.flush()


@translated
async def revoke_credentials(
    session: AsyncSession, *, device: str, now: datetime | None = None
) -> bool:
    """Refuse the device's login from now on; False when it has no credentials."""
    result = await session.execute(
        update(DeviceCredential)
        .where(DeviceCredential.device == device)
        .values(revoked_at=now or datetime.now(UTC))
    )
    return bool(getattr(result, "rowcount", 0))


@translated
async def active_password_hash(session: AsyncSession, *, device: str) -> str | None:
    """The stored hash of a device that may log in, or None (unknown or revoked)."""
    row = await session.get(DeviceCredential, device)
    if row is None or row.revoked_at is not None:
        return None
    return row.password_hash


@translated
async def list_credentials(session: AsyncSession) -> list[CredentialView]:
    """Every device with credentials, by device id."""
    rows = await session.scalars(select(DeviceCredential).order_by(DeviceCredential.device))
    return [CredentialView(r.device, r.created_at, r.revoked_at) for r in rows]
