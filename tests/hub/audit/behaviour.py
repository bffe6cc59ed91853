"""Audit log behaviour shared by SQLite (tests/hub/audit) and PostgreSQL (tests/integration)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from hub.audit.chain import Entry, seal
from hub.auth.principal import Role
from hub.storage.db import transaction
from hub.storage.repositories.audit import append_audit_row
from tests.hub.auth.support import Hub

WRITERS = 50


def entry(n: int, **detail: object) -> Entry:
    return Entry(
        actor=f"user-{n}",
        role="operator",
        action="device.estop",
        decision="allowed" if n % 3 else "denied",
        target=f"device:amr-{n}",
        result="done",
        detail={"n": n, "reason": "päť €", **detail},
    )


async def unguard(hub: Hub) -> None:
    """What a tamperer does first: switch off the append-only triggers."""
    if hub.engine.dialect.name == "postgresql":
        await hub.sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
    else:
        await hub.sql("DROP TRIGGER audit_log_no_update")
        await hub.sql("DROP TRIGGER audit_log_no_delete")


class AuditBehaviour:
    """Every test gets `hub`: an app on an empty, migrated database."""

    async def record(self, hub: Hub, count: int) -> None:
        for n in range(1, count + 1):
            await hub.audit.record(entry(n))

    async def test_rows_chain_and_verify(self, hub: Hub) -> None:
        await self.record(hub, 5)
        rows = await hub.audit_rows()
        assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
        assert rows[0]["prev_hash"] == "0" * 64
        assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(rows))
        verdict = await hub.audit.verify()
        assert (verdict.rows, verdict.intact, verdict.head) == (5, True, (5, rows[-1]["hash"]))

    async def test_rows_cannot_be_updated_or_deleted_through_sql(self, hub: Hub) -> None:
        await self.record(hub, 2)
        for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"):
                await hub.sql(statement)
        assert len(await hub.audit_rows()) == 2

    async def test_an_edited_detail_is_named(self, hub: Hub) -> None:
        await self.record(hub, 6)
        await unguard(hub)
        await hub.sql("UPDATE audit_log SET detail = :d WHERE id = 4", d='{"n":40}')
        verdict = await hub.audit.verify()
        assert verdict.problem is not None
        assert (verdict.rows, verdict.problem.row_id, verdict.problem.kind) == (3, 4, "edited")
        assert verdict.problem.message == "row 4: contents do not match its hash (edited)"

    async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(self, hub: Hub) -> None:
        await self.record(hub, 4)
        await unguard(hub)
        await hub.sql(
            "UPDATE audit_log SET decision = 'allowed', hash = :h WHERE id = 3", h="f" * 64
        )
        verdict = await hub.audit.verify()
        assert verdict.problem is not None
        # Row 3 is caught as edited; had the forger re-hashed it right, row 4 would not follow.
        assert (verdict.problem.row_id, verdict.problem.kind) == (3, "edited")

    async def test_a_deleted_row_is_named_by_the_gap(self, hub: Hub) -> None:
        await self.record(hub, 6)
        await unguard(hub)
        await hub.sql("DELETE FROM audit_log WHERE id IN (3, 4)")
        verdict = await hub.audit.verify()
        assert verdict.problem is not None
        assert (verdict.problem.row_id, verdict.problem.kind) == (3, "deleted")
        assert verdict.problem.message == "row 3-4 missing (deleted) before row 5"

    async def test_an_inserted_row_is_named(self, hub: Hub) -> None:
        await self.record(hub, 3)
        # A row sealed correctly in itself, but not after row 3.
        forged = seal(entry(99), row_id=4, prev_hash="a" * 64, at=datetime.now(UTC))
        async with transaction(hub.sessions) as session:
            await append_audit_row(session, record=forged)
        verdict = await hub.audit.verify()
        assert verdict.problem is not None
        assert (verdict.problem.row_id, verdict.problem.kind) == (4, "inserted")
        assert "does not follow row 3" in verdict.problem.message

    async def test_a_truncated_tail_is_caught_by_the_anchor(self, hub: Hub) -> None:
        await self.record(hub, 5)
        head = (await hub.audit.verify()).head
        assert head is not None
        await unguard(hub)
        await hub.sql("DELETE FROM audit_log WHERE id >= 4")
        assert (await hub.audit.verify()).intact
        verdict = await hub.audit.verify(anchor=head)
        assert verdict.problem is not None
        assert verdict.problem.kind == "truncated"

    async def test_concurrent_writers_keep_one_chain(self, hub: Hub) -> None:
        await asyncio.gather(*(hub.audit.record(entry(n)) for n in range(WRITERS)))
        rows = await hub.audit_rows()
        assert [r["id"] for r in rows] == list(range(1, WRITERS + 1))
        assert sorted(r["actor"] for r in rows) == sorted(f"user-{n}" for n in range(WRITERS))
        verdict = await hub.audit.verify()
        assert (verdict.rows, verdict.intact) == (WRITERS, True)

    async def test_state_changing_requests_are_audited_allowed_or_denied(self, hub: Hub) -> None:
        await hub.add_user("root", Role.ADMIN)
        await hub.add_user("vic", Role.VIEWER)
        vic = await hub.bearer("vic")
        before = len(await hub.audit_rows())
        await hub.client.get("/api/v1/users", headers=vic)  # a read: not audited
        await hub.client.post("/api/v1/users", json={})  # no credentials
        await hub.client.patch("/api/v1/users/1", headers=vic, json={"disabled": True})
        await hub.client.delete("/api/v1/auth/api-keys/77", headers=vic)  # not found
        rows = (await hub.audit_rows())[before:]
        seen = [(r["actor"], r["action"], r["decision"], r["result"]) for r in rows]
        assert seen == [
            ("anonymous", "POST /api/v1/users", "denied", "401"),
            ("vic", "PATCH /api/v1/users/{user_id}", "denied", "403"),
            ("vic", "DELETE /api/v1/auth/api-keys/{key_id}", "allowed", "404"),
        ]
        assert rows[1]["target"] == "/api/v1/users/1"
        assert (await hub.audit.verify()).intact

    async def test_admins_page_through_the_log(self, hub: Hub) -> None:
        await hub.add_user("root", Role.ADMIN)
        await self.record(hub, 7)
        root = await hub.bearer("root")
        seen: list[int] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await hub.client.get("/api/v1/audit", headers=root, params=params)).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(9, 0, -1))  # user.create, 7 records, auth.login: newest first
        denied = await hub.client.get(
            "/api/v1/audit", headers=root, params={"decision": "denied", "action": "device."}
        )
        assert [i["id"] for i in denied.json()["items"]] == [7, 4]
        assert denied.json()["items"][0]["detail"] == {"n": 6, "reason": "päť €"}
        await hub.add_user("vic", Role.VIEWER)
        viewer = await hub.client.get("/api/v1/audit", headers=await hub.bearer("vic"))
        assert viewer.status_code == 403
