"""Body of the drift report route."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class HistogramOut(BaseModel):
    """One histogram of the device's newest drift window beside its model's baseline."""

    key: str = Field(examples=["brightness_hist"])
    bins: list[str] = Field(description="Bin labels: class names, or 00, 01, ….")
    live: list[float]
    baseline: list[float]
    psi: float = Field(description="Population stability index: > 0.25 is a real shift.")


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
    histograms: list[HistogramOut]
    history: dict[str, list[ScoreOut]] = Field(description="Histogram key → scores, oldest first.")
