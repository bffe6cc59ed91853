"""Enrollment on SQLite: tokens are single use and expiring; ids are unique slugs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from hub.app import broker_access, create_app
from hub.assets.enrollment import EnrollmentService
from hub.assets.rules import parse_ttl
from hub.audit.log import AuditLog
from hub.auth.errors import InvalidInput
from hub.auth.principal import Role
from hub.auth.signing import SIGNING_KEY_FILE, load_or_create_signing_key
from hub.errors import HubConfigError
from hub.runtime import _embedded_broker
from hub.settings import HubSettings
from hub.storage.db import create_engine, session_factory
from tests.hub.assets.behaviour import EnrollmentBehaviour
from tests.hub.assets.support import add_site, device_key, enroll, new_token
from tests.hub.auth.support import Hub


class TestEnrollmentOnSqlite(EnrollmentBehaviour):
    """Every enrollment behaviour on SQLite."""


async def test_operators_create_tokens_for_their_own_sites_only(hub: Hub) -> None:
    await add_site(hub, "plant-a")
    await add_site(hub, "plant-b")
    await hub.add_user("olga", Role.OPERATOR, ["plant-a"])
    await hub.add_user("vic", Role.VIEWER)
    olga, vic = await hub.bearer("olga"), await hub.bearer("vic")

    other = await hub.client.post(
        "/api/v1/enrollment-tokens", headers=olga, json={"site_id": "plant-b"}
    )
    assert other.status_code == 404
    viewer = await hub.client.post(
        "/api/v1/enrollment-tokens", headers=vic, json={"site_id": "plant-a"}
    )
    assert viewer.status_code == 403
    created = await hub.client.post(
        "/api/v1/enrollment-tokens", headers=olga, json={"site_id": "plant-a", "ttl_s": 600}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["install_command"] == f"edge-agent install --hub http://hub --token {body['token']}"
    assert (await enroll(hub, body["token"])).status_code == 201
    rows = await hub.audit_rows()
    assert [r["actor"] for r in rows if r["action"] == "token.created"] == ["olga"]
    requests = [
        (r["result"], r["decision"])
        for r in rows
        if r["action"] == "POST /api/v1/enrollment-tokens"
    ]  # the refusals; the allowed request is the `token.created` row
    assert requests == [("404", "allowed"), ("403", "denied")]


async def test_a_group_of_another_site_is_refused(hub: Hub) -> None:
    await add_site(hub, "plant-a")
    await add_site(hub, "plant-b")
    root = await hub.bearer("root")
    group = await hub.client.post("/api/v1/sites/plant-b/groups", headers=root, json={"name": "l1"})
    refused = await hub.client.post(
        "/api/v1/enrollment-tokens",
        headers=root,
        json={"site_id": "plant-a", "group_id": group.json()["id"]},
    )
    assert refused.status_code == 422


def test_signing_key_is_private_and_stable(tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path)
    path = tmp_path / SIGNING_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_signing_key(tmp_path).public_key() == key.public_key()
    os.chmod(path, 0o644)
    with pytest.raises(HubConfigError, match="chmod 600"):
        load_or_create_signing_key(tmp_path)


def test_ttl_parsing() -> None:
    assert [parse_ttl(v) for v in ("60", "30m", "1h", "7d")] == [60, 1800, 3600, 604800]
    for bad in ("0", "8d", "1w", "-1h", "h"):
        with pytest.raises(InvalidInput):
            parse_ttl(bad)


async def test_a_broker_on_every_interface_is_given_as_the_host_the_device_used(
    tmp_path: Path,
) -> None:
    settings = HubSettings.model_validate(
        {"data_dir": str(tmp_path), "broker": {"url": "mqtt://0.0.0.0:1884"}}
    )
    sessions = session_factory(create_engine("sqlite://"))  # never connected
    hub_side, _ = _embedded_broker(settings, sessions)
    assert hub_side.broker.url == "mqtt://127.0.0.1:1884"  # the hub's own clients
    access = broker_access(hub_side)
    assert access.url == "mqtt://HUB-ADDRESS:1884"
    audit = AuditLog(sessions)
    service = EnrollmentService(sessions, audit, hub_public_key="k", broker=access)
    assert service._mqtt_url("hub.example.com") == "mqtt://hub.example.com:1884"
    fixed = settings.model_copy(
        update={"broker": settings.broker.model_copy(update={"public_url": "mqtts://b:8883"})}
    )
    assert broker_access(_embedded_broker(fixed, sessions)[0]).url == "mqtts://b:8883"


async def test_with_an_external_broker_enrollment_says_it_cannot_provision(
    hub: Hub, tmp_path: Path
) -> None:
    await add_site(hub, "plant-a")
    token = await new_token(hub, "plant-a")
    settings = HubSettings.model_validate(
        {"data_dir": str(tmp_path / "ext"), "broker": {"kind": "external"}}
    )
    app = create_app(settings, hub.engine, _ok, _ok)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        body = {"token": token, "name": "a", "public_key": device_key(), "agent_version": "1"}
        answer = await client.post("/api/v1/enroll", json=body)
    assert answer.status_code == 501
    assert "external MQTT broker" in answer.json()["detail"]
    assert (await enroll(hub, token)).status_code == 201  # the token was not spent


async def _ok() -> str:
    return "ok"
