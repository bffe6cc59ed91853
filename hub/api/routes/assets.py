"""`/api/v1/sites*` and `/api/v1/devices*`: the fleet's sites, groups and devices.

Who may do what (roles are viewer < operator < admin; every caller sees only the
sites in their scope, and anything outside it answers 404 as if it did not exist):

| route | role |
|---|---|
| `GET` sites, a site, its groups, devices, a device | viewer |
| `POST /sites/{id}/groups`, `PATCH /devices/{id}` | operator |
| `POST /sites`, `PATCH`/`DELETE /sites/{id}`, `DELETE /devices/{id}` | admin |
| `PUT`/`DELETE /sites/{id}/layout` (the map's floor plan) | admin |
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from hub.api.deps import (
    AdminPrincipal,
    AssetsDep,
    CurrentPrincipal,
    OperatorPrincipal,
)
from hub.api.schemas.assets import (
    DeviceOut,
    DevicePage,
    DevicePatch,
    DeviceStateOut,
    GroupCreate,
    GroupOut,
    Kind,
    SiteCreate,
    SiteLayout,
    SiteOut,
    SitePatch,
)
from hub.api.schemas.auth import MAX_ROW_ID
from hub.api.schemas.errors import AUTHED, CONFLICT, NOT_FOUND, error
from hub.assets.rules import parse_label
from hub.assets.service import DeviceChanges, DeviceView
from hub.audit.middleware import mark_audited
from hub.storage.repositories.assets import DeviceFilter, GroupRecord, SiteRecord

router = APIRouter(prefix="/api/v1", tags=["assets"])
SCOPED = {**AUTHED, **NOT_FOUND}


def _site(site: SiteRecord) -> SiteOut:
    layout = None if site.layout is None else SiteLayout.model_validate(site.layout)
    return SiteOut(id=site.id, name=site.name, created_at=site.created_at, layout=layout)


def _group(group: GroupRecord) -> GroupOut:
    return GroupOut(
        id=group.id, site_id=group.site_id, name=group.name, created_at=group.created_at
    )


def _device(view: DeviceView) -> DeviceOut:
    d, s = view.device, view.state
    return DeviceOut(
        id=d.id,
        name=d.name,
        kind=d.kind,
        site_id=d.site_id,
        group_id=d.group_id,
        labels=d.labels,
        public_key=d.public_key,
        created_at=d.created_at,
        enrolled_at=d.enrolled_at,
        removed_at=d.removed_at,
        state=DeviceStateOut(
            online=s.online,
            last_seen=s.last_seen,
            agent_version=s.agent_version,
            estop=s.estop,
            mode=s.mode,
            model=s.model,
            buffer=s.buffer,
        ),
    )


# --- sites ---------------------------------------------------------------------------------


@router.get("/sites", summary="Sites in your scope", response_model=list[SiteOut], responses=AUTHED)
async def list_sites(principal: CurrentPrincipal, assets: AssetsDep) -> list[SiteOut]:
    """Every site you may see, by id."""
    return [_site(s) for s in await assets.sites(principal)]


@router.post(
    "/sites",
    summary="Create a site (admin)",
    status_code=status.HTTP_201_CREATED,
    response_model=SiteOut,
    responses={**AUTHED, **CONFLICT},
)
async def create_site(body: SiteCreate, principal: AdminPrincipal, assets: AssetsDep) -> SiteOut:
    """A new site; 409 when the id is taken."""
    return _site(await assets.create_site(principal, site_id=body.id, name=body.name))


@router.get("/sites/{site_id}", summary="One site", response_model=SiteOut, responses=SCOPED)
async def get_site(site_id: str, principal: CurrentPrincipal, assets: AssetsDep) -> SiteOut:
    """The site, or 404 when it is missing or outside your scope."""
    return _site(await assets.site(principal, site_id))


@router.patch(
    "/sites/{site_id}", summary="Rename a site (admin)", response_model=SiteOut, responses=SCOPED
)
async def rename_site(
    site_id: str, body: SitePatch, principal: AdminPrincipal, assets: AssetsDep
) -> SiteOut:
    """Change the display name (the id never changes)."""
    return _site(await assets.rename_site(principal, site_id, name=body.name))


@router.delete(
    "/sites/{site_id}",
    summary="Delete an empty site (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**SCOPED, **CONFLICT},
)
async def delete_site(site_id: str, principal: AdminPrincipal, assets: AssetsDep) -> Response:
    """Delete the site, its groups and its unused tokens; 409 while it has devices."""
    await assets.delete_site(principal, site_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/sites/{site_id}/layout",
    summary="Set a site's floor plan (admin)",
    response_model=SiteOut,
    responses=SCOPED,
)
async def set_site_layout(
    site_id: str, body: SiteLayout, principal: AdminPrincipal, assets: AssetsDep
) -> SiteOut:
    """Replace the zones, shelves and docks the dashboard's map draws for the site."""
    return _site(await assets.set_site_layout(principal, site_id, body))


