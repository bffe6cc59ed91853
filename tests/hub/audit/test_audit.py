"""The audit log on SQLite (the embedded hub)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx

from hub.api.deps import CurrentPrincipal
from hub.audit.chain import GENESIS, ChainCheck, seal
from hub.auth.principal import Role
from tests.hub.audit.behaviour import AuditBehaviour, entry
from tests.hub.auth.support import BASE, Hub


class TestOnSqlite(AuditBehaviour):
    """Every shared behaviour on SQLite."""


def test_the_hash_covers_every_field() -> None:
    at = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    base = seal(entry(1), row_id=1, prev_hash=GENESIS, at=at)
    variants = [
        seal(entry(2), row_id=1, prev_hash=GENESIS, at=at),
        seal(entry(1), row_id=2, prev_hash=GENESIS, at=at),
        seal(entry(1), row_id=1, prev_hash="1" * 64, at=at),
        seal(entry(1), row_id=1, prev_hash=GENESIS, at=at.replace(microsecond=1)),
        seal(entry(1, extra=True), row_id=1, prev_hash=GENESIS, at=at),
    ]
    assert len({base.hash, *(v.hash for v in variants)}) == 6


def test_oversized_and_nul_values_are_stored_safely() -> None:
    record = seal(
        entry(1, blob="x" * 100_000),
        row_id=1,
        prev_hash=GENESIS,
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert len(record.detail) < 20_000
    assert '"truncated":true' in record.detail
    nul = seal(
        entry(1).__class__(actor="a\x00b", action="x", decision="denied"),
        row_id=1,
        prev_hash=GENESIS,
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert "\x00" not in nul.actor
    assert ChainCheck().feed(nul)


async def test_a_crashing_request_is_audited_as_500(hub: Hub) -> None:
    await hub.add_user("olga", Role.OPERATOR)

    @hub.app.post("/test/crash")
    async def crash(_: CurrentPrincipal) -> None:
        raise RuntimeError("boom")

    @hub.app.put("/test/fine")
    async def fine(_: CurrentPrincipal) -> dict[str, bool]:
        return {"ok": True}

    headers = await hub.bearer("olga")
    transport = httpx.ASGITransport(app=hub.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        assert (await client.post("/test/crash", headers=headers)).status_code == 500
        assert (await client.put("/test/fine", headers=headers)).status_code == 200
    rows = (await hub.audit_rows())[-2:]
    assert [(r["actor"], r["action"], r["decision"], r["result"]) for r in rows] == [
        ("olga", "POST /test/crash", "allowed", "500"),
        ("olga", "PUT /test/fine", "allowed", "200"),
    ]
    assert json.loads(rows[1]["detail"]) == {"client": "127.0.0.1", "via": "jwt"}


async def test_a_bad_cursor_is_422_naming_it(hub: Hub) -> None:
    await hub.add_user("root", Role.ADMIN)
    response = await hub.client.get(
        "/api/v1/audit", headers=await hub.bearer("root"), params={"cursor": "abc"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["cursor"]
