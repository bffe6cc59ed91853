"""The FastAPI application: lifespan-owned clients on `app.state`, thin routes.

Only health is served so far; the REST + WebSocket API lands with issue #7.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import __version__
from hub.settings import HubSettings

Probe = Callable[[], Awaitable[str]]


def create_app(
    settings: HubSettings,
    engine: AsyncEngine,
    bus_probe: Probe,
    broker_probe: Probe | None = None,
) -> FastAPI:
    """The hub's HTTP application, given the long-lived clients the process owns.

    `broker_probe` checks the embedded broker; without it, a TCP connect to `[broker] url`.
    """
    check_broker = broker_probe or (lambda: _broker(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings, app.state.engine, app.state.bus_probe = settings, engine, bus_probe
        yield

    app = FastAPI(title="Outpost hub", version=__version__, lifespan=lifespan)

    @app.get("/api/v1/health", summary="State of each dependency; 503 when one is down")
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
