"""Sites, device groups and devices: rows of `sites`, `device_groups` and `devices`.

A removed device keeps its row (with `removed_at`), so its id is never handed
out again and its stored data keeps an owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, null, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import StorageError, translated
from hub.storage.models import Device, DeviceCredential, DeviceGroup, DeviceStatus, Site


class AlreadyExists(StorageError):
    """A row with that key (site id, group name in its site) exists already."""


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """A site as stored."""

    id: str
    name: str
    created_at: datetime
    layout: dict[str, Any] | None = None
    """The floor plan as stored (the API's `SiteLayout` as JSON), or None."""


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """A device group as stored."""

    id: int
    site_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device as stored."""

    id: str
    name: str
    kind: str
    site_id: str
    group_id: int | None
    labels: dict[str, str]
    public_key: str | None
    created_at: datetime
    enrolled_at: datetime | None
    removed_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """Which devices a listing returns; `sites` None means every site."""

    sites: frozenset[str] | None
    site: str | None = None
    group_id: int | None = None
    kind: str | None = None
    label: tuple[str, str] | None = None
    include_removed: bool = False


def _site(row: Site) -> SiteRecord:
    return SiteRecord(row.id, row.name, row.created_at, row.layout)


def _group(row: DeviceGroup) -> GroupRecord:
    return GroupRecord(row.id, row.site_id, row.name, row.created_at)


def _device(row: Device) -> DeviceRecord:
    return DeviceRecord(
        row.id,
        row.name,
        row.kind,
        row.site_id,
        row.group_id,
        {str(k): str(v) for k, v in (row.labels or {}).items()},
        row.public_key,
        row.created_at,
        row.enrolled_at,
        row.removed_at,
    )


async def _flush_new(session: AsyncSession, row: Any, what: str) -> None:
    session.add(row)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(f"{what} exists already") from exc


@translated
async def insert_site(
    session: AsyncSession, *, site_id: str, name: str, now: datetime
) -> SiteRecord:
    """A new site; `AlreadyExists` when the id is taken."""
    row = Site(id=site_id, name=name, created_at=now)
    await _flush_new(session, row, f"site {site_id!r}")
    return _site(row)


@translated
async def get_site(session: AsyncSession, *, site_id: str) -> SiteRecord | None:
    """The site, or None."""
    row = await session.get(Site, site_id, populate_existing=True)
    return None if row is None else _site(row)


@translated
async def list_sites(session: AsyncSession, *, sites: frozenset[str] | None) -> list[SiteRecord]:
    """Sites by id, limited to `sites` unless it is None."""
    query = select(Site).order_by(Site.id)
    if sites is not None:
        query = query.where(Site.id.in_(sorted(sites)))
    return [_site(r) for r in await session.scalars(query)]


@translated
async def rename_site(session: AsyncSession, *, site_id: str, name: str) -> SiteRecord | None:
    """Set the site's display name; None when there is no such site."""
    row = await session.get(Site, site_id, populate_existing=True)
    if row is None:
        return None
    row.name = name
    await session.flush()
    return _site(row)


@translated
async def set_site_layout(
    session: AsyncSession, *, site_id: str, layout: dict[str, Any] | None
) -> SiteRecord | None:
    """Replace the site's layout (None clears it: SQL NULL); None when there is no such site."""
    value = null() if layout is None else layout  # not JSON `null`: "no layout" is SQL NULL
    await session.execute(update(Site).where(Site.id == site_id).values(layout=value))
    return await get_site(session, site_id=site_id)


@translated
async def delete_site(session: AsyncSession, *, site_id: str) -> bool:
    """Delete the site, its removed devices, groups and tokens; False when there is none.

    The caller checks that no active device is left (the foreign key refuses otherwise).
    Removed devices' ids stay taken: their revoked broker logins remain.
    """
    await session.execute(
        delete(Device).where(Device.site_id == site_id, Device.removed_at.is_not(None))
    )
    await session.execute(delete(DeviceGroup).where(DeviceGroup.site_id == site_id))
    result = await session.execute(delete(Site).where(Site.id == site_id))
    return bool(getattr(result, "rowcount", 0))


@translated
async def count_devices(session: AsyncSession, *, site_id: str, include_removed: bool) -> int:
    """How many devices the site has (removed ones too when asked)."""
    query = select(func.count()).select_from(Device).where(Device.site_id == site_id)
    if not include_removed:
        query = query.where(Device.removed_at.is_(None))
    return int(await session.scalar(query) or 0)


@translated
async def insert_group(
    session: AsyncSession, *, site_id: str, name: str, now: datetime
) -> GroupRecord:
    """A new group in the site; `AlreadyExists` when the site has a group of that name."""
    row = DeviceGroup(site_id=site_id, name=name, created_at=now)
    await _flush_new(session, row, f"group {name!r} of site {site_id!r}")
    return _group(row)


@translated
async def get_group(session: AsyncSession, *, group_id: int) -> GroupRecord | None:
    """The group, or None."""
    row = await session.get(DeviceGroup, group_id)
    return None if row is None else _group(row)


@translated
async def find_group(session: AsyncSession, *, site_id: str, name: str) -> GroupRecord | None:
    """The site's group called `name`, or None."""
    row = await session.scalar(
        select(DeviceGroup).where(DeviceGroup.site_id == site_id, DeviceGroup.name == name)
    )
    return None if row is None else _group(row)


@translated
async def list_groups(session: AsyncSession, *, site_id: str) -> list[GroupRecord]:
    """The site's groups by name."""
    query = select(DeviceGroup).where(DeviceGroup.site_id == site_id).order_by(DeviceGroup.name)
    return [_group(r) for r in await session.scalars(query)]


@translated
async def lock_devices(session: AsyncSession) -> None:
    """Hold off other writers of `devices` until this transaction ends (new ids stay unique).

    SQLite transactions already hold the database's write lock (`BEGIN IMMEDIATE`).
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE devices IN SHARE ROW EXCLUSIVE MODE"))


@translated
async def taken_device_ids(session: AsyncSession, *, base: str) -> set[str]:
    """Device ids equal to `base` or starting `base-`, among devices and broker logins."""
    pattern = base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"
    taken: set[str] = set()
    for column in (Device.id, DeviceCredential.device):
        query = select(column).where(or_(column == base, column.like(pattern, escape="\\")))
        taken.update(await session.scalars(query))
    return taken


@translated
async def insert_device(session: AsyncSession, *, device: DeviceRecord) -> DeviceRecord:
    """Store a new device; `AlreadyExists` when its id is taken."""
    row = Device(
        id=device.id,
        name=device.name,
        kind=device.kind,
        site_id=device.site_id,
        group_id=device.group_id,
        labels=dict(device.labels),
        public_key=device.public_key,
        created_at=device.created_at,
        enrolled_at=device.enrolled_at,
        removed_at=device.removed_at,
    )
    await _flush_new(session, row, f"device {device.id!r}")
    return _device(row)


@translated
async def get_device(
    session: AsyncSession, *, device_id: str, for_update: bool = False
) -> DeviceRecord | None:
    """The device (removed ones included), or None; `for_update` locks its row."""
    query = select(Device).where(Device.id == device_id).execution_options(populate_existing=True)
    if for_update:
        query = query.with_for_update()
    row = await session.scalar(query)
    return None if row is None else _device(row)


@translated
async def list_devices(
    session: AsyncSession, *, where: DeviceFilter, after: str | None, limit: int
) -> list[DeviceRecord]:
    """Up to `limit` devices matching `where`, by id, starting after the id `after`."""
    query = select(Device).order_by(Device.id).limit(limit)
    if where.sites is not None:
        query = query.where(Device.site_id.in_(sorted(where.sites)))
    if where.site is not None:
        query = query.where(Device.site_id == where.site)
    if where.group_id is not None:
        query = query.where(Device.group_id == where.group_id)
    if where.kind is not None:
        query = query.where(Device.kind == where.kind)
    if where.label is not None:
        key, value = where.label
        query = query.where(Device.labels[key].as_string() == value)
    if not where.include_removed:
        query = query.where(Device.removed_at.is_(None))
    if after is not None:
        query = query.where(Device.id > after)
    return [_device(r) for r in await session.scalars(query)]


@translated
async def update_device(
    session: AsyncSession, *, device_id: str, values: dict[str, Any]
) -> DeviceRecord | None:
    """Set the given columns (`name`, `kind`, `group_id`, `labels`, `removed_at`, ...)."""
    if values:
        await session.execute(update(Device).where(Device.id == device_id).values(**values))
    return await get_device(session, device_id=device_id)


@translated
async def device_states(
    session: AsyncSession, *, device_ids: Iterable[str]
) -> dict[str, DeviceStatus]:
    """The stored `device_status` rows of these devices, by device id."""
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    rows = await session.scalars(select(DeviceStatus).where(DeviceStatus.device.in_(ids)))
    return {r.device: r for r in rows}
