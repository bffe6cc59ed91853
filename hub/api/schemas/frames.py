"""Bodies of the kept-frame routes (snapshots and captures)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Purpose = Literal["snapshot", "capture"]


class FrameOut(BaseModel):
    """A kept JPEG without its bytes (fetch them from `url`), and what the model saw in it."""

    device_id: str
    ts: datetime
    frame_id: str
    camera: str
    purpose: Purpose = Field(
        description="`snapshot`: an annotated rule hit; `capture`: an unsure frame to label."
    )
    width: int
    height: int
    size: int = Field(description="JPEG bytes.")
    url: str = Field(description="Where the JPEG is (`GET`, same login).")
    model: dict[str, str] | None = Field(
        description="The model that processed the frame, when its detections arrived."
    )
    objects: list[dict[str, Any]] = Field(
        description="Objects the model reported (class, conf, normalised box)."
    )


class FramePage(BaseModel):
    """A page of frames, newest first; pass `next_cursor` back as `cursor`."""

    items: list[FrameOut]
    next_cursor: str | None
