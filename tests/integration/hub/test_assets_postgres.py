"""Enrollment, scope and removal on the real PostgreSQL (scale mode).

Each test gets a schema of its own, migrated from scratch and dropped afterwards.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.auth.principal import Role
from hub.storage.db import create_engine
from hub.storage.migrate import migrate, schema_drift
from tests.hub.assets.behaviour import EnrollmentBehaviour
from tests.hub.assets.support import add_site, enrolled
from tests.hub.auth.support import Hub, running_hub
from tests.integration.hub.storage.schemas import drop_schema

_counter = itertools.count()


@pytest.fixture
async def hub(pg_dsn: str, run_id: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub app on a freshly migrated schema of this test's own."""
    schema = f"hub_assets_{run_id}_{next(_counter)}"
    engine = create_engine(pg_dsn, schema=schema)
    try:
        await migrate(engine)
        async with running_hub(engine, tmp_path / "data") as running:
            yield running
    finally:
        await engine.dispose()
        await drop_schema(pg_dsn, schema)


class TestEnrollmentOnPostgres(EnrollmentBehaviour):
    """Every enrollment behaviour (the token race included) on PostgreSQL."""


async def test_the_migrated_schema_matches_the_models(hub: Hub) -> None:
    assert await schema_drift(hub.engine) == []


async def test_scope_label_filter_and_removal_on_postgres(hub: Hub) -> None:
    await add_site(hub, "plant-a")
    await add_site(hub, "plant-b")
    mine, theirs = await enrolled(hub, "plant-a", "A"), await enrolled(hub, "plant-b", "B")
    await hub.add_user("olga", Role.OPERATOR, ["plant-a"])
    olga, root = await hub.bearer("olga"), await hub.bearer("root")
    patched = await hub.client.patch(
        f"/api/v1/devices/{mine}", headers=olga, json={"labels": {"zone": "n"}}
    )
    assert patched.status_code == 200
    assert (await hub.client.get(f"/api/v1/devices/{theirs}", headers=olga)).status_code == 404
    by_label = await hub.client.get("/api/v1/devices", headers=root, params={"label": "zone=n"})
    assert [d["id"] for d in by_label.json()["items"]] == [mine]
    assert (await hub.client.delete(f"/api/v1/devices/{mine}", headers=root)).status_code == 204
    assert (await hub.client.delete("/api/v1/sites/plant-a", headers=root)).status_code == 204
    assert (await hub.audit.verify()).intact
