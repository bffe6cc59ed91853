"""Bodies of the model registry and rollout routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, Field, model_validator

from hub.auth.principal import SITE_ID_PATTERN
from hub.registry.rollout import DeviceRollout, RolloutState
from protocol.topics import DEVICE_ID_PATTERN

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"
"""Model names and versions: they become folder names on the devices."""
ModelName = Annotated[str, Field(pattern=NAME_PATTERN, examples=["det"])]
ModelVersion = Annotated[str, Field(pattern=NAME_PATTERN, examples=["2"])]
DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
DB_INT = 2**31 - 1


class ModelOut(BaseModel):
    """A pushed model version."""

    name: str = Field(examples=["det"])
    version: str = Field(examples=["2"])
    sha256: str
    size: int = Field(description="Bytes of the ONNX artifact")
    input_size: list[int] = Field(description="(height, width) of the model's input")
    classes: list[str]
    created_by: str
    created_at: datetime


class ModelDetail(ModelOut):
    """A version with its card and the manifest agents receive (signed by the hub)."""

    card: dict[str, Any]
    manifest: dict[str, Any]


class ModelList(BaseModel):
    """Versions, newest first."""

    items: list[ModelOut]


class TargetBody(BaseModel):
    """Exactly one of `group` (a device group id), `site` or `devices`."""

    group: Annotated[int, Field(ge=1, le=DB_INT)] | None = None
    site: Annotated[str, Field(pattern=SITE_ID_PATTERN)] | None = None
    devices: Annotated[list[DeviceId], Field(min_length=1, max_length=10_000)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [k for k in ("group", "site", "devices") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of group, site or devices")
        return self


class RolloutCreate(BaseModel):
    """Roll `name` `version` out to `target`, `canary_percent` of it first."""

    name: ModelName
    version: ModelVersion
    target: TargetBody
    canary_percent: int = Field(10, ge=1, le=100)
    auto_promote: bool = Field(
        False, description="Promote by itself once the canary devices are healthy"
    )


class RollbackBody(BaseModel):
    """Why the rollout is rolled back (kept with it and in the audit log)."""

    reason: str = Field("", max_length=1000)


class RolloutDeviceOut(BaseModel):
    """One device of a rollout."""

    device_id: str
    canary: bool
    status: DeviceRollout
    assigned_at: datetime | None
    detail: str | None


class RolloutOut(BaseModel):
    """A rollout: which model, to which target, where it stands."""

    id: int
    name: str
    version: str
    sha256: str
    target: dict[str, Any] = Field(examples=[{"group": 3}, {"devices": ["amr-7"]}])
    canary_percent: int
    auto_promote: bool
    state: RolloutState
    reason: str | None = Field(description="Why it was rolled back")
    created_by: str
    created_at: datetime
    updated_at: datetime
    canary_active_at: datetime | None = Field(
        description="Since when every canary device runs the model"
    )
    finished_at: datetime | None


class RolloutDetail(RolloutOut):
    """A rollout with its devices."""

    devices: list[RolloutDeviceOut]


class RolloutList(BaseModel):
    """Rollouts, newest first."""

    items: list[RolloutOut]
