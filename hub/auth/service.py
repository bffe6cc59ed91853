"""`AuthService`: password login, refresh-token rotation, and who a request comes from.

Refresh tokens are opaque, random and single use, stored as a SHA-256 server side
(`refresh_tokens`). Each login starts a *family*; every refresh marks the presented
token used and issues the next one in the family. Presenting a used token again is
a replay (a stolen copy, or a stolen original already used by the thief): the whole
family is revoked, ending that login session on every holder. A password, role,
scope or disabled change bumps the user's `token_version`, which ends every access
and refresh token issued before it.

Example:
    >>> async def sign_in(auth: AuthService) -> str:
    ...     pair = await auth.login("ana", "correct horse battery", client="10.0.0.5")
    ...     principal = await auth.authenticate(bearer=pair.access_token, api_key=None)
    ...     return principal.role
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.audit.chain import Actor, Entry
from hub.audit.log import AuditLog
from hub.auth import opaque
from hub.auth.errors import ApiError, Forbidden, NotAuthenticated, NotFound, TooManyAttempts
from hub.auth.passwords import check_user_password
from hub.auth.principal import Principal, Role
from hub.auth.ratelimit import LoginLimiter
from hub.auth.tokens import TokenCodec
from hub.storage.db import transaction
from hub.storage.repositories import api_keys as keys_repo
from hub.storage.repositories import refresh_tokens as refresh_repo
from hub.storage.repositories.api_keys import ApiKeyRecord
from hub.storage.repositories.users import UserRecord, get_user

logger = logging.getLogger(__name__)

TOUCH_EVERY = timedelta(seconds=60)
"""How stale an API key's `last_used_at` may get before a request updates it."""
BAD_LOGIN = "wrong username or password"


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


def principal_of(user: UserRecord, *, via: str, api_key_id: int | None = None) -> Principal:
    """The principal a stored user acts as."""
    sites = None if user.sites is None else frozenset(user.sites)
    return Principal(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        sites=sites,
        via="api_key" if via == "api_key" else "jwt",
        api_key_id=api_key_id,
    )


