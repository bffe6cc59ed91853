"""`UserService`: create, change and list hub users; every change is audited.

Used by the API (admin routes) and by `outpost hub init` / `outpost hub user …`,
which act as `system`. A change to a password, role, scope or the disabled flag
ends the user's sessions (their `token_version` moves on and their refresh
tokens are revoked). The last enabled admin cannot be demoted or disabled.

Example:
    >>> async def first_admin(users: UserService) -> int:
    ...     admin = await users.init_admin(username="root", password="a long passphrase")
    ...     return admin.id
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.audit.chain import SYSTEM, Actor, Entry
from hub.audit.log import AuditLog
from hub.auth.errors import Conflict, NotFound
from hub.auth.passwords import hash_user_password
from hub.auth.policy import check_password, check_scope, check_sites, check_username
from hub.auth.principal import Role
from hub.storage.db import transaction
from hub.storage.repositories import users as repo
from hub.storage.repositories.refresh_tokens import revoke_refresh_tokens
from hub.storage.repositories.users import UsernameTaken, UserRecord

_UNSET: Any = object()


@dataclass(frozen=True)
class UserChanges:
    """A partial update: only the fields given change (`sites=None` means every site)."""

    role: Role | None = None
    sites: list[str] | None = field(default=_UNSET)
    disabled: bool | None = None
    password: str | None = None

    @property
    def sets_sites(self) -> bool:
        """Whether `sites` was given (None included)."""
        return self.sites is not _UNSET


class UserService:
    """Hub users: the only place users are created or changed."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        audit: AuditLog,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._audit, self._clock = sessions, audit, clock

    async def init_admin(self, *, username: str, password: str) -> UserRecord:
        """The first admin; `Conflict` once any user exists."""
        name, hashed = check_username(username), await hash_user_password(check_password(password))
        async with transaction(self._sessions) as session:
            await repo.lock_users(session)
            if await repo.count_users(session):
                raise Conflict(
                    "the hub has users already; add more with `outpost hub user add`",
                    code="already_initialised",
                )
            user = await self._insert(session, SYSTEM, name, hashed, Role.ADMIN, None, "hub.init")
        return user

    async def create(
        self,
        actor: Actor,
        *,
        username: str,
        password: str,
        role: Role,
        sites: list[str] | None,
    ) -> UserRecord:
        """A new user; `Conflict` when the name is taken, `InvalidInput` for a bad value."""
        name, scope = check_username(username), check_sites(sites)
        check_scope(role, scope)
        hashed = await hash_user_password(check_password(password))
        async with transaction(self._sessions) as session:
            return await self._insert(session, actor, name, hashed, role, scope, "user.create")

    async def _insert(
        self,
        session: AsyncSession,
        actor: Actor,
        name: str,
        hashed: str,
        role: Role,
        sites: list[str] | None,
        action: str,
    ) -> UserRecord:
        try:
            user = await repo.create_user(
                session,
                username=name,
                password_hash=hashed,
                role=role.value,
                sites=sites,
                now=self._clock(),
            )
        except UsernameTaken:
            raise Conflict(f"user {name!r} exists already", code="username_taken") from None
        detail = {"username": name, "role": role.value, "sites": sites}
        await self._audit.record(_entry(actor, action, user.id, "201", detail), session=session)
        return user

    async def update(self, actor: Actor, user_id: int, changes: UserChanges) -> UserRecord:
        """Apply `changes` to a user (see the module doc for what that ends)."""
        hashed = None
        if changes.password is not None:
            hashed = await hash_user_password(check_password(changes.password))
        async with transaction(self._sessions) as session:
            await repo.lock_users(session)
            user = await repo.get_user(session, user_id=user_id)
            if user is None:
                raise NotFound(f"no user {user_id}")
            values, shown = await self._changes(session, user, changes, hashed)
            updated = await repo.update_user(
                session, user_id=user_id, changes=values, bump_version=bool(values)
            )
            assert updated is not None  # noqa: S101 - the row is locked by this transaction
            if values:
                await revoke_refresh_tokens(session, now=self._clock(), user_id=user_id)
            detail = {"username": user.username, "changes": shown}
            await self._audit.record(
                _entry(actor, "user.update", user_id, "200", detail), session=session
            )
        return updated

    async def _changes(
        self, session: AsyncSession, user: UserRecord, changes: UserChanges, hashed: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        old_sites = None if user.sites is None else list(user.sites)
        role = changes.role or Role(user.role)
        sites = check_sites(changes.sites) if changes.sets_sites else old_sites
        check_scope(role, sites)
        disabled = user.disabled if changes.disabled is None else changes.disabled
        loses_admin = user.role == Role.ADMIN and not user.disabled
        loses_admin = loses_admin and (role != Role.ADMIN or disabled)
        if loses_admin and await repo.count_users(session, role=Role.ADMIN.value) <= 1:
            raise Conflict(
                f"{user.username} is the last enabled admin; make another admin first",
                code="last_admin",
            )
        values: dict[str, Any] = {}
        shown: dict[str, Any] = {}
        for column, old, new in (
            ("role", user.role, role.value),
            ("sites", old_sites, sites),
            ("disabled", user.disabled, disabled),
        ):
            if old != new:
                values[column], shown[column] = new, [old, new]
        if hashed is not None:
            values["password_hash"], shown["password"] = hashed, "changed"
        return values, shown

    async def set_password(self, actor: Actor, *, username: str, password: str) -> UserRecord:
        """Set a user's password by name (for `outpost hub user passwd`)."""
        async with transaction(self._sessions) as session:
            user = await repo.get_user(session, username=check_username(username))
        if user is None:
            raise NotFound(f"no user {username!r}")
        return await self.update(actor, user.id, UserChanges(password=password))

    async def get(self, *, user_id: int | None = None, username: str | None = None) -> UserRecord:
        """One user by id or name; `NotFound` otherwise."""
        async with transaction(self._sessions) as session:
            user = await repo.get_user(session, user_id=user_id, username=username)
        if user is None:
            raise NotFound(f"no user {user_id if user_id is not None else username!r}")
        return user

    async def all(self) -> list[UserRecord]:
        """Every user, by id."""
        async with transaction(self._sessions) as session:
            return await repo.list_users(session)


def _entry(actor: Actor, action: str, user_id: int, result: str, detail: dict[str, Any]) -> Entry:
    return Entry(
        actor=actor.name,
        role=actor.role,
        action=action,
        decision="allowed",
        target=f"user:{user_id}",
        result=result,
        detail=detail,
    )
