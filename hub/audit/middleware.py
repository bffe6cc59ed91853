"""Every state-changing request (POST, PUT, PATCH, DELETE) leaves an audit row.

Allowed or denied: the row names the principal (`current_principal` puts it in
the request state), the route, the concrete path and the response status. It is
written before the response starts, so a client never sees an answer to a
request that left no trace. A route whose service already wrote a richer row in
the same transaction as the change calls `mark_audited(request)`, and this
middleware adds nothing.

Example:
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> app.add_middleware(AuditMiddleware, audit=AuditLog(sessions))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.audit.chain import Decision, Entry
from hub.audit.log import AuditLog
from hub.auth.principal import Principal

logger = logging.getLogger(__name__)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DENIED_STATUSES = frozenset({401, 403, 429})
AUDITED = "audit_recorded"
PRINCIPAL = "principal"


def mark_audited(request: Request) -> None:
    """Tell the middleware this request's audit row is written already."""
    request.state.audit_recorded = True


def set_principal(request: Request, principal: Principal) -> None:
    """Remember who made the request, for its audit row."""
    request.state.principal = principal


def decision_for(status: int) -> Decision:
    """`denied` for 401, 403 and 429; `allowed` otherwise (`result` holds the status)."""
    return "denied" if status in DENIED_STATUSES else "allowed"


class AuditMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware: streaming and cancellation stay intact)."""

    def __init__(self, app: ASGIApp, *, audit: AuditLog) -> None:
        self.app, self.audit = app, audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; write the audit row when the response starts."""
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        started = False

        async def audited_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                await self._record(scope, state, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not started:
                started = True
                await self._record(scope, state, 500)
            raise

    async def _record(self, scope: Scope, state: dict[str, Any], status: int) -> None:
        if state.get(AUDITED):
            return
        try:
            await self.audit.record(_entry(scope, state, status))
        except Exception:  # the response still goes out; the failure is loud in the log
            logger.exception(
                "could not write the audit row of %s %s (status %s)",
                scope["method"],
                scope.get("path", "?"),
                status,
            )


def _entry(scope: Scope, state: dict[str, Any], status: int) -> Entry:
    principal = state.get(PRINCIPAL)
    route = scope.get("route")
    template = getattr(route, "path", None) or scope.get("path", "?")
    client = scope.get("client")
    detail: dict[str, Any] = {"client": client[0] if client else None}
    if isinstance(principal, Principal):
        actor, role = principal.username, principal.role.value
        detail["via"] = principal.via
        if principal.api_key_id is not None:
            detail["api_key_id"] = principal.api_key_id
    else:
        actor, role = "anonymous", None
    return Entry(
        actor=actor,
        role=role,
        action=f"{scope['method']} {template}",
        target=scope.get("path"),
        decision=decision_for(status),
        result=str(status),
        detail=detail,
    )
