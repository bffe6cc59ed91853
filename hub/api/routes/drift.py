"""`GET /api/v1/devices/{id}/drift`: what the camera sees and the model answers, against the
model's training baseline (viewer or above; a device outside the caller's sites is 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from hub.api.deps import CurrentPrincipal
from hub.api.routes.queries import From
from hub.api.schemas.drift import DriftOut, HistogramOut, ScoreOut
from hub.api.schemas.errors import AUTHED, NOT_FOUND
from hub.drift.service import DriftService

router = APIRouter(prefix="/api/v1", tags=["queries"])


def drift_service(request: Request) -> DriftService:
    """The app's `DriftService`."""
    service: DriftService = request.app.state.drift
    return service


DriftDep = Annotated[DriftService, Depends(drift_service)]


@router.get(
    "/devices/{device_id}/drift",
    summary="A device's drift against its model's baseline",
    response_model=DriftOut,
    responses={**AUTHED, **NOT_FOUND},
)
async def device_drift(
    device_id: str, principal: CurrentPrincipal, drift: DriftDep, since: From = None
) -> DriftOut:
    """The newest window's histograms beside the baseline's, and the scores since `from`
    (default: the last 24 hours)."""
    report = await drift.report(principal, device_id, since=since)
    return DriftOut(
        device_id=report.device,
        model=report.model,
        has_baseline=report.has_baseline,
        window_ts=report.window_ts,
        histograms=[
            HistogramOut(key=h.key, bins=h.bins, live=h.live, baseline=h.baseline, psi=h.psi)
            for h in report.histograms
        ],
        history={
            key: [ScoreOut(ts=ts, psi=value) for ts, value in scores]
            for key, scores in report.history.items()
        },
    )
