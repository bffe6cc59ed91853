"""Password login, refresh rotation, logout, the login rate limit, own password change."""

from __future__ import annotations

import httpx

from hub.audit.chain import SYSTEM
from hub.auth.principal import Role
from hub.auth.users import UserChanges
from tests.hub.auth.support import BASE, PASSWORD, Hub

LOGIN, REFRESH, LOGOUT, ME = (
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/auth/me",
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_with_json_or_a_form_returns_a_token_pair(hub: Hub) -> None:
    await hub.add_user("ana", Role.OPERATOR, ["plant-a"])
    as_json = await hub.client.post(LOGIN, json={"username": "Ana", "password": PASSWORD})
    as_form = await hub.client.post(
        LOGIN, data={"username": "ana", "password": PASSWORD, "grant_type": "password"}
    )
    for response in (as_json, as_form):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 900
        assert body["refresh_token"].startswith("opr_")
    me = await hub.client.get(ME, headers=bearer(as_form.json()["access_token"]))
    assert me.json() == {
        "user_id": 1,
        "username": "ana",
        "role": "operator",
        "sites": ["plant-a"],
        "via": "jwt",
        "api_key_id": None,
    }


async def test_a_wrong_password_or_unknown_user_is_one_401(hub: Hub) -> None:
    await hub.add_user("ana", Role.VIEWER)
    wrong = await hub.client.post(LOGIN, json={"username": "ana", "password": "x" * 12})
    nobody = await hub.client.post(LOGIN, json={"username": "zed", "password": "x" * 12})
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json()
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    rows = await hub.audit_rows()
    denied = [(r["actor"], r["action"], r["decision"], r["result"]) for r in rows[-2:]]
    assert denied == [
        ("ana", "auth.login", "denied", "401"),
        ("zed", "auth.login", "denied", "401"),
    ]


async def test_bad_login_bodies_are_422_with_details(hub: Hub) -> None:
    missing = await hub.client.post(LOGIN, json={"username": "ana"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["password"]
    junk = await hub.client.post(
        LOGIN, content=b"{nope", headers={"content-type": "application/json"}
    )
    assert junk.status_code == 422


async def test_five_failures_then_429_with_retry_after_even_for_the_right_password(
    hub: Hub,
) -> None:
    await hub.add_user("ana", Role.VIEWER)
    for _ in range(5):
        failed = await hub.client.post(LOGIN, json={"username": "ana", "password": "guess" * 3})
        assert failed.status_code == 401
    limited = await hub.client.post(LOGIN, json={"username": "ana", "password": PASSWORD})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["detail"]["code"] == "too_many_attempts"
    # Per username and address: the same user from elsewhere, and others here, still log in.
    other = httpx.ASGITransport(app=hub.app, client=("10.9.9.9", 50000))
    async with httpx.AsyncClient(transport=other, base_url=BASE) as elsewhere:
        ok = await elsewhere.post(LOGIN, json={"username": "ana", "password": PASSWORD})
    assert ok.status_code == 200
    assert (await hub.audit_rows())[-2]["result"] == "429"


async def test_refresh_rotates_and_a_replayed_token_ends_the_session(hub: Hub) -> None:
    await hub.add_user("ana", Role.VIEWER)
    first = await hub.login("ana")
    second = await hub.client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()["refresh_token"]
    assert rotated != first["refresh_token"]
    assert (await hub.client.get(ME, headers=bearer(second.json()["access_token"]))).is_success

    replay = await hub.client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json()["detail"]["code"] == "token_reused"
    # The replay revoked the whole family: the legitimate holder's newer token is dead too.
    after = await hub.client.post(REFRESH, json={"refresh_token": rotated})
    assert after.status_code == 401
    other_session = await hub.login("ana")
    ok = await hub.client.post(REFRESH, json={"refresh_token": other_session["refresh_token"]})
    assert ok.status_code == 200


async def test_logout_revokes_the_refresh_token(hub: Hub) -> None:
    await hub.add_user("ana", Role.VIEWER)
    tokens = await hub.login("ana")
    out = await hub.client.post(LOGOUT, json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    again = await hub.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401
    forged = await hub.client.post(LOGOUT, json={"refresh_token": "opr_" + "0" * 32 + "_x"})
    assert forged.status_code == 401


async def test_disabling_a_user_ends_their_tokens_at_once(hub: Hub) -> None:
    user = await hub.add_user("ana", Role.OPERATOR)
    tokens = await hub.login("ana")
    await hub.users.update(SYSTEM, user.id, UserChanges(disabled=True))
    me = await hub.client.get(ME, headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    refresh = await hub.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    login = await hub.client.post(LOGIN, json={"username": "ana", "password": PASSWORD})
    assert login.status_code == 401
    assert (await hub.audit_rows())[-1]["detail"] == '{"client":"10.1.2.3","reason":"disabled"}'


async def test_changing_ones_password_needs_the_current_one_and_ends_sessions(hub: Hub) -> None:
    await hub.add_user("ana", Role.VIEWER)
    tokens = await hub.login("ana")
    headers = bearer(tokens["access_token"])
    new = "a brand new passphrase"
    wrong = await hub.client.post(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": "not it at all", "new_password": new},
    )
    assert wrong.status_code == 401
    short = await hub.client.post(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert short.status_code == 422
    assert "at least 12" in short.json()["detail"][0]["msg"]
    ok = await hub.client.post(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": PASSWORD, "new_password": new},
    )
    assert ok.status_code == 204
    assert (await hub.client.get(ME, headers=headers)).status_code == 401
    assert (await hub.login("ana", new))["access_token"]
