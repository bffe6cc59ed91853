"""The model a device reports running, and that model's manifest in the registry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.models import DeviceStatus, ModelVersionRow


async def running_model(
    session: AsyncSession, device: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the model ref from the device's last state, its registry manifest); None when unknown."""
    state = await session.scalar(select(DeviceStatus.state).where(DeviceStatus.device == device))
    model = (state or {}).get("model")
    sha = (model or {}).get("sha256")
    if not sha:
        return model, None
    manifest = await session.scalar(
        select(ModelVersionRow.manifest)
        .where(ModelVersionRow.sha256 == sha)
        .order_by(ModelVersionRow.id.desc())
        .limit(1)
    )
    return model, manifest
