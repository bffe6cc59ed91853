"""Bodies of `/api/v1/audit`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class AuditEntryOut(BaseModel):
    """One audit row, with the hashes that chain it."""

    id: int
    at: datetime
    actor: str = Field(description="A username, `device:ID`, `system` or `anonymous`.")
    role: str | None
    action: str = Field(examples=["auth.login", "user.update", "POST /api/v1/devices/{id}/estop"])
    target: str | None
    decision: Literal["allowed", "denied"]
    result: str | None = Field(description="What came of it: an HTTP status, a command ack.")
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    """Newest first; pass `next_cursor` as `cursor` for the next (older) page."""

    items: list[AuditEntryOut]
    next_cursor: str | None = Field(description="null on the last page.")
