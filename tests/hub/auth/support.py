"""A hub app on a migrated database (SQLite or PostgreSQL), with helpers to act as users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.app import create_app
from hub.audit.chain import SYSTEM
from hub.audit.log import AuditLog
from hub.auth.principal import Role
from hub.auth.service import AuthService
from hub.auth.users import UserService
from hub.control.publisher import CommandPublisher
from hub.settings import HubSettings
from hub.storage.db import session_factory
from hub.storage.repositories.users import UserRecord

PASSWORD = "correct horse battery"
BASE = "http://hub"


async def _ok() -> str:
    return "ok"


@dataclass
class Hub:
    """The app under test and its services."""

    app: FastAPI
    client: httpx.AsyncClient
    engine: AsyncEngine
    settings: HubSettings

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """Sessions on the app's database."""
        return session_factory(self.engine)

    @property
    def users(self) -> UserService:
        """The app's `UserService`."""
        service: UserService = self.app.state.users
        return service

    @property
    def auth(self) -> AuthService:
        """The app's `AuthService`."""
        service: AuthService = self.app.state.auth
        return service

    @property
    def audit(self) -> AuditLog:
        """The app's `AuditLog`."""
        log: AuditLog = self.app.state.audit
        return log

    async def add_user(
        self, name: str, role: Role, sites: list[str] | None = None, password: str = PASSWORD
    ) -> UserRecord:
        """A user made by `system`."""
        return await self.users.create(
            SYSTEM, username=name, password=password, role=role, sites=sites
        )

    async def login(self, name: str, password: str = PASSWORD) -> dict[str, Any]:
        """The token response of a successful login."""
        response = await self.client.post(
            "/api/v1/auth/login", json={"username": name, "password": password}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def bearer(self, name: str) -> dict[str, str]:
        """Headers of a logged-in user."""
        tokens = await self.login(name)
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def audit_rows(self) -> list[dict[str, Any]]:
        """Every audit row, oldest first."""
        async with self.sessions() as session:
            result = await session.execute(text("SELECT * FROM audit_log ORDER BY id"))
            return [dict(r._mapping) for r in result]

    async def sql(self, statement: str, **params: Any) -> None:
        """Raw SQL in a transaction of its own."""
        async with self.sessions() as session, session.begin():
            await session.execute(text(statement), params)


def settings_for(data_dir: Path, **auth: Any) -> HubSettings:
    """Settings with a private data dir (the JWT secret is generated there)."""
    return HubSettings.model_validate({"data_dir": str(data_dir), "auth": auth})


@asynccontextmanager
async def running_hub(
    engine: AsyncEngine,
    data_dir: Path,
    *,
    client_ip: str = "10.1.2.3",
    publisher: CommandPublisher | None = None,
    **auth: Any,
) -> AsyncIterator[Hub]:
    """The app on `engine` (already migrated), with an httpx client over ASGI.

    Without `publisher` the app has its MQTT command publisher, never connected (the
    lifespan does not run under ASGITransport): commands then fail to publish.
    """
    settings = settings_for(data_dir, **auth)
    app = create_app(settings, engine, _ok, _ok, publisher=publisher)
    transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield Hub(app, client, engine, settings)
