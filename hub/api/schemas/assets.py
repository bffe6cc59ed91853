"""Bodies of `/api/v1/sites*`, `/api/v1/devices*` and `/api/v1/enrollment-tokens`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, Field, model_validator

from hub.api.schemas.auth import Body, RowId
from hub.assets.rules import MAX_TTL_S, MIN_TTL_S, check_labels, check_name, check_site_id
from hub.auth.principal import SITE_ID_PATTERN

SiteId = Annotated[str, Field(pattern=SITE_ID_PATTERN, examples=["plant-a"])]
DisplayName = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(check_name)]
Labels = Annotated[
    dict[str, Annotated[str, Field(max_length=128)]],
    Field(examples=[{"zone": "north", "team": "night"}]),
    AfterValidator(check_labels),
]
Kind = Literal["robot", "gateway", "camera"]


class SiteCreate(Body):
    """A new site: its id (used in URLs and user scopes) and display name."""

    id: Annotated[SiteId, AfterValidator(check_site_id)]
    name: DisplayName


class SitePatch(Body):
    """A new display name."""

    name: DisplayName


LAYOUT_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,63}$"
"""A zone or spot name: the grammar of the agents' (and the simulator's) zone names."""
MAX_METRES = 10_000.0
MAX_LAYOUT_ITEMS = 200
LayoutName = Annotated[str, Field(pattern=LAYOUT_NAME_PATTERN)]
Metres = Annotated[float, Field(ge=-MAX_METRES, le=MAX_METRES, allow_inf_nan=False)]
Extent = Annotated[float, Field(gt=0.0, le=MAX_METRES, allow_inf_nan=False)]
ZoneKind = Literal["danger", "keep_out", "dock", "charging", "aisle", "shelf", "other"]
SpotKind = Literal["dock", "charging", "other"]


class LayoutZone(Body):
    """A named floor area: a polygon of [x, y] points in site metres (x east, y north)."""

    name: Annotated[LayoutName, Field(examples=["danger"])]
    kind: ZoneKind
    polygon: Annotated[
        list[tuple[Metres, Metres]],
        Field(min_length=3, max_length=64, examples=[[[31, 2], [34, 2], [34, 22], [31, 22]]]),
    ]

    @model_validator(mode="after")
    def _has_area(self) -> Self:
        if abs(twice_area(self.polygon)) < 1e-9:
            raise ValueError(f"zone {self.name!r}: polygon has no area")
        return self


class LayoutSpot(Body):
    """A named point on the floor: a dock door, a charging pad."""

    name: Annotated[LayoutName, Field(examples=["dock-1"])]
    kind: SpotKind
    x: Metres
    y: Metres


class SiteLayout(Body):
    """A site's floor plan for the map: its extent from (0, 0), zones and spots, in metres."""

    width_m: Extent
    height_m: Extent
    zones: list[LayoutZone] = Field(default_factory=list, max_length=MAX_LAYOUT_ITEMS)
    spots: list[LayoutSpot] = Field(default_factory=list, max_length=MAX_LAYOUT_ITEMS)


def twice_area(polygon: list[tuple[float, float]]) -> float:
    """Twice the polygon's signed area (shoelace formula; positive counter-clockwise).

    Example:
        >>> twice_area([(0, 0), (2, 0), (2, 1)]), twice_area([(0, 0), (1, 1), (2, 2)])
        (2.0, 0.0)
    """
    ring = [*polygon[1:], polygon[0]]
    return float(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(polygon, ring, strict=True)))


class SiteOut(BaseModel):
    """A site, with its floor plan when one was set."""

    id: str
    name: str
    created_at: datetime
    layout: SiteLayout | None = Field(description="Null until an admin sets one.")


class GroupCreate(Body):
    """A new device group of a site."""

    name: DisplayName


class GroupOut(BaseModel):
    """A device group."""

    id: int
    site_id: str
    name: str
    created_at: datetime


class DeviceStateOut(BaseModel):
    """The device's last `state` as stored by the data plane; all null before its first."""

    online: bool | None = None
    last_seen: datetime | None = None
    agent_version: str | None = None
    estop: dict[str, Any] | None = Field(None, description="Emergency-stop state.")
    mode: str | None = None
    model: dict[str, Any] | None = Field(None, description="Active model: name, version, sha256.")
    buffer: dict[str, Any] | None = Field(None, description="Outbox depth and dropped counts.")


class DeviceOut(BaseModel):
    """A device, with its last known state."""

    id: str
    name: str
    kind: Kind
    site_id: str
    group_id: int | None
    labels: dict[str, str]
    public_key: str | None = Field(description="The device's Ed25519 key from enrollment.")
    created_at: datetime
    enrolled_at: datetime | None
    removed_at: datetime | None
    state: DeviceStateOut


class DevicePage(BaseModel):
    """One page of devices, by id; pass `next_cursor` back as `cursor` for the next."""

    items: list[DeviceOut]
    next_cursor: str | None


class DevicePatch(Body):
    """Only the fields present change; `group_id: null` takes the device out of its group."""

    name: DisplayName | None = None
    kind: Kind | None = None
    labels: Labels | None = Field(None, description="Replaces every label.")
    group_id: RowId | None = None


class TokenCreate(Body):
    """What the enrolled device joins, and how long the token lives."""

    site_id: SiteId
    group_id: RowId | None = None
    ttl_s: Annotated[int, Field(ge=MIN_TTL_S, le=MAX_TTL_S)] = 3600
    name_prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")] | None = Field(
        None, description="Device ids start with this (`amr` + name `7` → `amr-7`)."
    )


class TokenOut(BaseModel):
    """A new enrollment token: shown only in this response, stored only as a hash."""

    token: str = Field(description="Single use; give it to `edge-agent install --token`.")
    id: int
    site_id: str
    group_id: int | None
    expires_at: datetime
    install_command: str = Field(examples=["edge-agent install --hub https://hub --token oet_…"])
