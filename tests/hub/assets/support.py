"""Helpers to act on sites, tokens and enrollment through a test hub's API."""

from __future__ import annotations

from typing import Any

import httpx

from hub.assets.enrollment import EnrollmentTokens
from hub.audit.chain import SYSTEM
from protocol.signing import generate_private_key, public_key_to_text
from tests.hub.auth.support import Hub


def device_key() -> str:
    """A fresh device public key, as an agent sends it."""
    return public_key_to_text(generate_private_key().public_key())


def tokens(hub: Hub) -> EnrollmentTokens:
    """The app's token service."""
    service: EnrollmentTokens = hub.app.state.enrollment_tokens
    return service


async def add_site(hub: Hub, site_id: str) -> None:
    """A site made through the admin API (an admin `root` is created when missing)."""
    if not await _has_user(hub, "root"):
        from hub.auth.principal import Role

        await hub.add_user("root", Role.ADMIN)
    created = await hub.client.post(
        "/api/v1/sites", headers=await hub.bearer("root"), json={"id": site_id, "name": site_id}
    )
    assert created.status_code == 201, created.text


async def _has_user(hub: Hub, name: str) -> bool:
    return any(u.username == name for u in await hub.users.all())


async def new_token(hub: Hub, site_id: str, **options: Any) -> str:
    """A fresh enrollment token for `site_id`, made by `system`."""
    return (await tokens(hub).create(SYSTEM, None, site_id=site_id, **options)).token


async def enroll(hub: Hub, token: str, name: str = "AMR 7") -> httpx.Response:
    """`POST /api/v1/enroll` as an agent would send it."""
    body = {"token": token, "name": name, "public_key": device_key(), "agent_version": "0.1.0"}
    return await hub.client.post("/api/v1/enroll", json=body)


async def enrolled(hub: Hub, site_id: str, name: str = "AMR 7", **options: Any) -> str:
    """A device enrolled into `site_id`; its id."""
    response = await enroll(hub, await new_token(hub, site_id, **options), name)
    assert response.status_code == 201, response.text
    return str(response.json()["device_id"])
