"""Embedded-broker logins against device credentials stored in SQLite."""

from __future__ import annotations

from hub.broker.access import DeviceAuthority
from hub.storage.db import transaction
from hub.storage.repositories import issue_credentials, list_credentials, revoke_credentials
from tests.hub.storage.support import Db


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _issue(db: Db, device: str, password: str) -> None:
    async with transaction(db.sessions) as session:
        await issue_credentials(session, device=device, password=password)


async def test_device_logins_are_checked_against_stored_hashes(sqlite_db: Db) -> None:
    authority = DeviceAuthority(sqlite_db.sessions, hub_user="hub", hub_password="hub-secret")
    await _issue(sqlite_db, "amr-1", "right")

    assert await authority.authenticate("amr-1", "right")
    assert not await authority.authenticate("amr-1", "wrong")
    assert not await authority.authenticate("amr-2", "right")  # unknown device
    assert not await authority.authenticate("amr-1", None)
    assert await authority.authenticate("hub", "hub-secret")
    assert not await authority.authenticate("hub", "right")
    assert (authority.counters.logins, authority.counters.refused_logins) == (2, 4)


async def test_revoking_or_reissuing_refuses_the_old_password_at_once(sqlite_db: Db) -> None:
    clock = Clock()
    authority = DeviceAuthority(sqlite_db.sessions, hub_user="hub", hub_password="x", clock=clock)
    await _issue(sqlite_db, "amr-1", "first")
    assert await authority.authenticate("amr-1", "first")  # now cached

    await _issue(sqlite_db, "amr-1", "second")
    assert not await authority.authenticate("amr-1", "first")
    assert await authority.authenticate("amr-1", "second")

    async with transaction(sqlite_db.sessions) as session:
        assert await revoke_credentials(session, device="amr-1")
        assert not await revoke_credentials(session, device="amr-9")
    assert not await authority.authenticate("amr-1", "second")

    async with transaction(sqlite_db.sessions) as session:
        [view] = await list_credentials(session)
    assert view.device == "amr-1"
    assert view.revoked_at is not None


def test_acl_counts_what_it_refuses() -> None:
    authority = DeviceAuthority(None, hub_user="hub", hub_password="x")  # type: ignore[arg-type]
    assert authority.permits("amr-1", "outpost/v1/amr-1/telemetry", "publish")
    assert not authority.permits("amr-1", "outpost/v1/amr-1/cmd", "publish")  # downlink
    assert not authority.permits("amr-1", "outpost/v1/amr-1/telemetry", "subscribe")
    assert not authority.permits("amr-1", "outpost/v1/amr-2/ingested", "receive")
    assert not authority.permits(None, "outpost/v1/amr-1/telemetry", "publish")
    assert authority.permits("hub", "outpost/v1/+/+", "subscribe")
    assert authority.counters.denied == {"publish": 2, "subscribe": 1, "receive": 1}
