"""The model registry's SQL: model versions, rollouts and their devices, assignments."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import (
    Detection,
    Device,
    EventRow,
    ModelAssignmentRow,
    ModelVersionRow,
    RolloutDeviceRow,
    RolloutRow,
)

MODEL_REJECTED = "model_rejected"


@dataclass(frozen=True, slots=True)
class ModelVersionRecord:
    """A pushed model version."""

    id: int
    name: str
    version: str
    sha256: str
    size: int
    card: dict[str, Any]
    manifest: dict[str, Any]
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """A rollout, with the name and version it rolls out."""

    id: int
    model_id: int
    name: str
    version: str
    sha256: str
    target: dict[str, Any]
    canary_percent: int
    auto_promote: bool
    state: str
    reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    canary_active_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class RolloutDeviceRecord:
    """One device of a rollout."""

    device_id: str
    canary: bool
    status: str
    assigned_at: datetime | None
    previous_model_id: int | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A `model_rejected` event a device sent."""

    device: str
    ts: datetime
    detail: dict[str, Any]


def _model(row: ModelVersionRow) -> ModelVersionRecord:
    return ModelVersionRecord(
        row.id,
        row.name,
        row.version,
        row.sha256,
        row.size,
        dict(row.card),
        dict(row.manifest),
        row.created_by,
        row.created_at,
    )


def _rollout(row: RolloutRow, model: ModelVersionRow) -> RolloutRecord:
    return RolloutRecord(
        id=row.id,
        model_id=row.model_id,
        name=model.name,
        version=model.version,
        sha256=model.sha256,
        target=dict(row.target),
        canary_percent=row.canary_percent,
        auto_promote=row.auto_promote,
        state=row.state,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        canary_active_at=row.canary_active_at,
        finished_at=row.finished_at,
    )


# --- model versions ----------------------------------------------------------------------


