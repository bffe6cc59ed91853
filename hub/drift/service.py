"""`DriftService`: a device's drift, for the API and reports.

For one device: the model it reports running and that model's baseline (from the
registry), its camera's own reference (`hub.drift.reference`), the newest drift
window's histograms beside both with the PSI against each, and the history of the
hub's scores (`drift.psi`, stream `hub-drift`) over a time range. `outpost drift
report` and the dashboard's drift charts read it; `reset_reference` makes the drift
worker learn the device's references again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.auth.errors import NotFound
from hub.auth.principal import Principal
from hub.drift import reference
from hub.drift.models import running_model
from hub.drift.psi import CLASS_KEY, HIST_PREFIX, Window, compare, live_histograms
from hub.drift.worker import STREAM
from hub.storage.db import transaction
from hub.storage.models import Telemetry
from hub.storage.repositories import assets as asset_repo

MAX_HISTORY = 2000


@dataclass(frozen=True, slots=True)
class HistogramView:
    """One histogram of the newest window beside the training baseline's and the reference's."""

    key: str
    bins: list[str]
    live: list[float]
    baseline: list[float]
    psi_train: float
    reference: list[float] | None  # None while the reference is being learned
    psi: float | None


@dataclass(frozen=True, slots=True)
class DriftReport:
    """What `GET /api/v1/devices/{id}/drift` answers."""

    device: str
    model: dict[str, str] | None
    has_baseline: bool
    window_ts: datetime | None
    reference_windows: int = 0
    reference_needed: int = 0
    histograms: list[HistogramView] = field(default_factory=list)
    history: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)


class DriftService:
    """Drift reports, through the caller's scope (a device outside it is 404)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        reference_windows: int = 5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._clock, self._needed = sessions, clock, reference_windows

    async def reset_reference(self, principal: Principal, device_id: str) -> int:
        """Forget the device's references; the worker learns them again from the next windows."""
        async with transaction(self._sessions) as session:
            await self._device(session, principal, device_id)
            return await reference.reset(session, device_id)

    async def _device(self, session: AsyncSession, principal: Principal, device_id: str) -> None:
        device = await asset_repo.get_device(session, device_id=device_id)
        if device is None or not principal.can_access_site(device.site_id):
            raise NotFound(f"no device {device_id!r}", code="device_not_found")

    async def report(
        self, principal: Principal, device_id: str, *, since: datetime | None = None
    ) -> DriftReport:
        """The device's newest window against its baseline, and its scores since `since`."""
        start = since or self._clock() - timedelta(hours=24)
        async with transaction(self._sessions) as session:
            await self._device(session, principal, device_id)
            model, manifest = await running_model(session, device_id)
            window = await _newest_window(session, device_id)
            history = await _history(session, device_id, start)
            sha = str((model or {}).get("sha256") or "")
            references = await reference.current(session, device_id, sha) if sha else []
        baseline = (manifest or {}).get("baseline") or {}
        classes = list((manifest or {}).get("classes") or [])
        camera = window.tags.get("camera", "") if window else ""
        ref = next((r for r in references if r.camera == camera), None)
        learned = ref.windows if ref is not None else 0
        ready = ref.histograms if ref is not None and learned >= self._needed else None
        views: list[HistogramView] = []
        if window is not None and baseline:
            live = live_histograms(window, classes, baseline)
            psi_train = compare(live, baseline)
            psi = compare(live, ready) if ready is not None else {}
            for key in sorted(live):
                bins = classes if key == CLASS_KEY else [f"{i:02d}" for i in range(len(live[key]))]
                views.append(
                    HistogramView(
                        key,
                        bins,
                        live[key],
                        list(baseline[key]),
                        psi_train.get(key, 0.0),
                        list(ready[key]) if ready is not None and key in ready else None,
                        psi.get(key),
                    )
                )
        return DriftReport(
            device=device_id,
            model={k: str(v) for k, v in model.items()} if model else None,
            has_baseline=bool(baseline),
            window_ts=datetime.fromtimestamp(window.ts_ms / 1000, UTC) if window else None,
            reference_windows=min(learned, self._needed),
            reference_needed=self._needed,
            histograms=views,
            history=history,
        )


async def _newest_window(session: AsyncSession, device: str) -> Window | None:
    newest = await session.scalar(
        select(func.max(Telemetry.ts)).where(
            Telemetry.device == device, Telemetry.metric == "drift.frames"
        )
    )
    if newest is None:
        return None
    rows = await session.execute(
        select(Telemetry.metric, Telemetry.tags, Telemetry.value).where(
            Telemetry.device == device,
            Telemetry.ts == newest,
            Telemetry.metric.startswith(HIST_PREFIX),
            Telemetry.stream != STREAM,
        )
    )
    window = Window(device, int(newest.timestamp() * 1000))
    for metric, tags, value in rows:
        window.add(metric, tags or {}, value)
    return window


async def _history(
    session: AsyncSession, device: str, since: datetime
) -> dict[str, list[tuple[datetime, float]]]:
    rows = await session.execute(
        select(Telemetry.ts, Telemetry.tags, Telemetry.value)
        .where(
            Telemetry.device == device,
            Telemetry.stream == STREAM,
            Telemetry.metric == "drift.psi",
            Telemetry.ts >= since,
        )
        .order_by(Telemetry.ts)
        .limit(MAX_HISTORY)
    )
    history: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for ts, tags, value in rows:
        history[str((tags or {}).get("hist", "?"))].append((ts, value))
    return dict(history)
