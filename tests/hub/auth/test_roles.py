"""Roles are ordered viewer < operator < admin; site scope limits what a user may touch."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends

from hub.api.deps import OperatorPrincipal, require, require_site
from hub.auth.errors import Forbidden
from hub.auth.principal import Principal, Role
from tests.hub.auth.support import Hub

ROLES = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
AdminOnly = Annotated[Principal, Depends(require(Role.ADMIN))]


def principal(role: Role, sites: frozenset[str] | None = None) -> Principal:
    return Principal(user_id=1, username="u", role=role, sites=sites, via="jwt")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("minimum", ROLES)
def test_role_order(role: Role, minimum: Role) -> None:
    assert role.at_least(minimum) == (ROLES.index(role) >= ROLES.index(minimum))
    assert principal(role).has_role(minimum) == role.at_least(minimum)


def test_site_scope() -> None:
    scoped = principal(Role.OPERATOR, frozenset({"plant-a"}))
    assert scoped.can_access_site("plant-a")
    assert not scoped.can_access_site("plant-b")
    assert principal(Role.VIEWER).can_access_site("anything")
    assert scoped.visible_sites({"plant-a", "plant-b"}) == {"plant-a"}
    with pytest.raises(Forbidden) as info:
        require_site(scoped, "plant-b")
    assert info.value.body()["code"] == "site_forbidden"


async def test_require_guards_routes_by_minimum_role(hub: Hub) -> None:
    @hub.app.post("/test/operate")
    async def operate(p: OperatorPrincipal) -> dict[str, str]:
        return {"by": p.username}

    @hub.app.get("/test/admin")
    async def admin(p: AdminOnly) -> dict[str, str]:
        return {"by": p.username}

    for name, role in (("vic", Role.VIEWER), ("olga", Role.OPERATOR), ("ada", Role.ADMIN)):
        await hub.add_user(name, role)
    outcomes = {}
    for name in ("vic", "olga", "ada"):
        headers = await hub.bearer(name)
        operate_status = (await hub.client.post("/test/operate", headers=headers)).status_code
        admin_status = (await hub.client.get("/test/admin", headers=headers)).status_code
        outcomes[name] = (operate_status, admin_status)
    assert outcomes == {"vic": (403, 403), "olga": (200, 403), "ada": (200, 200)}

    refused = await hub.client.post("/test/operate", headers=await hub.bearer("vic"))
    assert refused.json()["detail"] == {
        "code": "role_required",
        "message": "this needs the operator role; you are viewer",
        "required": "operator",
        "role": "viewer",
    }