@router.delete(
    "/sites/{site_id}/layout",
    summary="Remove a site's floor plan (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=SCOPED,
)
async def delete_site_layout(
    site_id: str, principal: AdminPrincipal, assets: AssetsDep
) -> Response:
    """The map shows the bare grid again; 204 also when the site had no layout."""
    await assets.set_site_layout(principal, site_id, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/sites/{site_id}/groups",
    summary="Device groups of a site",
    response_model=list[GroupOut],
    responses=SCOPED,
)
async def list_groups(
    site_id: str, principal: CurrentPrincipal, assets: AssetsDep
) -> list[GroupOut]:
    """The site's groups, by name."""
    return [_group(g) for g in await assets.groups(principal, site_id)]


@router.post(
    "/sites/{site_id}/groups",
    summary="Create a device group (operator)",
    status_code=status.HTTP_201_CREATED,
    response_model=GroupOut,
    responses={**SCOPED, **CONFLICT},
)
async def create_group(
    site_id: str, body: GroupCreate, principal: OperatorPrincipal, assets: AssetsDep
) -> GroupOut:
    """A new group; 409 when the site has one of that name."""
    return _group(await assets.create_group(principal, site_id, name=body.name))


# --- devices -------------------------------------------------------------------------------


@router.get(
    "/devices", summary="Devices in your scope", response_model=DevicePage, responses=AUTHED
)
async def list_devices(
    principal: CurrentPrincipal,
    assets: AssetsDep,
    site: Annotated[str | None, Query(max_length=63)] = None,
    group: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="A group id.")] = None,
    kind: Kind | None = None,
    label: Annotated[str | None, Query(max_length=200, description="key=value")] = None,
    removed: Annotated[bool, Query(description="Include removed devices.")] = False,
    cursor: Annotated[str | None, Query(max_length=63, description="`next_cursor`.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DevicePage:
    """A page of devices by id, filtered by site, group, kind and one label."""
    where = DeviceFilter(
        sites=None,  # the service applies the caller's scope
        site=site,
        group_id=group,
        kind=kind,
        label=parse_label(label) if label is not None else None,
        include_removed=removed,
    )
    views, next_cursor = await assets.devices(principal, where, after=cursor, limit=limit)
    return DevicePage(items=[_device(v) for v in views], next_cursor=next_cursor)


@router.get(
    "/devices/{device_id}",
    summary="One device with its state",
    response_model=DeviceOut,
    responses=SCOPED,
)
async def get_device(device_id: str, principal: CurrentPrincipal, assets: AssetsDep) -> DeviceOut:
    """The device and its last stored state (online, last seen, e-stop, model, buffer)."""
    return _device(await assets.device(principal, device_id))


@router.patch(
    "/devices/{device_id}",
    summary="Rename, relabel, retype or regroup a device (operator)",
    response_model=DeviceOut,
    responses={**SCOPED, **CONFLICT},
)
async def update_device(
    device_id: str, body: DevicePatch, principal: OperatorPrincipal, assets: AssetsDep
) -> DeviceOut:
    """Only the fields present change; the group must belong to the device's site."""
    given = body.model_fields_set
    changes = DeviceChanges(
        name=body.name,
        kind=body.kind,
        labels=body.labels,
        **({"group_id": body.group_id} if "group_id" in given else {}),
    )
    return _device(await assets.update_device(principal, device_id, changes))


@router.delete(
    "/devices/{device_id}",
    summary="Remove a device and revoke its broker login (admin)",
    description="The broker refuses the device from its next connect on (the embedded one "
    'reads the revoked login; Mosquitto with `[broker] provisioning = "dynsec"` deletes it '
    "and disconnects the device). 503 when Mosquitto did not confirm: nothing was removed.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**SCOPED, 503: error("The broker did not delete the login; nothing was removed")},
)
async def remove_device(
    request: Request, device_id: str, principal: AdminPrincipal, assets: AssetsDep
) -> Response:
    """Mark the device removed (its data stays) and revoke its credentials."""
    if await assets.remove_device(principal, device_id):
        mark_audited(request)  # the service wrote `device.removed` with the change
    return Response(status_code=status.HTTP_204_NO_CONTENT)
