"""The FastAPI application: lifespan-owned clients on `app.state`, thin routes.

`/api/v1/health` and `/api/v1/enroll` (the token is the credential) need no
login; every other route sits behind `hub.api.deps.current_principal`. Services
live on `app.state` (`auth`, `users`, `audit`, `assets`, `enrollment`, `control`, `queries`,
`registry`); every state-changing request is audited by `AuditMiddleware`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub import __version__
from hub.alerts.service import AlertService
from hub.api.deps import no_nul_parameters
from hub.api.routes import alerts as alerts_routes
from hub.api.routes import assets as assets_routes
from hub.api.routes import audit as audit_routes
from hub.api.routes import auth as auth_routes
from hub.api.routes import control as control_routes
from hub.api.routes import detect as detect_routes
from hub.api.routes import drift as drift_routes
from hub.api.routes import enrollment as enrollment_routes
from hub.api.routes import frames as frames_routes
from hub.api.routes import live as live_routes
from hub.api.routes import models as models_routes
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
from hub.broker.dynsec import DynsecProvisioner
from hub.broker.embedded import device_url
from hub.bus.base import Bus
from hub.control.publisher import CommandPublisher, MqttCommandPublisher
from hub.control.service import ControlService
from hub.detect import DetectRouter
from hub.drift.service import DriftService
from hub.live.fanout import Fanout
from hub.live.feed import LiveFeed
from hub.live.sites import SiteCache
from hub.metrics import HubMetrics
from hub.queries.service import QueryService
from hub.registry.service import RegistryService, RetainedPublisher, run_rollouts
from hub.registry.store.artifacts import ArtifactStore
from hub.settings import HubSettings
from hub.storage.db import session_factory
from hub.web import mount_dashboard
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
    bus: Bus | None = None,
    metrics: HubMetrics | None = None,
) -> FastAPI:
    """The hub's HTTP application, given the long-lived clients the process owns.

    `broker_probe` checks the embedded broker; without it, a TCP connect to `[broker] url`.
    `publisher` sends commands; by default the app's own MQTT connection to `[broker]`
    (`MqttCommandPublisher`), opened and closed by the lifespan. With `bus`, the
    lifespan runs the live feed behind `/api/v1/ws` (`app.state.live`: its `Fanout`).
    With `metrics`, command publish times go to `outpost_command_publish_seconds`.
    """
    check_broker = broker_probe or (lambda: _broker(settings))
    timed = metrics.command_publish.observe if metrics is not None else None
    commands = publisher or MqttCommandPublisher(settings, on_published=timed)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings, app.state.engine, app.state.bus_probe = settings, engine, bus_probe
        async with AsyncExitStack() as stack:
            if isinstance(commands, AbstractAsyncContextManager):
                await stack.enter_async_context(commands)
            # Rollouts are checked here, beside the MQTT connection that publishes assignments.
            await stack.enter_async_context(run_rollouts(app.state.registry))
            if bus is not None:
                feed = LiveFeed(bus, app.state.live, SiteCache(session_factory(engine)).sites_of)
                app.state.live_feed = feed
                task = asyncio.create_task(feed.run(), name="live-feed")
                stack.push_async_callback(_cancelled, task)
                app.state.detect = DetectRouter(bus)
                replies = asyncio.create_task(app.state.detect.run(), name="detect-replies")
                stack.push_async_callback(_cancelled, replies)
            yield

    app = FastAPI(
        title="Outpost hub",
        version=__version__,
        lifespan=lifespan,
        description=API_DESCRIPTION,
        openapi_tags=TAGS,
        dependencies=[Depends(no_nul_parameters)],
    )
    _security(app, settings, engine, commands)
    app.state.alerts = AlertService(session_factory(engine), bus=bus)
    app.state.live = Fanout() if bus is not None else None

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

    mount_dashboard(app)  # last: every /api route above keeps priority over the pages
    return app


API_DESCRIPTION = (
    "The hub's REST API. Log in with `POST /api/v1/auth/login` and send the access token as "
    "`Authorization: Bearer <token>`, or send an API key (`opk_…`) the same way or as "
    '`X-API-Key`. Errors are `{"detail": {"code", "message"}}` (422: a list of '
    "field errors). Roles: viewer < operator < admin, optionally limited to sites.\n\n"
    "**Live WebSocket** `GET /api/v1/ws` (not listed below: OpenAPI has no WebSockets): "
    "send `Authorization`/`X-API-Key` headers, or, from a browser, "
    '`{"type": "auth", "token": "<access token or API key>"}` as the first message. '
    'Then messages `{"type": "state"|"telemetry"|"detections"|"ack"|"alert", "device", '
    '"site", "ts", "data"}` arrive for the devices in your scope (telemetry sampled to 5 '
    'batches per device and second). Narrow them with `{"type": "subscribe", "sites": [...], '
    '"devices": [...], "types": [...]}` (null: all). Close codes: 4401 bad or missing '
    "credential, 4403 a subscribed site outside your scope, 4008 too slow (fell 1000 "
    "messages behind), 1013 no live feed in this process."
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
    {"name": "models", "description": "Model registry, artifacts for devices, canary rollouts."},
    {
        "name": "alerts",
        "description": "Alerts to acknowledge and resolve, alert rules and notification channels.",
    },
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
    provisioner = broker_provisioner(settings)
    app.state.assets = AssetService(sessions, audit, provisioner=provisioner)
    app.state.enrollment_tokens = EnrollmentTokens(sessions, audit)
    # The command-signing key (DATA_DIR/hub-signing.key, 0600): agents pin its public half.
    signing_key = load_or_create_signing_key(settings.data_dir)
    app.state.enrollment = EnrollmentService(
        sessions,
        audit,
        hub_public_key=public_key_to_text(signing_key.public_key()),
        broker=broker_access(settings),
        provisioner=provisioner,
    )
    app.state.control = ControlService(sessions, audit, publisher, signing_key, settings.control)
    app.state.queries = QueryService(sessions)
    app.state.drift = DriftService(sessions, reference_windows=settings.drift.reference_windows)
    app.state.registry = registry_service(settings, sessions, audit, signing_key, publisher)
    routers = (
        auth_routes,
        users_routes,
        audit_routes,
        assets_routes,
        enrollment_routes,
        control_routes,
        queries_routes,
        frames_routes,
        drift_routes,
        live_routes,
        alerts_routes,
        models_routes,
        detect_routes,
    )
    for module in routers:
        app.include_router(module.router)
    app.add_middleware(AuditMiddleware, audit=audit)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def broker_provisioner(settings: HubSettings) -> DynsecProvisioner | None:
    """Who keeps device logins in an external broker (None: the embedded broker, or by hand)."""
    cfg = settings.broker
    if cfg.kind != "external" or cfg.provisioning != "dynsec":
        return None
    return DynsecProvisioner(
        cfg.url, username=cfg.username, password=cfg.password, timeout_s=cfg.provision_timeout_s
    )


def registry_service(
    settings: HubSettings,
    sessions: async_sessionmaker[AsyncSession],
    audit: AuditLog,
    signing_key: Ed25519PrivateKey,
    publisher: CommandPublisher,
) -> RegistryService:
    """The model registry: artifacts in `[registry] artifact_dir` (default DATA_DIR/models)."""
    cfg = settings.registry
    root = Path(cfg.artifact_dir) if cfg.artifact_dir else settings.data_dir / "models"
    store = ArtifactStore(root, max_bytes=cfg.max_upload_bytes)
    retained = publisher if isinstance(publisher, RetainedPublisher) else None
    return RegistryService(sessions, audit, store, signing_key, retained, cfg)


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


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it (its own errors were logged by it)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 400 for a JSON body that is not UTF-8 becomes the 422 invalid JSON gets."""
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        errors = [{"type": "json_invalid", "loc": ["body"], "msg": "the body is not UTF-8 text"}]
        return JSONResponse({"detail": errors}, status_code=422)
    return await http_exception_handler(request, exc)


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
