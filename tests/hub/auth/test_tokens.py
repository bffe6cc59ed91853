"""Access tokens: only HS256 tokens of this hub, for this audience, unexpired, are accepted."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from hub.auth.errors import NotAuthenticated
from hub.auth.principal import Role
from hub.auth.tokens import SECRET_FILE, TokenCodec, load_secret
from hub.errors import HubConfigError
from tests.hub.auth.support import Hub

ME = "/api/v1/auth/me"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _key(hub: Hub) -> bytes:
    return (hub.settings.data_dir / SECRET_FILE).read_bytes().strip()


def _claims(hub: Hub, user_id: int, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "outpost-hub",
        "aud": "outpost-api",
        "sub": str(user_id),
        "iat": now,
        "exp": now + 600,
        "typ": "access",
        "username": "ana",
        "role": "admin",
        "sites": None,
        "ver": 1,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


async def _me(hub: Hub, token: str) -> tuple[int, dict[str, Any], str]:
    response = await hub.client.get(ME, headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json(), response.headers.get("www-authenticate", "")


async def test_a_token_of_this_hub_is_accepted(hub: Hub) -> None:
    user = await hub.add_user("ana", Role.ADMIN)
    token = jwt.encode(_claims(hub, user.id), _key(hub), algorithm="HS256")
    status, body, _ = await _me(hub, token)
    assert (status, body["username"], body["via"]) == (200, "ana", "jwt")


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("alg_none", "invalid_token"),
        ("wrong_key", "invalid_token"),
        ("hs512_same_key", "invalid_token"),
        ("expired", "token_expired"),
        ("wrong_audience", "invalid_token"),
        ("wrong_issuer", "invalid_token"),
        ("no_exp", "invalid_token"),
        ("typ_refresh", "invalid_token"),
        ("old_version", "invalid_token"),
        ("garbage", "invalid_token"),
    ],
)
async def test_forged_or_stale_tokens_are_refused(hub: Hub, case: str, code: str) -> None:
    user = await hub.add_user("ana", Role.ADMIN)
    key = _key(hub)
    claims = _claims(hub, user.id)
    token = {
        "alg_none": lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong_key": lambda: jwt.encode(claims, os.urandom(32), algorithm="HS256"),
        "hs512_same_key": lambda: jwt.encode(claims, key * 2, algorithm="HS512"),
        "expired": lambda: jwt.encode(
            _claims(hub, user.id, iat=int(time.time()) - 1000, exp=int(time.time()) - 60),
            key,
            algorithm="HS256",
        ),
        "wrong_audience": lambda: jwt.encode(
            _claims(hub, user.id, aud="someone-else"), key, algorithm="HS256"
        ),
        "wrong_issuer": lambda: jwt.encode(
            _claims(hub, user.id, iss="evil-hub"), key, algorithm="HS256"
        ),
        "no_exp": lambda: jwt.encode(_claims(hub, user.id, exp=...), key, algorithm="HS256"),
        "typ_refresh": lambda: jwt.encode(
            _claims(hub, user.id, typ="refresh"), key, algorithm="HS256"
        ),
        "old_version": lambda: jwt.encode(_claims(hub, user.id, ver=0), key, algorithm="HS256"),
        "garbage": lambda: "not.a.token",
    }[case]()
    status, body, challenge = await _me(hub, token)
    assert status == 401
    assert body["detail"]["code"] == code
    assert challenge.startswith("Bearer")


async def test_a_refresh_token_is_no_access_token(hub: Hub) -> None:
    await hub.add_user("ana", Role.ADMIN)
    tokens = await hub.login("ana")
    status, body, _ = await _me(hub, tokens["refresh_token"])
    assert status == 401
    assert body["detail"]["code"] == "invalid_token"


async def test_no_credentials_is_401_with_a_bearer_challenge(hub: Hub) -> None:
    response = await hub.client.get(ME)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="outpost"'
    assert response.json()["detail"]["code"] == "not_authenticated"


def test_codec_refuses_a_short_key() -> None:
    with pytest.raises(HubConfigError, match="at least 32 bytes"):
        TokenCodec(b"short", issuer="i", audience="a", ttl_s=60)


def test_codec_tokens_expire_after_their_ttl() -> None:
    def codec(issued_ago_s: float) -> TokenCodec:
        return TokenCodec(
            b"k" * 32, issuer="i", audience="a", ttl_s=60, clock=lambda: time.time() - issued_ago_s
        )

    fresh, ttl = codec(0).issue(user_id=1, username="ana", role="viewer", sites=("s",), version=1)
    assert (codec(0).verify(fresh).sites, ttl) == (("s",), 60)
    stale, _ = codec(75).issue(user_id=1, username="ana", role="viewer", sites=None, version=1)
    with pytest.raises(NotAuthenticated) as info:
        codec(0).verify(stale)
    assert info.value.error_code == "token_expired"


def test_the_generated_secret_is_private_and_kept(tmp_path: Path) -> None:
    first = load_secret(tmp_path / "data")
    path = tmp_path / "data" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_secret(tmp_path / "data") == first


def test_a_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_secret(tmp_path)
    (tmp_path / SECRET_FILE).chmod(0o644)
    with pytest.raises(HubConfigError, match="chmod 600"):
        load_secret(tmp_path)