class AuthService:
    """Logins, tokens and API keys; every decision it makes is audited."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        audit: AuditLog,
        codec: TokenCodec,
        limiter: LoginLimiter,
        *,
        refresh_ttl_s: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._audit, self._codec, self._limiter = sessions, audit, codec, limiter
        self._refresh_ttl = timedelta(seconds=refresh_ttl_s)
        self._clock = clock

    # -- login, refresh, logout ---------------------------------------------------------

    async def login(self, username: str, password: str, *, client: str) -> TokenPair:
        """Check a password and open a login session; refusals are audited and counted."""
        name = username.strip().lower()
        key = (name, client)
        wait = self._limiter.retry_after(key)
        if wait is not None:
            await self._denied("auth.login", name, 429, reason="rate_limited", client=client)
            raise TooManyAttempts(
                f"too many failed logins; try again in {wait} s", retry_after_s=wait
            )
        async with transaction(self._sessions) as session:
            user = await get_user(session, username=name)
        matches = await check_user_password(user.password_hash if user else None, password)
        if user is None or not matches or user.disabled:
            self._limiter.failed(key)
            reason = "disabled" if user is not None and matches else "bad_credentials"
            await self._denied("auth.login", name, 401, reason=reason, client=client)
            raise NotAuthenticated(BAD_LOGIN, code="bad_credentials")
        self._limiter.succeeded(key)
        async with transaction(self._sessions) as session:
            refresh = await self._new_refresh(session, user, family=None)
            await self._audit.record(
                Entry(
                    actor=user.username,
                    role=user.role,
                    action="auth.login",
                    decision="allowed",
                    target=f"user:{user.id}",
                    result="200",
                    detail={"client": client},
                ),
                session=session,
            )
        return self._pair(user, refresh)

    async def refresh(self, token: str, *, client: str) -> TokenPair:
        """Trade a refresh token for a new pair; a replayed token ends its whole session."""
        parsed = opaque.parse(token, opaque.REFRESH_KIND)
        if parsed is None:
            await self._denied("auth.refresh", "anonymous", 401, reason="malformed", client=client)
            raise NotAuthenticated("not a refresh token of this hub", code="invalid_token")
        async with transaction(self._sessions) as session:
            outcome = await self._rotate(session, *parsed, client=client)
        if isinstance(outcome, ApiError):
            raise outcome
        return outcome

    async def _rotate(
        self, session: AsyncSession, token_id: str, secret: str, *, client: str
    ) -> TokenPair | ApiError:
        now = self._clock()
        stored = await refresh_repo.refresh_token(session, token_id=token_id)
        if stored is None or not opaque.secret_matches(stored.token_hash, secret):
            return await self._refused(session, "anonymous", "unknown", client, None)
        user = await get_user(session, user_id=stored.user_id)
        actor = user.username if user else f"user:{stored.user_id}"
        if stored.revoked_at is not None:
            return await self._refused(session, actor, "revoked", client, stored.family)
        if stored.used_at is not None or not await refresh_repo.use_refresh_token(
            session, token_id=token_id, now=now
        ):
            await refresh_repo.revoke_refresh_tokens(session, now=now, family=stored.family)
            logger.warning("refresh token replayed for %s: login session revoked", actor)
            return await self._refused(session, actor, "replayed", client, stored.family)
        if stored.expires_at <= now:
            return await self._refused(session, actor, "expired", client, stored.family)
        if user is None or user.disabled or user.token_version != stored.token_version:
            await refresh_repo.revoke_refresh_tokens(session, now=now, family=stored.family)
            return await self._refused(session, actor, "superseded", client, stored.family)
        refresh = await self._new_refresh(session, user, family=stored.family)
        await self._audit.record(
            Entry(
                actor=user.username,
                role=user.role,
                action="auth.refresh",
                decision="allowed",
                target=f"user:{user.id}",
                result="200",
                detail={"client": client, "family": stored.family},
            ),
            session=session,
        )
        return self._pair(user, refresh)

    async def _refused(
        self, session: AsyncSession, actor: str, reason: str, client: str, family: str | None
    ) -> ApiError:
        detail: dict[str, str] = {"reason": reason, "client": client}
        if family is not None:
            detail["family"] = family
        await self._audit.record(
            Entry(
                actor=actor, action="auth.refresh", decision="denied", result="401", detail=detail
            ),
            session=session,
        )
        code = {"expired": "token_expired", "replayed": "token_reused"}.get(reason, "invalid_token")
        return NotAuthenticated(f"refresh token refused ({reason}); log in again", code=code)

    async def logout(self, token: str, *, client: str) -> None:
        """End the login session a refresh token belongs to."""
        parsed = opaque.parse(token, opaque.REFRESH_KIND)
        async with transaction(self._sessions) as session:
            stored = None
            if parsed is not None:
                stored = await refresh_repo.refresh_token(session, token_id=parsed[0])
            if (
                parsed is None
                or stored is None
                or not opaque.secret_matches(stored.token_hash, parsed[1])
            ):
                entry = Entry(
                    actor="anonymous",
                    action="auth.logout",
                    decision="denied",
                    result="401",
                    detail={"client": client},
                )
                stored = None
            else:
                await refresh_repo.revoke_refresh_tokens(
                    session, now=self._clock(), family=stored.family
                )
                entry = await self._logout_entry(session, stored.user_id, stored.family, client)
            await self._audit.record(entry, session=session)
        if stored is None:
            raise NotAuthenticated("not a refresh token of this hub", code="invalid_token")

    async def _logout_entry(
        self, session: AsyncSession, user_id: int, family: str, client: str
    ) -> Entry:
        user = await get_user(session, user_id=user_id)
        return Entry(
            actor=user.username if user else f"user:{user_id}",
            role=user.role if user else None,
            action="auth.logout",
            decision="allowed",
            target=f"user:{user_id}",
            result="204",
            detail={"client": client, "family": family},
        )

    async def _new_refresh(
        self, session: AsyncSession, user: UserRecord, *, family: str | None
    ) -> opaque.Issued:
        issued = opaque.new_refresh_token()
        now = self._clock()
        await refresh_repo.store_refresh_token(
            session,
            token_id=issued.lookup,
            user_id=user.id,
            family=family or issued.lookup,
            token_hash=issued.digest,
            token_version=user.token_version,
            now=now,
            expires_at=now + self._refresh_ttl,
        )
        return issued

    def _pair(self, user: UserRecord, refresh: opaque.Issued) -> TokenPair:
        access, ttl = self._codec.issue(
            user_id=user.id,
            username=user.username,
            role=user.role,
            sites=user.sites,
            version=user.token_version,
        )
        return TokenPair(access, refresh.text, ttl, int(self._refresh_ttl.total_seconds()))

    async def _denied(
        self, action: str, actor: str, status: int, *, reason: str, client: str
    ) -> None:
        await self._audit.record(
            Entry(
                actor=actor or "anonymous",
                action=action,
                decision="denied",
                result=str(status),
                detail={"reason": reason, "client": client},
            )
        )

    # -- who is calling -----------------------------------------------------------------

    async def authenticate(self, *, bearer: str | None, api_key: str | None) -> Principal:
        """The principal behind an `Authorization: Bearer` value or an `X-API-Key` value."""
        if bearer and api_key:
            raise NotAuthenticated(
                "send one credential: Authorization or X-API-Key, not both", code="invalid_token"
            )
        if api_key or (bearer and bearer.startswith(f"{opaque.API_KEY_KIND}_")):
            return await self._from_api_key(api_key or bearer or "")
        if bearer:
            return await self._from_access_token(bearer)
        raise NotAuthenticated(
            "log in first: send Authorization: Bearer <access token or API key>, or X-API-Key"
        )

    async def _from_access_token(self, token: str) -> Principal:
        claims = self._codec.verify(token)
        async with transaction(self._sessions) as session:
            user = await get_user(session, user_id=claims.user_id)
        if user is None or user.disabled:
            raise NotAuthenticated(
                "this user no longer exists or is disabled", code="invalid_token"
            )
        if user.token_version != claims.version:
            raise NotAuthenticated(
                "this token predates a change to the user (password, role or scope); log in again",
                code="invalid_token",
            )
        return principal_of(user, via="jwt")

    async def _from_api_key(self, text: str) -> Principal:
        parsed = opaque.parse(text, opaque.API_KEY_KIND)
        if parsed is None:
            raise NotAuthenticated("not an API key of this hub", code="invalid_api_key")
        now = self._clock()
        async with transaction(self._sessions) as session:
            key = await keys_repo.api_key_by_prefix(session, prefix=parsed[0])
            if key is None or not opaque.secret_matches(key.secret_hash, parsed[1]):
                raise NotAuthenticated("unknown API key", code="invalid_api_key")
            if key.revoked_at is not None:
                raise NotAuthenticated("this API key was revoked", code="invalid_api_key")
            user = await get_user(session, user_id=key.user_id)
            if user is None or user.disabled:
                raise NotAuthenticated("the key's user is disabled", code="invalid_api_key")
            if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
                await keys_repo.touch_api_key(session, key_id=key.id, now=now)
        return principal_of(user, via="api_key", api_key_id=key.id)

    # -- API keys -----------------------------------------------------------------------

    async def create_api_key(self, principal: Principal, *, name: str) -> tuple[ApiKeyRecord, str]:
        """A new key acting as `principal`'s user; the text is returned once, never stored."""
        if principal.via != "jwt":
            raise Forbidden(
                "API keys are made after a password login, not with another API key",
                code="api_key_cannot_manage_keys",
            )
        issued = opaque.new_api_key()
        async with transaction(self._sessions) as session:
            record = await keys_repo.create_api_key(
                session,
                user_id=principal.user_id,
                name=name,
                prefix=issued.lookup,
                secret_hash=issued.digest,
                now=self._clock(),
            )
            await self._audit.record(
                _entry(
                    principal,
                    "auth.api_key.create",
                    f"api_key:{record.id}",
                    "201",
                    {"name": name, "prefix": record.prefix},
                ),
                session=session,
            )
        return record, issued.text

    async def list_api_keys(self, principal: Principal, *, everyone: bool) -> list[ApiKeyRecord]:
        """The caller's keys; every user's for an admin who asks for `everyone`."""
        if everyone and not principal.has_role(Role.ADMIN):
            raise Forbidden(
                "only an admin may list every user's keys",
                code="role_required",
                required=Role.ADMIN.value,
                role=principal.role.value,
            )
        async with transaction(self._sessions) as session:
            return await keys_repo.list_api_keys(
                session, user_id=None if everyone else principal.user_id
            )

    async def revoke_api_key(self, principal: Principal, key_id: int) -> ApiKeyRecord:
        """Revoke one of the caller's keys (an admin: anyone's); refused at its next use."""
        async with transaction(self._sessions) as session:
            key = await keys_repo.api_key_by_id(session, key_id=key_id)
            if key is None or (
                key.user_id != principal.user_id and not principal.has_role(Role.ADMIN)
            ):
                raise NotFound(f"no API key {key_id} of yours")
            await keys_repo.revoke_api_key(session, key_id=key_id, now=self._clock())
            await self._audit.record(
                _entry(
                    principal,
                    "auth.api_key.revoke",
                    f"api_key:{key_id}",
                    "204",
                    {"name": key.name, "prefix": key.prefix, "owner_id": key.user_id},
                ),
                session=session,
            )
        return key


def _entry(
    principal: Principal, action: str, target: str, result: str, detail: dict[str, object]
) -> Entry:
    actor = Actor(principal.username, principal.role.value)
    return Entry(
        actor=actor.name,
        role=actor.role,
        action=action,
        decision="allowed",
        target=target,
        result=result,
        detail={**detail, "via": principal.via},
    )
