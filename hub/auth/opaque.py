"""Opaque secrets the hub hands out: API keys and refresh tokens.

Both read `<kind>_<lookup id>_<secret>`: the id finds the stored row, the secret
is checked against the SHA-256 kept there. A fast hash is enough here (unlike for
passwords): the secrets are 256 random bits, nothing to guess, and a slow hash on
every API call would hand anyone a cheap way to load the hub.

Example:
    >>> issued = new_api_key()
    >>> issued.text.startswith("opk_"), parse(issued.text, "opk") == (issued.lookup, issued.secret)
    (True, True)
    >>> secret_matches(issued.digest, issued.secret), parse("opk_nope", "opk")
    (True, None)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

API_KEY_KIND = "opk"
REFRESH_KIND = "opr"
_SHAPE = re.compile(r"^(?P<kind>op[kr])_(?P<lookup>[0-9a-f]{12,32})_(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class Issued:
    """A new secret: `text` goes to the client once, `lookup` and `digest` are stored."""

    text: str
    lookup: str
    secret: str
    digest: str


def digest(secret: str) -> str:
    """The stored SHA-256 (hex) of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(stored_digest: str, secret: str) -> bool:
    """Constant-time comparison of a presented secret with the stored digest."""
    return hmac.compare_digest(stored_digest, digest(secret))


def _issue(kind: str, lookup_bytes: int) -> Issued:
    lookup, secret = secrets.token_hex(lookup_bytes), secrets.token_urlsafe(32)
    return Issued(f"{kind}_{lookup}_{secret}", lookup, secret, digest(secret))


def new_api_key() -> Issued:
    """A new API key: `opk_` + a 12-hex-digit prefix + 43 characters of secret."""
    return _issue(API_KEY_KIND, 6)


def new_refresh_token() -> Issued:
    """A new refresh token: `opr_` + a 32-hex-digit id + 43 characters of secret."""
    return _issue(REFRESH_KIND, 16)


def parse(text: str, kind: str) -> tuple[str, str] | None:
    """(lookup, secret) of a well-formed secret of `kind`, else None."""
    match = _SHAPE.fullmatch(text.strip())
    if match is None or match["kind"] != kind:
        return None
    return match["lookup"], match["secret"]
