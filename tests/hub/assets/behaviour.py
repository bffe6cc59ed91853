"""Enrollment behaviour every database must show (run on SQLite here, PostgreSQL in integration)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hub.assets.enrollment import EnrollmentTokens
from hub.audit.chain import SYSTEM
from hub.auth.signing import load_or_create_signing_key
from hub.storage.db import transaction
from hub.storage.repositories.credentials import active_password_hash, password_matches
from protocol.enrollment import EnrollResponse
from protocol.signing import public_key_to_text
from tests.hub.assets.support import add_site, enroll, enrolled, new_token
from tests.hub.auth.support import Hub


class EnrollmentBehaviour:
    """Tests against a `hub` fixture on a migrated database."""

    async def test_a_token_enrolls_one_device_with_working_credentials(self, hub: Hub) -> None:
        await add_site(hub, "plant-a")
        token = await new_token(hub, "plant-a")
        first = await enroll(hub, token)
        assert first.status_code == 201, first.text
        answer = EnrollResponse.model_validate(first.json())
        assert answer.device_id == "amr-7"
        assert (answer.mqtt.username, answer.mqtt.protocol) == ("amr-7", "3.1.1")
        assert answer.mqtt.url == "mqtt://127.0.0.1:1883"
        key = load_or_create_signing_key(hub.settings.data_dir)
        assert answer.hub_public_key == public_key_to_text(key.public_key())
        async with transaction(hub.sessions) as session:
            stored = await active_password_hash(session, device="amr-7")
        assert stored is not None
        assert password_matches(stored, answer.mqtt.password)

        again = await enroll(hub, token)
        assert (again.status_code, again.json()) == (
            410,
            {"detail": "enrollment token already used or expired"},
        )
        rows = [r for r in await hub.audit_rows() if r["action"] == "device.enrolled"]
        assert [(r["actor"], r["target"]) for r in rows] == [("device:amr-7", "device:amr-7")]
        assert (await hub.audit.verify()).intact

    async def test_two_agents_racing_one_token_enroll_exactly_one(self, hub: Hub) -> None:
        await add_site(hub, "plant-a")
        token = await new_token(hub, "plant-a")
        answers = await asyncio.gather(*(enroll(hub, token, f"racer {n}") for n in range(4)))
        assert sorted(a.status_code for a in answers) == [201, 410, 410, 410]
        devices = await hub.client.get("/api/v1/devices", headers=await hub.bearer("root"))
        assert len(devices.json()["items"]) == 1

    async def test_unknown_expired_and_malformed_requests_are_refused(self, hub: Hub) -> None:
        await add_site(hub, "plant-a")
        unknown = await enroll(hub, "oet_not-a-token")
        assert unknown.status_code == 401
        past = datetime.now(UTC) - timedelta(hours=2)
        old = EnrollmentTokens(hub.sessions, hub.audit, clock=lambda: past)
        expired = (await old.create(SYSTEM, None, site_id="plant-a", ttl_s=3600)).token
        assert (await enroll(hub, expired)).status_code == 410
        malformed = await hub.client.post("/api/v1/enroll", json={"token": "x", "name": "a"})
        assert malformed.status_code == 422
        listed = await hub.client.get("/api/v1/devices", headers=await hub.bearer("root"))
        assert listed.json()["items"] == []

    async def test_device_ids_are_slugs_made_unique(self, hub: Hub) -> None:
        await add_site(hub, "plant-a")
        ids = [await enrolled(hub, "plant-a", "AMR 7") for _ in range(3)]
        assert ids == ["amr-7", "amr-7-2", "amr-7-3"]
        assert await enrolled(hub, "plant-a", "7", name_prefix="amr") == "amr-7-4"
        assert await enrolled(hub, "plant-a", "Outpost Hub") == "outpost-hub-2"  # hub's login
        assert await enrolled(hub, "plant-a", "Café #1") == "cafe-1"