@translated
async def insert_model(
    session: AsyncSession,
    *,
    name: str,
    version: str,
    sha256: str,
    size: int,
    card: dict[str, Any],
    manifest: dict[str, Any],
    created_by: str,
    now: datetime,
) -> ModelVersionRecord:
    """Store a new version (a duplicate (name, version) raises `StorageError`)."""
    row = ModelVersionRow(
        name=name,
        version=version,
        sha256=sha256,
        size=size,
        card=card,
        manifest=manifest,
        created_by=created_by,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return _model(row)


@translated
async def find_model(
    session: AsyncSession, *, name: str, version: str
) -> ModelVersionRecord | None:
    """The version `name` `version`, or None."""
    row = await session.scalar(
        select(ModelVersionRow).where(
            ModelVersionRow.name == name, ModelVersionRow.version == version
        )
    )
    return None if row is None else _model(row)


@translated
async def get_model(session: AsyncSession, *, model_id: int) -> ModelVersionRecord | None:
    """The version with this id, or None."""
    row = await session.get(ModelVersionRow, model_id)
    return None if row is None else _model(row)


@translated
async def list_models(
    session: AsyncSession, *, name: str | None = None, limit: int = 500
) -> list[ModelVersionRecord]:
    """Versions, newest first (of one name when given)."""
    query = select(ModelVersionRow).order_by(ModelVersionRow.id.desc()).limit(limit)
    if name is not None:
        query = query.where(ModelVersionRow.name == name)
    return [_model(r) for r in await session.scalars(query)]


# --- rollouts ----------------------------------------------------------------------------


@translated
async def insert_rollout(
    session: AsyncSession,
    *,
    model_id: int,
    target: dict[str, Any],
    canary_percent: int,
    auto_promote: bool,
    state: str,
    created_by: str,
    devices: Sequence[tuple[str, bool]],
    now: datetime,
) -> int:
    """A new rollout and its devices `(id, canary)`, all pending; its id."""
    row = RolloutRow(
        model_id=model_id,
        target=target,
        canary_percent=canary_percent,
        auto_promote=auto_promote,
        state=state,
        reason=None,
        created_by=created_by,
        created_at=now,
        updated_at=now,
        canary_active_at=None,
        finished_at=None,
    )
    session.add(row)
    await session.flush()
    session.add_all(
        RolloutDeviceRow(
            rollout_id=row.id,
            device_id=device,
            canary=canary,
            status="pending",
            assigned_at=None,
            previous_model_id=None,
            detail=None,
        )
        for device, canary in devices
    )
    await session.flush()
    return row.id


@translated
async def get_rollout(
    session: AsyncSession, *, rollout_id: int, for_update: bool = False
) -> RolloutRecord | None:
    """The rollout, or None; `for_update` locks its row until the transaction ends."""
    query = (
        select(RolloutRow, ModelVersionRow)
        .join(ModelVersionRow, ModelVersionRow.id == RolloutRow.model_id)
        .where(RolloutRow.id == rollout_id)
        .execution_options(populate_existing=True)
    )
    if for_update:
        query = query.with_for_update(of=RolloutRow)
    found = (await session.execute(query)).first()
    return None if found is None else _rollout(found[0], found[1])


@translated
async def list_rollouts(
    session: AsyncSession, *, states: Iterable[str] | None = None, limit: int = 200
) -> list[RolloutRecord]:
    """Rollouts, newest first, optionally only those in `states`."""
    query = (
        select(RolloutRow, ModelVersionRow)
        .join(ModelVersionRow, ModelVersionRow.id == RolloutRow.model_id)
        .order_by(RolloutRow.id.desc())
        .limit(limit)
    )
    if states is not None:
        query = query.where(RolloutRow.state.in_(sorted(states)))
    return [_rollout(r, m) for r, m in (await session.execute(query)).all()]


@translated
async def update_rollout(
    session: AsyncSession,
    *,
    rollout_id: int,
    values: dict[str, Any],
    expect_state: str | None = None,
) -> bool:
    """Set columns; with `expect_state`, only while the rollout is still in it (False if not)."""
    query = update(RolloutRow).where(RolloutRow.id == rollout_id).values(**values)
    if expect_state is not None:
        query = query.where(RolloutRow.state == expect_state)
    result = await session.execute(query)
    return bool(getattr(result, "rowcount", 0))


@translated
async def rollout_devices(session: AsyncSession, *, rollout_id: int) -> list[RolloutDeviceRecord]:
    """The rollout's devices, by id."""
    rows = await session.scalars(
        select(RolloutDeviceRow)
        .where(RolloutDeviceRow.rollout_id == rollout_id)
        .order_by(RolloutDeviceRow.device_id)
    )
    return [
        RolloutDeviceRecord(
            r.device_id, r.canary, r.status, r.assigned_at, r.previous_model_id, r.detail
        )
        for r in rows
    ]


@translated
async def update_rollout_device(
    session: AsyncSession, *, rollout_id: int, device_id: str, values: dict[str, Any]
) -> None:
    """Set columns of one device of a rollout."""
    await session.execute(
        update(RolloutDeviceRow)
        .where(RolloutDeviceRow.rollout_id == rollout_id, RolloutDeviceRow.device_id == device_id)
        .values(**values)
    )


@translated
async def busy_devices(
    session: AsyncSession, *, device_ids: Iterable[str], states: Iterable[str]
) -> dict[str, int]:
    """Which of these devices are in a rollout in one of `states`: device → rollout id."""
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(RolloutDeviceRow.device_id, RolloutRow.id)
        .join(RolloutRow, RolloutRow.id == RolloutDeviceRow.rollout_id)
        .where(RolloutDeviceRow.device_id.in_(ids), RolloutRow.state.in_(sorted(states)))
    )
    return {device: rollout for device, rollout in rows.all()}


# --- assignments -------------------------------------------------------------------------


@translated
async def current_model_id(session: AsyncSession, *, device_id: str) -> int | None:
    """The model the device is assigned now, or None."""
    row = await session.get(ModelAssignmentRow, device_id)
    return None if row is None else row.model_id


