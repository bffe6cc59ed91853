"""`EnrollmentService`: single-use, expiring tokens, exchanged for a device identity.

`create_token` stores only a SHA-256 of a 256-bit random token and returns the
token once. `enroll` (the `POST /api/v1/enroll` of `protocol.enrollment`) runs
in one transaction: lock and spend the token, create the device (its id is
derived from the requested name, made unique: `amr-7`, `amr-7-2`, ...), issue
its MQTT login in `device_credentials` (the embedded broker checks it on every
connect) and write the `device.enrolled` audit row. A token raced by two agents
enrolls exactly one of them; the other gets 410.

Example:
    >>> token_hash("oet_abc") == token_hash("oet_abc"), len(token_hash("x"))
    (True, 64)
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.assets.rules import check_ttl, slugify, unique_id
from hub.assets.service import BrokerUnavailable
from hub.audit.chain import Actor, Entry
from hub.audit.log import AuditLog
from hub.auth.errors import ApiError, InvalidInput, NotFound
from hub.broker.dynsec import Provisioner, ProvisioningError
from hub.storage.db import transaction
from hub.storage.repositories import assets as assets_repo
from hub.storage.repositories import enrollment as repo
from hub.storage.repositories.assets import DeviceRecord
from hub.storage.repositories.credentials import hash_password, issue_credentials, new_password
from hub.storage.repositories.enrollment import TokenRecord
from protocol.enrollment import (
    ENROLL_TOKEN_GONE,
    ENROLL_UNKNOWN_TOKEN,
    EnrollRequest,
    EnrollResponse,
    MqttCredentials,
)

TOKEN_PREFIX = "oet_"  # noqa: S105 - marks an Outpost enrollment token, not a secret
NAME_PREFIX_LEN = 32


class TokenUnknown(ApiError):
    """No such enrollment token (401)."""

    status = ENROLL_UNKNOWN_TOKEN
    code = "token_unknown"


class TokenGone(ApiError):
    """The token was used already or has expired (410)."""

    status = ENROLL_TOKEN_GONE
    code = "token_gone"


class ExternalBrokerEnrollment(ApiError):
    """The external broker has no provisioning configured (`[broker] provisioning`) (501)."""

    status = 501
    code = "external_broker"


def token_hash(token: str) -> str:
    """The stored form of a token: hex SHA-256 (tokens are 256-bit random, no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewToken:
    """A created token: the secret (shown once) and its stored record."""

    token: str
    record: TokenRecord


@dataclass(frozen=True, slots=True)
class BrokerAccess:
    """What enrollment tells devices about the broker."""

    url: str
    protocol: Literal["5", "3.1.1"]
    embedded: bool
    reserved: frozenset[str]
    """Ids a device must never get (the hub's own broker login)."""


class EnrollmentTokens:
    """Creates enrollment tokens (for the API and `outpost hub token create`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        audit: AuditLog,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._audit, self._clock = sessions, audit, clock

    async def create(
        self,
        actor: Actor,
        scope: frozenset[str] | None,
        *,
        site_id: str,
        group: int | str | None = None,
        ttl_s: int = 3600,
        name_prefix: str | None = None,
    ) -> NewToken:
        """A token for a new device of `site_id` (and `group`, an id or a name).

        `scope` is the caller's sites (None: every site); a site outside it is 404.
        """
        ttl_s, prefix = check_ttl(ttl_s), _check_prefix(name_prefix)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        async with transaction(self._sessions) as session:
            site = await assets_repo.get_site(session, site_id=site_id)
            if site is None or (scope is not None and site_id not in scope):
                raise NotFound(f"no site {site_id!r}", code="site_not_found", site=site_id)
            group_id = await _group_id(session, site_id, group)
            record = await repo.insert_token(
                session,
                token_hash=token_hash(token),
                site_id=site_id,
                group_id=group_id,
                name_prefix=prefix,
                created_by=actor.name,
                now=now,
                expires_at=now + timedelta(seconds=ttl_s),
            )
            await self._audit.record(
                Entry(
                    actor=actor.name,
                    role=actor.role,
                    action="token.created",
                    decision="allowed",
                    target=f"site:{site_id}",
                    result="created",
                    detail={"token_id": record.id, "group_id": group_id, "ttl_s": ttl_s},
                ),
                session=session,
            )
        return NewToken(token, record)


class EnrollmentService:
    """The token-for-identity exchange of `POST /api/v1/enroll`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        audit: AuditLog,
        *,
        hub_public_key: str,
        broker: BrokerAccess,
        provisioner: Provisioner | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._audit, self._clock = sessions, audit, clock
        self.hub_public_key, self.broker = hub_public_key, broker
        self._provisioner = provisioner

    async def enroll(self, request: EnrollRequest, *, api_host: str | None) -> EnrollResponse:
        """Spend the token on a new device; `TokenUnknown` / `TokenGone` otherwise."""
        if not self.broker.embedded and self._provisioner is None:
            raise ExternalBrokerEnrollment(
                "this hub uses an external MQTT broker without provisioning; set [broker] "
                'provisioning = "dynsec" (Mosquitto) or add the device to the broker by hand'
            )
        digest = token_hash(request.token)
        async with transaction(self._sessions) as session:  # cheap refusal before argon2
            self._usable(await repo.token_for_update(session, token_hash=digest))
        password = new_password()
        password_hash = await asyncio.to_thread(hash_password, password)
        async with transaction(self._sessions) as session:
            token = self._usable(await repo.token_for_update(session, token_hash=digest))
            device = await self._create_device(session, token, request)
            await repo.mark_token_used(
                session, token_id=token.id, device_id=device.id, now=device.created_at
            )
            await issue_credentials(
                session,
                device=device.id,
                password=password,
                password_hash=password_hash,
                now=device.created_at,
            )
            # Inside the transaction: a broker that refuses the login enrolls nothing.
            await self._provision(device.id, password)
            await self._audit.record(_enrolled(device, token, request), session=session)
        mqtt = MqttCredentials(
            url=self._mqtt_url(api_host),
            username=device.id,
            password=password,
            protocol=self.broker.protocol,
        )
        return EnrollResponse(device_id=device.id, mqtt=mqtt, hub_public_key=self.hub_public_key)

    async def _provision(self, device_id: str, password: str) -> None:
        if self._provisioner is None:
            return
        try:
            await self._provisioner.add_device(device_id, password)
        except ProvisioningError as exc:
            raise BrokerUnavailable(
                f"the broker did not take the device's login; nothing was enrolled: {exc}"
            ) from exc

    def _usable(self, token: TokenRecord | None) -> TokenRecord:
        if token is None:
            raise TokenUnknown("enrollment token not recognised")
        if token.used_at is not None or token.expires_at <= self._clock():
            raise TokenGone("enrollment token already used or expired")
        return token

    async def _create_device(
        self, session: AsyncSession, token: TokenRecord, request: EnrollRequest
    ) -> DeviceRecord:
        base = _base_id(request.name, token.name_prefix)
        await assets_repo.lock_devices(session)
        taken = await assets_repo.taken_device_ids(session, base=base) | self.broker.reserved
        now = self._clock()
        return await assets_repo.insert_device(
            session,
            device=DeviceRecord(
                id=unique_id(base, taken),
                name=request.name.strip() or base,
                kind="robot",
                site_id=token.site_id,
                group_id=token.group_id,
                labels={},
                public_key=request.public_key,
                created_at=now,
                enrolled_at=now,
                removed_at=None,
            ),
        )

    def _mqtt_url(self, api_host: str | None) -> str:
        return self.broker.url.replace("HUB-ADDRESS", api_host or "HUB-ADDRESS")


def _enrolled(device: DeviceRecord, token: TokenRecord, request: EnrollRequest) -> Entry:
    return Entry(
        actor=f"device:{device.id}",
        action="device.enrolled",
        decision="allowed",
        target=f"device:{device.id}",
        result="201",
        detail={
            "site": device.site_id,
            "group_id": device.group_id,
            "token_id": token.id,
            "token_created_by": token.created_by,
            "name": request.name,
            "agent_version": request.agent_version,
        },
    )


def _base_id(name: str, prefix: str | None) -> str:
    base = slugify(name)
    if prefix and not base.startswith(prefix):
        base = slugify(f"{prefix}-{name}")
    return base


def _check_prefix(prefix: str | None) -> str | None:
    if prefix is None or prefix == "":
        return None
    if len(prefix) > NAME_PREFIX_LEN or slugify(prefix, fallback="") != prefix:
        raise InvalidInput(
            "name prefix: lowercase letters, digits and '-', at most 32 (e.g. amr)",
            field="name_prefix",
        )
    return prefix


async def _group_id(session: AsyncSession, site_id: str, group: int | str | None) -> int | None:
    if group is None:
        return None
    if isinstance(group, int):
        found = await assets_repo.get_group(session, group_id=group)
    else:
        found = await assets_repo.find_group(session, site_id=site_id, name=group)
    if found is None or found.site_id != site_id:
        raise InvalidInput(f"site {site_id!r} has no group {group!r}", field="group")
    return found.id
