"""Sites, groups and devices through the API: scope, roles, filters, state, removal."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.auth.principal import Role
from hub.storage.db import transaction
from hub.storage.models import DeviceStatus
from hub.storage.repositories.credentials import active_password_hash
from tests.hub.assets.support import add_site, enrolled
from tests.hub.auth.support import Hub


async def _two_sites(hub: Hub) -> tuple[str, str]:
    await add_site(hub, "plant-a")
    await add_site(hub, "plant-b")
    return await enrolled(hub, "plant-a", "AMR A"), await enrolled(hub, "plant-b", "AMR B")


async def test_an_operator_of_one_site_cannot_see_or_edit_another(hub: Hub) -> None:
    mine, theirs = await _two_sites(hub)
    await hub.add_user("olga", Role.OPERATOR, ["plant-a"])
    olga = await hub.bearer("olga")

    listed = await hub.client.get("/api/v1/devices", headers=olga)
    assert [d["id"] for d in listed.json()["items"]] == [mine]
    sites = await hub.client.get("/api/v1/sites", headers=olga)
    assert [s["id"] for s in sites.json()] == ["plant-a"]
    for method, path in (
        ("GET", f"/api/v1/devices/{theirs}"),
        ("PATCH", f"/api/v1/devices/{theirs}"),
        ("GET", "/api/v1/sites/plant-b"),
        ("GET", "/api/v1/sites/plant-b/groups"),
        ("POST", "/api/v1/sites/plant-b/groups"),
        ("GET", "/api/v1/devices/no-such-device"),
    ):
        body = {"name": "x"} if method != "GET" else None
        answer = await hub.client.request(method, path, headers=olga, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    hidden = (await hub.client.get(f"/api/v1/devices/{theirs}", headers=olga)).json()
    # Worded exactly as for a device that does not exist: nothing leaks.
    assert hidden["detail"] == {
        "code": "device_not_found",
        "message": f"no device {theirs!r}",
        "device": theirs,
    }

    edited = await hub.client.patch(
        f"/api/v1/devices/{mine}",
        headers=olga,
        json={"labels": {"zone": "north"}, "kind": "gateway"},
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["labels"], edited.json()["kind"]) == ({"zone": "north"}, "gateway")


async def test_roles_matrix(hub: Hub) -> None:
    mine, _ = await _two_sites(hub)
    await hub.add_user("vic", Role.VIEWER, ["plant-a"])
    await hub.add_user("olga", Role.OPERATOR, ["plant-a"])
    calls = [
        ("GET", f"/api/v1/devices/{mine}", None),
        ("PATCH", f"/api/v1/devices/{mine}", {"name": "renamed"}),
        ("POST", "/api/v1/sites/plant-a/groups", {"name": "line 1"}),
        ("PATCH", "/api/v1/sites/plant-a", {"name": "Plant A"}),
        ("POST", "/api/v1/sites", {"id": "plant-c", "name": "c"}),
        ("DELETE", f"/api/v1/devices/{mine}", None),
    ]
    outcome = {}
    for user in ("vic", "olga", "root"):
        headers = await hub.bearer(user)
        outcome[user] = [
            (await hub.client.request(m, p, headers=headers, json=b)).status_code
            for m, p, b in calls
        ]
    assert outcome == {
        "vic": [200, 403, 403, 403, 403, 403],
        "olga": [200, 200, 201, 403, 403, 403],
        "root": [200, 200, 409, 200, 201, 204],  # the group exists already: olga made it
    }


async def test_listing_filters_and_pages(hub: Hub) -> None:
    await add_site(hub, "plant-a")
    root = await hub.bearer("root")
    group = (
        await hub.client.post("/api/v1/sites/plant-a/groups", headers=root, json={"name": "l1"})
    ).json()["id"]
    ids = [await enrolled(hub, "plant-a", f"bot {n}") for n in range(5)]
    grouped = await enrolled(hub, "plant-a", "cam", group="l1")
    await hub.client.patch(f"/api/v1/devices/{ids[1]}", headers=root, json={"labels": {"z": "n"}})
    await hub.client.patch(f"/api/v1/devices/{ids[2]}", headers=root, json={"kind": "camera"})

    async def listed(**params: object) -> list[str]:
        answer = await hub.client.get("/api/v1/devices", headers=root, params=params)
        assert answer.status_code == 200, answer.text
        return [d["id"] for d in answer.json()["items"]]

    assert await listed(group=group) == [grouped]
    assert await listed(label="z=n") == [ids[1]]
    assert await listed(kind="camera") == [ids[2]]
    assert await listed(site="plant-b") == []
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await hub.client.get("/api/v1/devices", headers=root, params=params)).json()
        pages.append([d["id"] for d in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [d for page in pages for d in page] == sorted([*ids, grouped])
    assert [len(p) for p in pages] == [2, 2, 2]
    assert (
        await hub.client.get("/api/v1/devices", headers=root, params={"label": "z"})
    ).status_code == 422


async def test_device_state_comes_from_the_data_plane(hub: Hub) -> None:
    await add_site(hub, "plant-a")
    device = await enrolled(hub, "plant-a")
    root = await hub.bearer("root")
    before = (await hub.client.get(f"/api/v1/devices/{device}", headers=root)).json()["state"]
    assert before == dict.fromkeys(before)  # all null before the first `state`
    seen = datetime(2026, 11, 27, 12, tzinfo=UTC)
    state = {
        "online": True,
        "estop": {"engaged": True},
        "mode": "auto",
        "model": {"name": "ppe", "version": "3"},
        "buffer": {"depth": 12},
    }
    async with transaction(hub.sessions) as session:
        session.add(
            DeviceStatus(
                device=device,
                online=True,
                last_seen=seen,
                agent_version="0.1.0",
                state=state,
                state_ts=seen,
            )
        )
    after = (await hub.client.get(f"/api/v1/devices/{device}", headers=root)).json()["state"]
    assert after == {
        "online": True,
        "last_seen": "2026-11-27T12:00:00Z",
        "agent_version": "0.1.0",
        "estop": {"engaged": True},
        "mode": "auto",
        "model": {"name": "ppe", "version": "3"},
        "buffer": {"depth": 12},
    }


async def test_removing_a_device_revokes_its_login_and_is_audited(hub: Hub) -> None:
    await add_site(hub, "plant-a")
    device = await enrolled(hub, "plant-a")
    root = await hub.bearer("root")
    assert (await hub.client.delete("/api/v1/sites/plant-a", headers=root)).status_code == 409

    assert (await hub.client.delete(f"/api/v1/devices/{device}", headers=root)).status_code == 204
    async with transaction(hub.sessions) as session:
        assert await active_password_hash(session, device=device) is None
    shown = (await hub.client.get(f"/api/v1/devices/{device}", headers=root)).json()
    assert shown["removed_at"] is not None
    assert (await hub.client.get("/api/v1/devices", headers=root)).json()["items"] == []
    assert (
        await hub.client.patch(f"/api/v1/devices/{device}", headers=root, json={"name": "x"})
    ).status_code == 409
    assert (await hub.client.delete(f"/api/v1/devices/{device}", headers=root)).status_code == 204
    removed = [r for r in await hub.audit_rows() if r["action"] == "device.removed"]
    assert [(r["actor"], r["target"]) for r in removed] == [("root", f"device:{device}")]

    assert (await hub.client.delete("/api/v1/sites/plant-a", headers=root)).status_code == 204
    assert (await hub.client.get("/api/v1/sites/plant-a", headers=root)).status_code == 404
    assert await enrolled_again_gets_new_id(hub, device)


async def enrolled_again_gets_new_id(hub: Hub, device: str) -> bool:
    """A removed device's id is never handed out again (its revoked login remains)."""
    await add_site(hub, "plant-z")
    return await enrolled(hub, "plant-z") == f"{device}-2"