@translated
async def set_assignment(
    session: AsyncSession,
    *,
    device_id: str,
    model_id: int,
    rollout_id: int | None,
    now: datetime,
) -> None:
    """Record the device's current assignment (replacing the one before)."""
    row = await session.get(ModelAssignmentRow, device_id)
    if row is None:
        session.add(
            ModelAssignmentRow(
                device_id=device_id, model_id=model_id, rollout_id=rollout_id, assigned_at=now
            )
        )
    else:
        row.model_id, row.rollout_id, row.assigned_at = model_id, rollout_id, now
    await session.flush()


@translated
async def clear_assignment(session: AsyncSession, *, device_id: str) -> None:
    """The device has no assignment any more."""
    await session.execute(
        delete(ModelAssignmentRow).where(ModelAssignmentRow.device_id == device_id)
    )


@translated
async def may_fetch(session: AsyncSession, *, device_id: str, sha256: str) -> bool:
    """Whether a model with this sha256 is, or ever was, assigned to the device."""
    assigned = (
        select(ModelVersionRow.id)
        .where(ModelVersionRow.sha256 == sha256)
        .where(
            or_(
                ModelVersionRow.id.in_(
                    select(ModelAssignmentRow.model_id).where(
                        ModelAssignmentRow.device_id == device_id
                    )
                ),
                ModelVersionRow.id.in_(
                    select(RolloutRow.model_id)
                    .join(RolloutDeviceRow, RolloutDeviceRow.rollout_id == RolloutRow.id)
                    .where(
                        RolloutDeviceRow.device_id == device_id,
                        RolloutDeviceRow.assigned_at.is_not(None),
                    )
                ),
            )
        )
        .limit(1)
    )
    return await session.scalar(assigned) is not None


# --- what devices reported ---------------------------------------------------------------


@translated
async def rejections(
    session: AsyncSession, *, device_ids: Iterable[str], since: datetime
) -> list[Rejection]:
    """`model_rejected` events of these devices at or after `since`, oldest first."""
    ids = sorted(set(device_ids))
    if not ids:
        return []
    rows = await session.scalars(
        select(EventRow)
        .where(EventRow.device.in_(ids), EventRow.type == MODEL_REJECTED, EventRow.ts >= since)
        .order_by(EventRow.ts)
        .limit(1000)
    )
    return [Rejection(r.device, r.ts, dict(r.detail or {})) for r in rows]


@translated
async def mean_latency(
    session: AsyncSession, *, device_id: str, sha256: str, start: datetime, end: datetime
) -> float | None:
    """Mean `latency_ms` of the device's detections by this model in [start, end)."""
    value = await session.scalar(
        select(func.avg(Detection.latency_ms)).where(
            Detection.device == device_id,
            Detection.model_sha256 == sha256,
            Detection.ts >= start,
            Detection.ts < end,
        )
    )
    return None if value is None else float(value)


@translated
async def devices_in_sites(
    session: AsyncSession, *, device_ids: Iterable[str], sites: Iterable[str]
) -> set[str]:
    """Which of `device_ids` belong to one of `sites`."""
    ids, wanted = sorted(set(device_ids)), sorted(set(sites))
    if not ids or not wanted:
        return set()
    rows = await session.scalars(
        select(Device.id).where(Device.id.in_(ids), Device.site_id.in_(wanted))
    )
    return set(rows)


@translated
async def rollouts_in_sites(session: AsyncSession, *, sites: Iterable[str]) -> set[int]:
    """Rollouts with at least one device in one of `sites`."""
    wanted = sorted(set(sites))
    if not wanted:
        return set()
    rows = await session.scalars(
        select(RolloutDeviceRow.rollout_id)
        .join(Device, Device.id == RolloutDeviceRow.device_id)
        .where(Device.site_id.in_(wanted))
        .distinct()
    )
    return set(rows)
