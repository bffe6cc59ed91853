"""`/api/v1/users`: admin only; roles, scopes, disabling; the last admin stays."""

from __future__ import annotations

from hub.auth.principal import Role
from tests.hub.auth.support import PASSWORD, Hub

USERS = "/api/v1/users"


async def test_admin_creates_lists_and_changes_users(hub: Hub) -> None:
    await hub.add_user("root", Role.ADMIN)
    root = await hub.bearer("root")
    created = await hub.client.post(
        USERS,
        headers=root,
        json={"username": "Olga", "password": PASSWORD, "role": "operator", "sites": ["b", "a"]},
    )
    assert created.status_code == 201
    olga = created.json()
    assert (olga["username"], olga["role"], olga["sites"]) == ("olga", "operator", ["a", "b"])

    olga_headers = await hub.bearer("olga")
    patched = await hub.client.patch(
        f"{USERS}/{olga['id']}", headers=root, json={"role": "viewer", "sites": None}
    )
    assert patched.status_code == 200
    assert (patched.json()["role"], patched.json()["sites"]) == ("viewer", None)
    # The change ended olga's session; a new login carries the new role.
    assert (await hub.client.get("/api/v1/auth/me", headers=olga_headers)).status_code == 401
    me = await hub.client.get("/api/v1/auth/me", headers=await hub.bearer("olga"))
    assert me.json()["role"] == "viewer"

    listed = (await hub.client.get(USERS, headers=root)).json()
    assert [u["username"] for u in listed] == ["root", "olga"]
    assert all("password_hash" not in u for u in listed)
    row = (await hub.audit_rows())[-2]
    assert (row["actor"], row["action"], row["target"]) == (
        "root",
        "user.update",
        f"user:{olga['id']}",
    )
    assert '"role":["operator","viewer"]' in row["detail"]


async def test_non_admins_are_refused_and_the_refusal_is_audited(hub: Hub) -> None:
    await hub.add_user("olga", Role.OPERATOR)
    headers = await hub.bearer("olga")
    assert (await hub.client.get(USERS, headers=headers)).status_code == 403
    refused = await hub.client.post(
        USERS, headers=headers, json={"username": "x", "password": PASSWORD, "role": "admin"}
    )
    assert refused.status_code == 403
    row = (await hub.audit_rows())[-1]
    assert (row["actor"], row["role"], row["action"], row["decision"], row["result"]) == (
        "olga",
        "operator",
        "POST /api/v1/users",
        "denied",
        "403",
    )


async def test_bad_users_are_422_with_the_field(hub: Hub) -> None:
    await hub.add_user("root", Role.ADMIN)
    root = await hub.bearer("root")
    cases = {
        "username": {"username": "no spaces", "password": PASSWORD, "role": "viewer"},
        "password": {"username": "ok", "password": "short", "role": "viewer"},
        "role": {"username": "ok", "password": PASSWORD, "role": "boss"},
        "sites": {"username": "ok", "password": PASSWORD, "role": "admin", "sites": ["a"]},
    }
    for field, body in cases.items():
        response = await hub.client.post(USERS, headers=root, json=body)
        assert response.status_code == 422, field
        assert field in response.json()["detail"][0]["loc"], response.json()
    empty = await hub.client.post(
        USERS,
        headers=root,
        json={"username": "ok", "password": PASSWORD, "role": "viewer", "sites": []},
    )
    assert empty.status_code == 422


async def test_duplicate_username_is_409(hub: Hub) -> None:
    await hub.add_user("root", Role.ADMIN)
    root = await hub.bearer("root")
    body = {"username": "ROOT", "password": PASSWORD, "role": "viewer"}
    response = await hub.client.post(USERS, headers=root, json=body)
    assert response.status_code == 409
    assert response.json()["detail"]["code"] == "username_taken"


async def test_the_last_admin_cannot_be_demoted_or_disabled(hub: Hub) -> None:
    root_user = await hub.add_user("root", Role.ADMIN)
    root = await hub.bearer("root")
    for change in ({"role": "operator"}, {"disabled": True}):
        response = await hub.client.patch(f"{USERS}/{root_user.id}", headers=root, json=change)
        assert response.status_code == 409
        assert response.json()["detail"]["code"] == "last_admin"
    second = await hub.add_user("second", Role.ADMIN)
    demoted = await hub.client.patch(
        f"{USERS}/{root_user.id}", headers=root, json={"role": "viewer"}
    )
    assert demoted.status_code == 200
    assert second.role == "admin"


async def test_unknown_user_is_404(hub: Hub) -> None:
    await hub.add_user("root", Role.ADMIN)
    response = await hub.client.patch(
        f"{USERS}/999", headers=await hub.bearer("root"), json={"disabled": True}
    )
    assert response.status_code == 404


async def test_an_admin_resets_a_password_and_the_old_one_stops_working(hub: Hub) -> None:
    await hub.add_user("root", Role.ADMIN)
    olga = await hub.add_user("olga", Role.OPERATOR)
    root = await hub.bearer("root")
    reset = await hub.client.patch(
        f"{USERS}/{olga.id}", headers=root, json={"password": "reset by the admin"}
    )
    assert reset.status_code == 200
    old = await hub.client.post(
        "/api/v1/auth/login", json={"username": "olga", "password": PASSWORD}
    )
    assert old.status_code == 401
    assert (await hub.login("olga", "reset by the admin"))["access_token"]
    rows = await hub.audit_rows()
    update = next(r for r in rows if r["action"] == "user.update")
    assert update["detail"] == '{"changes":{"password":"changed"},"username":"olga"}'
    assert "reset by the admin" not in str(rows)
    scoped = await hub.client.patch(f"{USERS}/{olga.id}", headers=root, json={"role": "admin"})
    assert scoped.status_code == 200  # olga had no sites
    limited = await hub.client.patch(f"{USERS}/{olga.id}", headers=root, json={"sites": ["a"]})
    assert limited.status_code == 422
