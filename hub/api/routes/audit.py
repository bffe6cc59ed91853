"""`/api/v1/audit`: admins page through the audit log, newest first."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from hub.api.deps import AdminPrincipal, AuditDep
from hub.api.schemas.audit import AuditEntryOut, AuditPage
from hub.api.schemas.errors import AUTHED
from hub.auth.errors import InvalidInput
from hub.storage.repositories.audit import AuditRecord

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
MAX_CURSOR_DIGITS = 18


def _out(record: AuditRecord) -> AuditEntryOut:
    return AuditEntryOut(
        id=record.id,
        at=record.at,
        actor=record.actor,
        role=record.role,
        action=record.action,
        target=record.target,
        decision="denied" if record.decision == "denied" else "allowed",
        result=record.result,
        detail=json.loads(record.detail),
        prev_hash=record.prev_hash,
        hash=record.hash,
    )


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    # ASCII digits only ("²".isdigit() too), and few enough for a BIGINT id.
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_CURSOR_DIGITS):
        raise InvalidInput("cursor: pass back a next_cursor from an earlier page", field="cursor")
    return int(value)


@router.get(
    "",
    summary="Page through the audit log (admin), newest first",
    response_model=AuditPage,
    responses=AUTHED,
)
async def audit_page(
    _: AdminPrincipal,
    audit: AuditDep,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[
        str | None, Query(max_length=256, description="Rows whose action starts with this.")
    ] = None,
    decision: Literal["allowed", "denied"] | None = None,
) -> AuditPage:
    """One page of rows, optionally filtered."""
    rows = await audit.page(
        before_id=_cursor(cursor),
        limit=limit,
        actor=actor,
        action_prefix=action,
        decision=decision,
    )
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    return AuditPage(items=[_out(r) for r in rows], next_cursor=next_cursor)
