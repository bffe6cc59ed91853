"""Who is calling: roles, their order, and the caller's site scope.

Example:
    >>> p = Principal(user_id=3, username="ana", role=Role.OPERATOR,
    ...               sites=frozenset({"plant-a"}), via="jwt")
    >>> p.has_role(Role.VIEWER), p.has_role(Role.ADMIN)
    (True, False)
    >>> p.can_access_site("plant-a"), p.can_access_site("plant-b")
    (True, False)
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_SITE_ID = re.compile(SITE_ID_PATTERN)

Via = Literal["jwt", "api_key"]


class Role(enum.StrEnum):
    """A user's role: viewer < operator < admin. Compare with `at_least`, never with `<`."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for operator, 2 for admin."""
        return _RANKS[self]

    def at_least(self, minimum: Role) -> bool:
        """Whether this role includes everything `minimum` may do.

        Example:
            >>> Role.ADMIN.at_least(Role.OPERATOR), Role.VIEWER.at_least(Role.OPERATOR)
            (True, False)
        """
        return self.rank >= minimum.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def is_site_id(value: object) -> bool:
    """Whether `value` is a site id: lowercase letters, digits and '-', at most 63."""
    return isinstance(value, str) and _SITE_ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller of the API.

    `sites` None means every site. `via` says how they proved it: a JWT from a
    password login, or an API key (`api_key_id` then names it).
    """

    user_id: int
    username: str
    role: Role
    sites: frozenset[str] | None
    via: Via
    api_key_id: int | None = None

    def has_role(self, minimum: Role) -> bool:
        """Whether the caller's role is `minimum` or above."""
        return self.role.at_least(minimum)

    def can_access_site(self, site_id: str) -> bool:
        """Whether the caller may read or act on anything of site `site_id`."""
        return self.sites is None or site_id in self.sites

    def visible_sites(self, site_ids: set[str] | frozenset[str]) -> frozenset[str]:
        """The subset of `site_ids` the caller may see (for filtering lists)."""
        return frozenset(site_ids) if self.sites is None else self.sites & site_ids
