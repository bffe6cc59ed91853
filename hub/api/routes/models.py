"""`/api/v1/models` (the registry) and `/api/v1/rollouts` (canary rollouts).

| route | who |
|---|---|
| `POST /models` (multipart: file, name, version, card) | admin (ML engineers: an API key) |
| `GET /models`, `GET /models/{name}/versions/{version}` | viewer |
| `GET /models/artifacts/{sha256}` | a device it was assigned to (Basic, MQTT credentials) |
| `POST /rollouts`, `POST /rollouts/{id}/promote`, `POST /rollouts/{id}/rollback` | admin |
| `GET /rollouts`, `GET /rollouts/{id}` | viewer |

An admin limited to sites can roll out only to devices of those sites.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile, status
from fastapi.responses import FileResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from hub.api.deps import AdminPrincipal, ViewerPrincipal
from hub.api.schemas.errors import (
    AUTHED,
    CONFLICT,
    NOT_FOUND,
    UNAUTHORIZED,
    UNAVAILABLE,
)
from hub.api.schemas.models import (
    DB_INT,
    NAME_PATTERN,
    ModelDetail,
    ModelList,
    ModelOut,
    RollbackBody,
    RolloutCreate,
    RolloutDetail,
    RolloutDeviceOut,
    RolloutList,
    RolloutOut,
)
from hub.audit.middleware import mark_audited
from hub.registry.rollout import DeviceRollout, RolloutState
from hub.registry.service import (
    DeviceNotAuthenticated,
    RegistryService,
    RolloutTarget,
    RolloutView,
)
from hub.storage.repositories.registry import ModelVersionRecord, RolloutRecord

router = APIRouter(prefix="/api/v1", tags=["models"])
_basic = HTTPBasic(
    auto_error=False,
    scheme_name="deviceBasic",
    description="A device's MQTT username (its id) and password.",
)


def registry_service(request: Request) -> RegistryService:
    """The app's `RegistryService`."""
    service: RegistryService = request.app.state.registry
    return service


RegistryDep = Annotated[RegistryService, Depends(registry_service)]
Sha256Path = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN)]
RolloutId = Annotated[int, Path(ge=1, le=DB_INT)]


def model_out(record: ModelVersionRecord) -> ModelOut:
    """The API form of a version."""
    return ModelOut(
        name=record.name,
        version=record.version,
        sha256=record.sha256,
        size=record.size,
        input_size=list(record.card.get("input_size") or record.manifest["input_size"]),
        classes=list(record.manifest["classes"]),
        created_by=record.created_by,
        created_at=record.created_at,
    )


def rollout_out(record: RolloutRecord) -> RolloutOut:
    """The API form of a rollout."""
    return RolloutOut(
        id=record.id,
        name=record.name,
        version=record.version,
        sha256=record.sha256,
        target=record.target,
        canary_percent=record.canary_percent,
        auto_promote=record.auto_promote,
        state=RolloutState(record.state),
        reason=record.reason,
        created_by=record.created_by,
        created_at=record.created_at,
        updated_at=record.updated_at,
        canary_active_at=record.canary_active_at,
        finished_at=record.finished_at,
    )


def rollout_detail(view: RolloutView) -> RolloutDetail:
    """A rollout with its devices."""
    devices = [
        RolloutDeviceOut(
            device_id=d.device_id,
            canary=d.canary,
            status=DeviceRollout(d.status),
            assigned_at=d.assigned_at,
            detail=d.detail,
        )
        for d in view.devices
    ]
    return RolloutDetail(**rollout_out(view.rollout).model_dump(), devices=devices)


@router.post(
    "/models",
    status_code=status.HTTP_201_CREATED,
    summary="Push a model version (ONNX file and optional JSON card)",
    response_model=ModelDetail,
    responses={**AUTHED, **CONFLICT},
)
async def push_model(
    principal: AdminPrincipal,
    registry: RegistryDep,
    file: Annotated[UploadFile, File(description="The ONNX model")],
    name: Annotated[str, Form(pattern=NAME_PATTERN)],
    version: Annotated[str, Form(pattern=NAME_PATTERN)],
    card: Annotated[str | None, Form(description="The model card, a JSON object")] = None,
) -> ModelDetail:
    """Refused (422) unless it parses as ONNX with one (1, 3, H, W) input, one rank-3 output,
    and `names` and `imgsz` metadata; the card's `baseline` goes into the manifest."""
    record = await registry.push(principal, name=name, version=version, read=file.read, card=card)
    return ModelDetail(**model_out(record).model_dump(), card=record.card, manifest=record.manifest)


