"""Users, tokens, API keys and the audit chain on the real PostgreSQL (scale mode).

Each test gets a schema of its own, migrated from scratch and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.auth.principal import Role
from hub.storage.db import create_engine, engine_schema
from hub.storage.migrate import migrate, schema_drift
from tests.hub.audit.behaviour import AuditBehaviour, entry
from tests.hub.auth.support import PASSWORD, Hub, running_hub
from tests.integration.hub.storage.schemas import drop_schema

_counter = itertools.count()


@pytest.fixture
async def pg_hub(pg_dsn: str, run_id: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub app on a freshly migrated schema of this test's own."""
    schema = f"hub_auth_{run_id}_{next(_counter)}"
    engine = create_engine(pg_dsn, schema=schema)
    try:
        await migrate(engine)
        async with running_hub(engine, tmp_path / "data") as hub:
            yield hub
    finally:
        await engine.dispose()
        await drop_schema(pg_dsn, schema)


class TestAuditOnPostgres(AuditBehaviour):
    """Every audit behaviour on PostgreSQL."""

    @pytest.fixture
    def hub(self, pg_hub: Hub) -> Hub:
        return pg_hub


async def test_the_migrated_schema_matches_the_models(pg_hub: Hub) -> None:
    assert await schema_drift(pg_hub.engine) == []


async def test_concurrent_writers_on_separate_engines_keep_one_chain(
    pg_hub: Hub, pg_dsn: str
) -> None:
    """Two engines stand in for two API processes writing at once."""
    other = create_engine(pg_dsn, schema=engine_schema(pg_hub.engine))
    try:
        async with running_hub(other, pg_hub.settings.data_dir) as second:
            await asyncio.gather(
                *(hub.audit.record(entry(n)) for n in range(40) for hub in (pg_hub, second))
            )
    finally:
        await other.dispose()
    verdict = await pg_hub.audit.verify()
    assert (verdict.rows, verdict.intact) == (80, True)


async def test_login_refresh_api_key_and_users_end_to_end(pg_hub: Hub) -> None:
    hub = pg_hub
    await hub.add_user("root", Role.ADMIN)
    root = await hub.bearer("root")
    created = await hub.client.post(
        "/api/v1/users",
        headers=root,
        json={"username": "olga", "password": PASSWORD, "role": "operator", "sites": ["plant-a"]},
    )
    assert created.status_code == 201
    tokens = await hub.login("olga")
    rotated = await hub.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status_code == 200
    replay = await hub.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert replay.status_code == 401

    olga = {"Authorization": f"Bearer {rotated.json()['access_token']}"}
    key = (await hub.client.post("/api/v1/auth/api-keys", headers=olga, json={"name": "k"})).json()
    me = await hub.client.get("/api/v1/auth/me", headers={"X-API-Key": key["key"]})
    assert me.json()["sites"] == ["plant-a"]
    assert (await hub.client.delete(f"/api/v1/auth/api-keys/{key['id']}", headers=olga)).is_success
    assert (
        await hub.client.get("/api/v1/auth/me", headers={"X-API-Key": key["key"]})
    ).status_code == 401

    for _ in range(5):
        await hub.client.post("/api/v1/auth/login", json={"username": "olga", "password": "x" * 12})
    limited = await hub.client.post(
        "/api/v1/auth/login", json={"username": "olga", "password": PASSWORD}
    )
    assert limited.status_code == 429

    actions = [r["action"] for r in await hub.audit_rows()]
    for expected in ("user.create", "auth.login", "auth.refresh", "auth.api_key.create"):
        assert expected in actions
    assert (await hub.audit.verify()).intact
