"""Body of the drift report route."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class HistogramOut(BaseModel):
    """One histogram of the device's newest drift window beside its model's training
    baseline and beside the device camera's own reference."""

    key: str = Field(examples=["brightness_hist"])
    bins: list[str] = Field(description="Bin labels: class names, or 00, 01, ….")
    live: list[float]
    baseline: list[float] = Field(description="The model's training baseline (its val split).")
    psi_train: float = Field(description="PSI against the training baseline (informative).")
    reference: list[float] | None = Field(
        description="What this camera normally shows under this model; null while learned."
    )
    psi: float | None = Field(
        description="PSI against the reference (> 0.25 is a real shift); null while learned."
    )


class ReferenceOut(BaseModel):
    """The device camera's own reference: learned from its first windows under the model."""

    windows: int = Field(description="Windows learned so far (at most `needed`).")
    needed: int = Field(description="[drift] reference_windows: scoring starts there.")
    learning: bool


class ScoreOut(BaseModel):
    """One hub-computed score of one window."""

    ts: datetime
    psi: float


class DriftOut(BaseModel):
    """A device's drift against the baseline of the model it runs."""

    device_id: str
    model: dict[str, str] | None = Field(description="The model the device reports running.")
    has_baseline: bool = Field(
        description="False when the model is not in the registry or its card had no baseline."
    )
    window_ts: datetime | None = Field(description="When the newest drift window closed.")
    reference: ReferenceOut
    histograms: list[HistogramOut]
    history: dict[str, list[ScoreOut]] = Field(description="Histogram key → scores, oldest first.")


class ReferenceReset(BaseModel):
    """What `DELETE /devices/{id}/drift/reference` did."""

    device_id: str
    forgotten: int = Field(description="References dropped (one per camera and model).")