@router.get(
    "/models",
    summary="Pushed model versions, newest first",
    response_model=ModelList,
    responses=AUTHED,
)
async def list_models(
    _: ViewerPrincipal,
    registry: RegistryDep,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> ModelList:
    """Every version, or those of one `name`."""
    return ModelList(items=[model_out(m) for m in await registry.models(name=name)])


@router.get(
    "/models/artifacts/{sha256}",
    summary="Download an artifact (devices, with their MQTT credentials)",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The ONNX file"},
        **UNAUTHORIZED,
        **NOT_FOUND,
    },
)
async def download_artifact(
    sha256: Sha256Path,
    registry: RegistryDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> FileResponse:
    """Only for a device the model is (or was) assigned to; the agent checks sha256 and
    signature itself, so the hub streams the file as stored."""
    if credentials is None:
        raise DeviceNotAuthenticated("send the device's credentials (HTTP Basic)")
    path = await registry.artifact(credentials.username, credentials.password, sha256)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{sha256}.onnx")


@router.get(
    "/models/{name}/versions/{version}",
    summary="One model version: card, sha256, signed manifest",
    response_model=ModelDetail,
    responses={**AUTHED, **NOT_FOUND},
)
async def get_model(
    name: NamePath, version: NamePath, _: ViewerPrincipal, registry: RegistryDep
) -> ModelDetail:
    """The version as agents receive it."""
    record = await registry.model(name, version)
    return ModelDetail(**model_out(record).model_dump(), card=record.card, manifest=record.manifest)


@router.post(
    "/rollouts",
    status_code=status.HTTP_201_CREATED,
    summary="Start a rollout: the canary devices get the model now",
    response_model=RolloutDetail,
    responses={**AUTHED, **NOT_FOUND, **CONFLICT, **UNAVAILABLE},
)
async def create_rollout(
    body: RolloutCreate, principal: AdminPrincipal, registry: RegistryDep
) -> RolloutDetail:
    """409 when a target device is in another rollout still in progress."""
    target = RolloutTarget(
        group=body.target.group,
        site=body.target.site,
        devices=tuple(body.target.devices) if body.target.devices is not None else None,
    )
    view = await registry.create_rollout(
        principal,
        name=body.name,
        version=body.version,
        target=target,
        canary_percent=body.canary_percent,
        auto_promote=body.auto_promote,
    )
    return rollout_detail(view)


@router.get(
    "/rollouts", summary="Rollouts, newest first", response_model=RolloutList, responses=AUTHED
)
async def list_rollouts(principal: ViewerPrincipal, registry: RegistryDep) -> RolloutList:
    """Every rollout with its state."""
    return RolloutList(items=[rollout_out(r) for r in await registry.rollouts(principal)])


@router.get(
    "/rollouts/{rollout_id}",
    summary="A rollout and each device's progress",
    response_model=RolloutDetail,
    responses={**AUTHED, **NOT_FOUND},
)
async def get_rollout(
    rollout_id: RolloutId, principal: ViewerPrincipal, registry: RegistryDep
) -> RolloutDetail:
    """States: canary, canary_healthy, promoted, completed, rolled_back. A user limited to
    sites sees the devices of their sites only (404 when the rollout reaches none)."""
    return rollout_detail(await registry.rollout(rollout_id, principal))


@router.post(
    "/rollouts/{rollout_id}/promote",
    summary="Give the model to the rest of the target (canary must be healthy)",
    response_model=RolloutDetail,
    responses={**AUTHED, **NOT_FOUND, **CONFLICT, **UNAVAILABLE},
)
async def promote_rollout(
    rollout_id: RolloutId, request: Request, principal: AdminPrincipal, registry: RegistryDep
) -> RolloutDetail:
    """409 unless the rollout is `canary_healthy`."""
    view = await registry.promote(principal, rollout_id)
    mark_audited(request)
    return rollout_detail(view)


@router.post(
    "/rollouts/{rollout_id}/rollback",
    summary="Give every assigned device its previous model again",
    response_model=RolloutDetail,
    responses={**AUTHED, **NOT_FOUND, **CONFLICT, **UNAVAILABLE},
)
async def rollback_rollout(
    rollout_id: RolloutId,
    request: Request,
    principal: AdminPrincipal,
    registry: RegistryDep,
    body: RollbackBody | None = None,
) -> RolloutDetail:
    """Devices without a previous model have their assignment cleared."""
    reason = (body.reason if body else "") or f"rolled back by {principal.username}"
    view = await registry.rollback(principal, rollout_id, reason=reason)
    mark_audited(request)
    return rollout_detail(view)
