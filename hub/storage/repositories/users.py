"""Hub users (people and service accounts of the API): rows of `users`.

Passwords arrive here already hashed; `token_version` is bumped by every change
that must end the user's outstanding sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import StorageError, translated
from hub.storage.models import User


class UsernameTaken(StorageError):
    """A user with that name exists already."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as stored (including the password hash: never send it out)."""

    id: int
    username: str
    password_hash: str
    role: str
    sites: tuple[str, ...] | None
    created_at: datetime
    disabled: bool
    token_version: int


def _record(row: User) -> UserRecord:
    sites = None if row.sites is None else tuple(row.sites)
    return UserRecord(
        row.id,
        row.username,
        row.password_hash,
        row.role,
        sites,
        row.created_at,
        row.disabled,
        row.token_version,
    )


@translated
async def lock_users(session: AsyncSession) -> None:
    """Hold off other writers of `users` until this transaction ends.

    SQLite transactions already hold the database's write lock (`BEGIN IMMEDIATE`).
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"))


@translated
async def count_users(session: AsyncSession, *, role: str | None = None) -> int:
    """Users in total, or enabled users of `role`."""
    query = select(func.count()).select_from(User)
    if role is not None:
        query = query.where(User.role == role, User.disabled.is_(False))
    return int((await session.execute(query)).scalar_one())


@translated
async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password_hash: str,
    role: str,
    sites: list[str] | None,
    now: datetime | None = None,
) -> UserRecord:
    """Add a user; `UsernameTaken` when the name is in use."""
    row = User(
        username=username,
        password_hash=password_hash,
        role=role,
        sites=sites,
        created_at=now or datetime.now(UTC),
        disabled=False,
        token_version=1,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        raise UsernameTaken(f"user {username!r} exists already") from exc
    return _record(row)


@translated
async def get_user(
    session: AsyncSession, *, user_id: int | None = None, username: str | None = None
) -> UserRecord | None:
    """A user by id or by name, or None."""
    if user_id is not None:
        row = await session.get(User, user_id)
    else:
        row = await session.scalar(select(User).where(User.username == username))
    return None if row is None else _record(row)


@translated
async def list_users(session: AsyncSession) -> list[UserRecord]:
    """Every user, by id."""
    return [_record(r) for r in await session.scalars(select(User).order_by(User.id))]


@translated
async def update_user(
    session: AsyncSession, *, user_id: int, changes: dict[str, Any], bump_version: bool
) -> UserRecord | None:
    """Apply `changes` (column → value) to a user; None when there is no such user."""
    values = dict(changes)
    if bump_version:
        values["token_version"] = User.token_version + 1
    if values:
        await session.execute(update(User).where(User.id == user_id).values(**values))
    row = await session.get(User, user_id, populate_existing=True)
    return None if row is None else _record(row)
