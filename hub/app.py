"""The FastAPI application: lifespan-owned clients on `app.state`, thin routes.

`/api/v1/health` and `/api/v1/enroll` (the token is the credential) need no
login; every other route sits behind `hub.api.deps.current_principal`. Services
live on `app.state` (`auth`, `users`, `audit`, `assets`, `enrollment`, `control`, `queries`); every
state-changing request is audited by `AuditMiddleware`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import __version__
from hub.api.routes import assets as assets_routes
from hub.api.routes import audit as audit_routes
from hub.api.routes import auth as auth_routes
from hub.api.routes import control as control_routes
from hub.api.routes import enrollment as enrollment_routes
from hub.api.routes import queries as queries_routes
from hub.api.routes import users as users_routes
from hub.assets.enrollment import BrokerAccess, EnrollmentService, EnrollmentTokens
from hub.assets.service import AssetService
from hub.audit.log import AuditLog
from hub.audit.middleware import AuditMiddleware
from hub.auth.errors import ApiError, InvalidInput
from hub.auth.ratelimit import LoginLimiter
from hub.auth.service import AuthService
from hub.auth.signing import load_or_create_signing_key
from hub.auth.tokens import TokenCodec
from hub.auth.users import UserService
from hub.broker.embedded import device_url
from hub.control.publisher import CommandPublisher, MqttCommandPublisher
from hub.control.service import ControlService
from hub.queries.service import QueryService
from hub.settings import HubSettings
from hub.storage.db import session_factory
from protocol.signing import public_key_to_text

Probe = Callable[[], Awaitable[str]]


class Health(BaseModel):
    """`ok` when every dependency answers; each check is `ok` or `down: <why>`."""

    status: Literal["ok", "degraded"]
    checks: dict[str, str] = Field(examples=[{"database": "ok", "bus": "ok", "broker": "ok"}])


def create_app(
    settings: HubSettings,
    engine: AsyncEngine,
    bus_probe: Probe,
    broker_probe: Probe | None = None,
    *,
    publisher: CommandPublisher | None = None,
) -> FastAPI:
    """The hub's HTTP application, given the long-lived clients the process owns.

    `broker_probe` checks the embedded broker; without it, a TCP connect to `[broker] url`.
    `publisher` sends commands; by default the app's own MQTT connection to `[broker]`
    (`MqttCommandPublisher`), opened and closed by the lifespan.
    """
    check_broker = broker_probe or (lambda: _broker(settings))
    commands = publisher or MqttCommandPublisher(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings, app.state.engine, app.state.bus_probe = settings, engine, bus_probe
        async with AsyncExitStack() as stack:
            if isinstance(commands, AbstractAsyncContextManager):
                await stack.enter_async_context(commands)
            yield

    app = FastAPI(
        title="Outpost hub",
        version=__version__,
        lifespan=lifespan,
        description=API_DESCRIPTION,
        openapi_tags=TAGS,
    )
    _security(app, settings, engine, commands)

    @app.get(
        "/api/v1/health",
        summary="State of each dependency; 503 when one is down",
        tags=["health"],
        response_model=Health,
        responses={503: {"model": Health, "description": "A dependency is down"}},
    )
    async def health() -> JSONResponse:
        checks = {
            "database": await _probe(lambda: _database(engine)),
            "bus": await _probe(bus_probe),
            "broker": await _probe(check_broker),
        }
        ok = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"status": "ok" if ok else "degraded", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    return app


API_DESCRIPTION = (
    "The hub's REST API. Log in with `POST /api/v1/auth/login` and send the access token as "
    "`Authorization: Bearer <token>`, or send an API key (`opk_…`) the same way or as "
    '`X-API-Key`. Errors are `{"detail": {"code", "message"}}` (422: a list of '
    "field errors). Roles: viewer < operator < admin, optionally limited to sites."
)
TAGS = [
    {"name": "auth", "description": "Login, tokens, API keys."},
    {"name": "users", "description": "Hub users and roles (admin)."},
    {"name": "audit", "description": "The hash-chained audit log (admin)."},
    {"name": "assets", "description": "Sites, device groups and devices, within your scope."},
    {"name": "enrollment", "description": "Enrollment tokens, and devices enrolling with one."},
    {
        "name": "control",
        "description": "Stop, release, override and path commands (operator), their history.",
    },
    {"name": "queries", "description": "Telemetry for charts, detections and events."},
    {"name": "health", "description": "Liveness of the hub's dependencies (no login)."},
]


def _security(
    app: FastAPI, settings: HubSettings, engine: AsyncEngine, publisher: CommandPublisher
) -> None:
    """Services on `app.state`, the auth/users/audit routers, audit middleware, error bodies."""
    sessions = session_factory(engine)
    audit = AuditLog(sessions)
    cfg = settings.auth
    limiter = LoginLimiter(max_failures=cfg.login_max_failures, window_s=cfg.login_window_s)
    # Reads (or creates) DATA_DIR/jwt-secret once, before serving: a few bytes, on purpose
    # synchronous so that a bad secret stops the start with exit status 2.
    codec = TokenCodec.from_settings(cfg, settings.data_dir)
    app.state.audit = audit
    app.state.users = UserService(sessions, audit)
    app.state.auth = AuthService(sessions, audit, codec, limiter, refresh_ttl_s=cfg.refresh_ttl_s)
    app.state.assets = AssetService(sessions, audit)
    app.state.enrollment_tokens = EnrollmentTokens(sessions, audit)
    # The command-signing key (DATA_DIR/hub-signing.key, 0600): agents pin its public half.
    signing_key = load_or_create_signing_key(settings.data_dir)
    app.state.enrollment = EnrollmentService(
        sessions,
        audit,
        hub_public_key=public_key_to_text(signing_key.public_key()),
        broker=broker_access(settings),
    )
    app.state.control = ControlService(sessions, audit, publisher, signing_key, settings.control)
    app.state.queries = QueryService(sessions)
    routers = (
        auth_routes,
        users_routes,
        audit_routes,
        assets_routes,
        enrollment_routes,
        control_routes,
        queries_routes,
    )
    for module in routers:
        app.include_router(module.router)
    app.add_middleware(AuditMiddleware, audit=audit)
    app.add_exception_handler(ApiError, _api_error)


def broker_access(settings: HubSettings) -> BrokerAccess:
    """The broker address and MQTT version enrollment gives devices.

    Example:
        >>> broker_access(HubSettings()).url
        'mqtt://127.0.0.1:1883'
    """
    cfg = settings.broker
    embedded = cfg.kind == "embedded"
    url = cfg.public_url or (device_url(cfg.url) if embedded else cfg.url)
    return BrokerAccess(
        url=url,
        protocol="3.1.1" if embedded else "5",
        embedded=embedded,
        reserved=frozenset({cfg.username}),
    )


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
    if isinstance(exc, InvalidInput):  # the same shape as FastAPI's own 422s
        errors = [{"type": "value_error", "loc": [exc.field], "msg": exc.message}]
        return JSONResponse({"detail": errors}, status_code=422)
    return JSONResponse({"detail": exc.body()}, status_code=exc.status, headers=exc.headers())


async def _probe(check: Probe) -> str:
    try:
        return await asyncio.wait_for(check(), 3.0)
    except TimeoutError:
        return "down: timed out"
    except Exception as exc:  # a health probe reports every failure, it never raises
        return f"down: {type(exc).__name__}: {str(exc)[:120]}"


async def _database(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return "ok"


async def _broker(settings: HubSettings) -> str:
    url = urlsplit(settings.broker.url)
    host, port = url.hostname or "127.0.0.1", url.port or 1883

    def connect() -> None:
        with socket.create_connection((host, port), timeout=2):
            pass

    await asyncio.to_thread(connect)
    return "ok"
