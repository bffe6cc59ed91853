"""Each device camera's own drift reference: what it normally shows under a model.

A model's training baseline says what the model learned from; a camera on a real site
always differs from it a little (its floor, its light, its traffic), so scoring every
window against the training set alone would flag every healthy device. The drift
worker therefore learns a reference per (device, camera, model): the mean of the first
`[drift] reference_windows` windows after the model starts running there. Later windows
are scored against it (`drift.psi`), and the alert rule watches those scores. Resetting
the reference (`DELETE /api/v1/devices/{id}/drift/reference`, after a camera was moved
or re-aimed on purpose) makes the worker learn it again from the next windows.

Example:
    >>> fold({"a": [1.0, 0.0]}, 1, {"a": [0.0, 1.0], "b": [1.0]})
    {'a': [0.5, 0.5], 'b': [1.0]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.models import DriftReference


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference as the worker uses it: learning until `windows` reaches `needed`."""

    windows: int
    needed: int
    histograms: dict[str, list[float]]

    @property
    def learning(self) -> bool:
        """Still folding windows in: no `drift.psi` yet."""
        return self.windows < self.needed


def fold(
    reference: Mapping[str, Sequence[float]], windows: int, live: Mapping[str, Sequence[float]]
) -> dict[str, list[float]]:
    """The running mean of `windows` folded windows and one more (`live`), per histogram.

    A histogram the reference lacks (nothing was seen of it yet) starts from `live`.
    """
    out = {key: list(values) for key, values in reference.items()}
    for key, values in live.items():
        before = reference.get(key)
        if before is None or len(before) != len(values):
            out[key] = list(values)
            continue
        out[key] = [(b * windows + v) / (windows + 1) for b, v in zip(before, values, strict=True)]
    return out


async def learn(
    session: AsyncSession,
    *,
    device: str,
    camera: str,
    model_sha256: str,
    window_ms: int,
    live: Mapping[str, Sequence[float]],
    needed: int,
    now: datetime,
) -> Reference:
    """The reference this window is scored against, folding the window in while learning.

    A window at or before the newest one folded (the worker read it again) is not folded
    twice. The window that completes the reference is part of it, not scored against it.
    """
    row = await session.get(DriftReference, (device, camera, model_sha256))
    if row is None:
        row = DriftReference(
            device=device,
            camera=camera,
            model_sha256=model_sha256,
            windows=1,
            last_window_ms=window_ms,
            histograms={k: list(v) for k, v in live.items()},
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        return Reference(0, needed, {})
    if row.windows < needed:
        if window_ms > row.last_window_ms:
            row.histograms = fold(row.histograms, row.windows, live)
            row.windows += 1
            row.last_window_ms, row.updated_at = window_ms, now
        return Reference(row.windows - 1, needed, {})
    return Reference(row.windows, needed, dict(row.histograms))


async def reset(session: AsyncSession, device: str) -> int:
    """Forget every reference of `device` (all cameras and models); how many there were."""
    result = await session.execute(delete(DriftReference).where(DriftReference.device == device))
    return int(getattr(result, "rowcount", 0) or 0)


async def current(session: AsyncSession, device: str, model_sha256: str) -> list[DriftReference]:
    """The device's references under a model, one per camera."""
    rows = await session.scalars(
        select(DriftReference)
        .where(DriftReference.device == device, DriftReference.model_sha256 == model_sha256)
        .order_by(DriftReference.camera)
    )
    return list(rows)
