"""`AssetService`: sites, groups and devices, always seen through the caller's site scope.

A site or device outside the caller's scope is reported as missing (404), so its
existence does not leak. Role checks happen in the routes (`OperatorPrincipal`,
`AdminPrincipal`); this service enforces scope and consistency. Removing a device
revokes its broker login in the same transaction, with its audit row.

Example:
    >>> async def sites_of(service: AssetService, principal) -> list[str]:
    ...     return [site.id for site in await service.sites(principal)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.api.schemas.assets import SiteLayout
from hub.assets.rules import check_labels, check_name, check_site_id
from hub.audit.chain import Actor, Entry
from hub.audit.log import AuditLog
from hub.auth.errors import ApiError, Conflict, InvalidInput, NotFound
from hub.auth.principal import Principal
from hub.broker.dynsec import Provisioner, ProvisioningError
from hub.storage.db import transaction
from hub.storage.repositories import assets as repo
from hub.storage.repositories.assets import (
    AlreadyExists,
    DeviceFilter,
    DeviceRecord,
    GroupRecord,
    SiteRecord,
)
from hub.storage.repositories.credentials import revoke_credentials

_UNSET: Any = object()
MAX_PAGE = 500


class BrokerUnavailable(ApiError):
    """The external broker did not confirm a login change (503)."""

    status = 503
    code = "broker_unavailable"


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the data plane last stored for a device (`device_status`), or all None."""

    online: bool | None = None
    last_seen: datetime | None = None
    agent_version: str | None = None
    estop: dict[str, Any] | None = None
    mode: str | None = None
    model: dict[str, Any] | None = None
    buffer: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A device and its last known state."""

    device: DeviceRecord
    state: DeviceState


@dataclass(frozen=True)
class DeviceChanges:
    """A partial update of a device: only the fields given change."""

    name: str | None = None
    kind: str | None = None
    labels: dict[str, str] | None = None
    group_id: int | None = field(default=_UNSET)

    def values(self) -> dict[str, Any]:
        """The columns to set."""
        values: dict[str, Any] = {}
        if self.name is not None:
            values["name"] = check_name(self.name)
        if self.kind is not None:
            values["kind"] = self.kind
        if self.labels is not None:
            values["labels"] = check_labels(self.labels)
        if self.group_id is not _UNSET:
            values["group_id"] = self.group_id
        return values


def actor_of(principal: Principal) -> Actor:
    """The audit actor of an API caller."""
    return Actor(principal.username, principal.role.value)


def _state(row: Any) -> DeviceState:
    if row is None:
        return DeviceState()
    body: dict[str, Any] = dict(row.state or {})
    return DeviceState(
        online=row.online,
        last_seen=row.last_seen,
        agent_version=row.agent_version,
        estop=body.get("estop"),
        mode=body.get("mode"),
        model=body.get("model"),
        buffer=body.get("buffer"),
    )


class AssetService:
    """Sites, groups and devices for the API."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        audit: AuditLog,
        *,
        provisioner: Provisioner | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._audit, self._clock = sessions, audit, clock
        self._provisioner = provisioner

    # --- sites ---------------------------------------------------------------------------

    async def sites(self, principal: Principal) -> list[SiteRecord]:
        """The sites the caller may see."""
        async with transaction(self._sessions) as session:
            return await repo.list_sites(session, sites=principal.sites)

    async def site(self, principal: Principal, site_id: str) -> SiteRecord:
        """One site; 404 when missing or outside the caller's scope."""
        async with transaction(self._sessions) as session:
            return await self._visible_site(session, principal, site_id)

    async def create_site(self, principal: Principal, *, site_id: str, name: str) -> SiteRecord:
        """A new site; 409 when the id is taken."""
        site_id, name = check_site_id(site_id), check_name(name)
        try:
            async with transaction(self._sessions) as session:
                return await repo.insert_site(
                    session, site_id=site_id, name=name, now=self._clock()
                )
        except AlreadyExists:
            raise Conflict(f"site {site_id!r} exists already", code="site_exists") from None

    async def rename_site(self, principal: Principal, site_id: str, *, name: str) -> SiteRecord:
        """Change a site's display name."""
        name = check_name(name)
        async with transaction(self._sessions) as session:
            await self._visible_site(session, principal, site_id)
            site = await repo.rename_site(session, site_id=site_id, name=name)
        assert site is not None  # noqa: S101 - checked in the same transaction
        return site

    async def set_site_layout(
        self, principal: Principal, site_id: str, layout: SiteLayout | None
    ) -> SiteRecord:
        """Replace a site's floor plan; None removes it."""
        stored = None if layout is None else layout.model_dump(mode="json")
        async with transaction(self._sessions) as session:
            await self._visible_site(session, principal, site_id)
            site = await repo.set_site_layout(session, site_id=site_id, layout=stored)
        assert site is not None  # noqa: S101 - checked in the same transaction
        return site

    async def delete_site(self, principal: Principal, site_id: str) -> None:
        """Delete a site with its groups and unused tokens; 409 while it has devices."""
        async with transaction(self._sessions) as session:
            await self._visible_site(session, principal, site_id)
            active = await repo.count_devices(session, site_id=site_id, include_removed=False)
            if active:
                raise Conflict(
                    f"site {site_id!r} still has {active} device(s); remove them first",
                    code="site_not_empty",
                    devices=active,
                )
            await repo.delete_site(session, site_id=site_id)

    # --- groups --------------------------------------------------------------------------

    async def groups(self, principal: Principal, site_id: str) -> list[GroupRecord]:
        """The site's groups."""
        async with transaction(self._sessions) as session:
            await self._visible_site(session, principal, site_id)
            return await repo.list_groups(session, site_id=site_id)

    async def create_group(self, principal: Principal, site_id: str, *, name: str) -> GroupRecord:
        """A new group in the site; 409 when the name is taken there."""
        name = check_name(name)
        try:
            async with transaction(self._sessions) as session:
                await self._visible_site(session, principal, site_id)
                return await repo.insert_group(
                    session, site_id=site_id, name=name, now=self._clock()
                )
        except AlreadyExists:
            raise Conflict(
                f"site {site_id!r} has a group {name!r} already", code="group_exists"
            ) from None

    # --- devices -------------------------------------------------------------------------

    async def devices(
        self, principal: Principal, where: DeviceFilter, *, after: str | None, limit: int
    ) -> tuple[list[DeviceView], str | None]:
        """A page of devices in the caller's scope, and the cursor of the next page."""
        limit = max(1, min(limit, MAX_PAGE))
        scoped = DeviceFilter(
            sites=principal.sites,
            site=where.site,
            group_id=where.group_id,
            kind=where.kind,
            label=where.label,
            include_removed=where.include_removed,
        )
        async with transaction(self._sessions) as session:
            rows = await repo.list_devices(session, where=scoped, after=after, limit=limit + 1)
            states = await repo.device_states(session, device_ids=(d.id for d in rows[:limit]))
        page = [DeviceView(d, _state(states.get(d.id))) for d in rows[:limit]]
        return page, (page[-1].device.id if len(rows) > limit else None)

    async def device(self, principal: Principal, device_id: str) -> DeviceView:
        """One device with its state; 404 when missing or outside the caller's scope."""
        async with transaction(self._sessions) as session:
            device = await self._visible_device(session, principal, device_id)
            states = await repo.device_states(session, device_ids=[device_id])
        return DeviceView(device, _state(states.get(device_id)))

    async def update_device(
        self, principal: Principal, device_id: str, changes: DeviceChanges
    ) -> DeviceView:
        """Rename, relabel, retype or regroup a device (the group must be of its site)."""
        values = changes.values()
        async with transaction(self._sessions) as session:
            device = await self._visible_device(session, principal, device_id, for_update=True)
            if device.removed_at is not None:
                raise Conflict(f"device {device_id!r} was removed", code="device_removed")
            group_id = values.get("group_id")
            if group_id is not None:
                group = await repo.get_group(session, group_id=group_id)
                if group is None or group.site_id != device.site_id:
                    raise InvalidInput(
                        f"group {group_id} is not a group of site {device.site_id!r}",
                        field="group_id",
                    )
            await repo.update_device(session, device_id=device_id, values=values)
        return await self.device(principal, device_id)

    async def remove_device(self, principal: Principal, device_id: str) -> bool:
        """Mark the device removed and revoke its broker login, audited in one transaction.

        False (and nothing written) when it was removed already.
        """
        async with transaction(self._sessions) as session:
            device = await self._visible_device(session, principal, device_id, for_update=True)
            if device.removed_at is not None:
                return False
            now = self._clock()
            await repo.update_device(session, device_id=device_id, values={"removed_at": now})
            revoked = await revoke_credentials(session, device=device_id, now=now)
            await self._deprovision(device_id)
            await self._audit.record(
                Entry(
                    actor=principal.username,
                    role=principal.role.value,
                    action="device.removed",
                    decision="allowed",
                    target=f"device:{device_id}",
                    result="removed",
                    detail={"site": device.site_id, "credentials_revoked": revoked},
                ),
                session=session,
            )
        return True

    async def _deprovision(self, device_id: str) -> None:
        """Delete the login in an external broker before the removal commits (503 if it fails)."""
        if self._provisioner is None:
            return
        try:
            await self._provisioner.remove_device(device_id)
        except ProvisioningError as exc:
            raise BrokerUnavailable(
                f"the broker did not delete the device's login; nothing was removed: {exc}"
            ) from exc

    # --- scope ---------------------------------------------------------------------------

    async def _visible_site(
        self, session: AsyncSession, principal: Principal, site_id: str
    ) -> SiteRecord:
        site = (
            await repo.get_site(session, site_id=site_id)
            if principal.can_access_site(site_id)
            else None
        )
        if site is None:
            raise NotFound(f"no site {site_id!r}", code="site_not_found", site=site_id)
        return site

    async def _visible_device(
        self,
        session: AsyncSession,
        principal: Principal,
        device_id: str,
        *,
        for_update: bool = False,
    ) -> DeviceRecord:
        device = await repo.get_device(session, device_id=device_id, for_update=for_update)
        if device is None or not principal.can_access_site(device.site_id):
            raise NotFound(f"no device {device_id!r}", code="device_not_found", device=device_id)
        return device
