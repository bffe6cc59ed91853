"""Rules for user input: usernames, passwords, site scopes. Each raises `InvalidInput`.

Example:
    >>> check_username("Ana.Silva")
    'ana.silva'
    >>> check_scope(Role.ADMIN, ["plant-a"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hub.auth.errors.InvalidInput: an admin cannot be limited to sites ...
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hub.auth.errors import InvalidInput
from hub.auth.principal import Role, is_site_id

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,63}$"
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
MAX_SITES = 1000
_USERNAME = re.compile(USERNAME_PATTERN)


def check_username(value: str) -> str:
    """The username in its stored form (lowercase); case does not tell users apart."""
    name = value.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise InvalidInput(
            "a username is 1 to 64 of a-z 0-9 . _ @ -, starting with a letter or digit",
            field="username",
        )
    return name


def check_password(value: str) -> str:
    """A password long enough to resist guessing (at least 12 characters)."""
    if len(value) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters", field="password")
    if len(value) > MAX_PASSWORD:
        raise InvalidInput(f"a password has at most {MAX_PASSWORD} characters", field="password")
    return value


def check_sites(value: Iterable[str] | None) -> list[str] | None:
    """A site list, sorted and without repeats; None (every site) stays None."""
    if value is None:
        return None
    sites = sorted(set(value))
    if not sites:
        raise InvalidInput(
            "sites: list at least one site id, or leave it null for every site", field="sites"
        )
    bad = [s for s in sites if not is_site_id(s)]
    if bad:
        raise InvalidInput(
            f"not a site id: {bad[0][:80]!r} (lowercase letters, digits and '-', at most 63)",
            field="sites",
        )
    if len(sites) > MAX_SITES:
        raise InvalidInput(f"at most {MAX_SITES} sites per user", field="sites")
    return sites


def check_scope(role: Role, sites: list[str] | None) -> None:
    """Admins are never site-scoped: one of them could otherwise make an unscoped admin."""
    if role is Role.ADMIN and sites is not None:
        raise InvalidInput(
            "an admin cannot be limited to sites (admins manage every user); leave sites empty",
            field="sites",
        )
