"""API keys: shown once, stored hashed, usable as Bearer or X-API-Key, dead once revoked."""

from __future__ import annotations

import hashlib

from sqlalchemy import text

from hub.auth.principal import Role
from tests.hub.auth.support import Hub

KEYS, ME = "/api/v1/auth/api-keys", "/api/v1/auth/me"


async def test_create_use_list_and_revoke(hub: Hub) -> None:
    await hub.add_user("ana", Role.OPERATOR, ["plant-a"])
    headers = await hub.bearer("ana")
    created = await hub.client.post(KEYS, headers=headers, json={"name": "line-3 kiosk"})
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith(f"opk_{body['prefix']}_")

    async with hub.sessions() as session:
        stored = (await session.execute(text("SELECT prefix, secret_hash FROM api_keys"))).one()
    secret = key.split("_", 2)[2]
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in stored.secret_hash

    for auth in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        me = await hub.client.get(ME, headers=auth)
        assert me.status_code == 200
        assert (me.json()["via"], me.json()["api_key_id"], me.json()["sites"]) == (
            "api_key",
            body["id"],
            ["plant-a"],
        )

    listed = (await hub.client.get(KEYS, headers=headers)).json()
    assert [k["name"] for k in listed] == ["line-3 kiosk"]
    assert "key" not in listed[0]
    assert listed[0]["last_used_at"] is not None

    revoked = await hub.client.delete(f"{KEYS}/{body['id']}", headers=headers)
    assert revoked.status_code == 204
    refused = await hub.client.get(ME, headers={"X-API-Key": key})
    assert refused.status_code == 401
    assert refused.json()["detail"]["code"] == "invalid_api_key"
    actions = [r["action"] for r in await hub.audit_rows()]
    assert "auth.api_key.create" in actions
    assert "auth.api_key.revoke" in actions


async def test_a_wrong_secret_with_a_real_prefix_is_refused(hub: Hub) -> None:
    await hub.add_user("ana", Role.VIEWER)
    key = (await hub.client.post(KEYS, headers=await hub.bearer("ana"), json={"name": "k"})).json()
    forged = f"opk_{key['prefix']}_{'A' * 43}"
    assert (await hub.client.get(ME, headers={"X-API-Key": forged})).status_code == 401


async def test_an_api_key_cannot_make_more_keys(hub: Hub) -> None:
    await hub.add_user("ana", Role.ADMIN)
    key = await hub.client.post(KEYS, headers=await hub.bearer("ana"), json={"name": "ci"})
    response = await hub.client.post(
        KEYS, headers={"X-API-Key": key.json()["key"]}, json={"name": "x"}
    )
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "api_key_cannot_manage_keys"


async def test_users_see_and_revoke_only_their_own_keys_admins_all(hub: Hub) -> None:
    await hub.add_user("ana", Role.OPERATOR)
    await hub.add_user("bob", Role.VIEWER)
    await hub.add_user("root", Role.ADMIN)
    ana, bob, root = [await hub.bearer(n) for n in ("ana", "bob", "root")]
    anas = (await hub.client.post(KEYS, headers=ana, json={"name": "ana's"})).json()
    await hub.client.post(KEYS, headers=bob, json={"name": "bob's"})

    assert (await hub.client.delete(f"{KEYS}/{anas['id']}", headers=bob)).status_code == 404
    assert [k["name"] for k in (await hub.client.get(KEYS, headers=bob)).json()] == ["bob's"]
    assert (await hub.client.get(f"{KEYS}?all=true", headers=bob)).status_code == 403
    every = (await hub.client.get(f"{KEYS}?all=true", headers=root)).json()
    assert sorted(k["name"] for k in every) == ["ana's", "bob's"]
    assert (await hub.client.delete(f"{KEYS}/{anas['id']}", headers=root)).status_code == 204


async def test_a_disabled_users_keys_stop_working(hub: Hub) -> None:
    await hub.add_user("root", Role.ADMIN)
    user = await hub.add_user("ana", Role.VIEWER)
    key = (await hub.client.post(KEYS, headers=await hub.bearer("ana"), json={"name": "k"})).json()
    patched = await hub.client.patch(
        f"/api/v1/users/{user.id}", headers=await hub.bearer("root"), json={"disabled": True}
    )
    assert patched.status_code == 200
    assert (await hub.client.get(ME, headers={"X-API-Key": key["key"]})).status_code == 401
