"""`GET /api/v1/devices/{id}/drift`: what the camera sees and the model answers, against the
model's training baseline and the camera's own reference (viewer or above; a device
outside the caller's sites is 404); `DELETE /api/v1/devices/{id}/drift/reference` makes
the hub learn that reference again (operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from hub.api.deps import CurrentPrincipal, OperatorPrincipal
from hub.api.routes.queries import From
from hub.api.schemas.drift import DriftOut, HistogramOut, ReferenceOut, ReferenceReset, ScoreOut
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
        reference=ReferenceOut(
            windows=report.reference_windows,
            needed=report.reference_needed,
            learning=report.reference_windows < report.reference_needed,
        ),
        histograms=[
            HistogramOut(
                key=h.key,
                bins=h.bins,
                live=h.live,
                baseline=h.baseline,
                psi_train=h.psi_train,
                reference=h.reference,
                psi=h.psi,
            )
            for h in report.histograms
        ],
        history={
            key: [ScoreOut(ts=ts, psi=value) for ts, value in scores]
            for key, scores in report.history.items()
        },
    )


@router.delete(
    "/devices/{device_id}/drift/reference",
    summary="Learn a device's drift reference again (operator)",
    response_model=ReferenceReset,
    responses={**AUTHED, **NOT_FOUND},
)
async def reset_drift_reference(
    device_id: str, principal: OperatorPrincipal, drift: DriftDep
) -> ReferenceReset:
    """After a camera was moved or re-aimed on purpose: the hub forgets what the device's
    cameras normally show and learns it again from their next windows."""
    forgotten = await drift.reset_reference(principal, device_id)
    return ReferenceReset(device_id=device_id, forgotten=forgotten)
