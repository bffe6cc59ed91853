"""Access tokens: JWTs signed with HS256, and only HS256 is accepted back.

Why HS256: the hub is the only issuer and the only verifier, so a shared secret
does the job with nothing to publish; the algorithm is pinned on both sides, which
rules out `alg=none` and algorithm confusion. (EdDSA would be the choice once
another service must verify tokens without being able to mint them.)

Verification checks the signature, `iss`, `aud`, `exp` (10 s leeway for clocks of
several API processes), requires `iat`, `sub` and `ver`, and refuses any token
whose `typ` is not `access`.

Example:
    >>> codec = TokenCodec(b"k" * 32, issuer="outpost-hub", audience="outpost-api", ttl_s=900)
    >>> token, ttl = codec.issue(user_id=7, username="ana", role="viewer", sites=None, version=1)
    >>> claims = codec.verify(token)
    >>> claims.user_id, claims.role, claims.version, ttl
    (7, 'viewer', 1, 900)
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from hub.auth.errors import NotAuthenticated
from hub.errors import HubConfigError
from hub.settings import AuthSection

logger = logging.getLogger(__name__)

ALGORITHM = "HS256"
ACCESS = "access"
LEEWAY_S = 10
MIN_SECRET_BYTES = 32
SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name
_REQUIRED = ["exp", "iat", "iss", "aud", "sub"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: int
    username: str
    role: str
    sites: tuple[str, ...] | None
    version: int
    token_id: str


class TokenCodec:
    """Issues and verifies the hub's access tokens."""

    def __init__(
        self,
        key: bytes,
        *,
        issuer: str,
        audience: str,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < MIN_SECRET_BYTES:
            raise HubConfigError(f"auth.jwt_secret: must be at least {MIN_SECRET_BYTES} bytes")
        self._key, self.issuer, self.audience, self.ttl_s = key, issuer, audience, ttl_s
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: AuthSection, data_dir: Path) -> TokenCodec:
        """A codec with the configured secret, or the one kept in `data_dir`."""
        key = settings.jwt_secret.encode() if settings.jwt_secret else load_secret(data_dir)
        return cls(
            key, issuer=settings.issuer, audience=settings.audience, ttl_s=settings.access_ttl_s
        )

    def issue(
        self,
        *,
        user_id: int,
        username: str,
        role: str,
        sites: tuple[str, ...] | None,
        version: int,
    ) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s,
            "jti": secrets.token_hex(8),
            "typ": ACCESS,
            "username": username,
            "role": role,
            "sites": None if sites is None else list(sites),
            "ver": version,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), self.ttl_s

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; `NotAuthenticated` otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("the access token has expired", code="token_expired") from None
        except jwt.InvalidTokenError as exc:
            raise NotAuthenticated(f"invalid access token: {exc}", code="invalid_token") from None
        return _claims(claims)


def _claims(claims: dict[str, Any]) -> AccessClaims:
    sub, ver, sites = claims.get("sub"), claims.get("ver"), claims.get("sites")
    well_formed = (
        claims.get("typ") == ACCESS
        and isinstance(sub, str)
        and sub.isdigit()
        and isinstance(ver, int)
        and isinstance(claims.get("role"), str)
        and (sites is None or (isinstance(sites, list) and all(isinstance(s, str) for s in sites)))
    )
    if not well_formed:
        raise NotAuthenticated("not an access token of this hub", code="invalid_token")
    return AccessClaims(
        user_id=int(sub),  # type: ignore[arg-type]  # checked above
        username=str(claims.get("username", "")),
        role=claims["role"],
        sites=None if sites is None else tuple(sites),
        version=ver,  # type: ignore[arg-type]  # checked above
        token_id=str(claims.get("jti", "")),
    )


def load_secret(data_dir: Path) -> bytes:
    """The signing secret kept in `data_dir/jwt-secret`, created (mode 0600) when missing.

    Refused when the file can be read by anyone but its owner.
    """
    path = data_dir / SECRET_FILE
    if not path.exists():
        _create_secret(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise HubConfigError(f"{path}: readable by others (mode {mode:o}); run: chmod 600 {path}")
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise HubConfigError(f"{path}: shorter than {MIN_SECRET_BYTES} bytes; delete it to renew")
    return secret


def _create_secret(path: Path) -> None:
    """Write a new secret atomically: a private temp file, hard-linked into place."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(tmp, path)
            logger.info("generated the API token signing secret in %s", path)
        except FileExistsError:
            pass  # another process won the race; use its secret
    finally:
        tmp.unlink(missing_ok=True)
