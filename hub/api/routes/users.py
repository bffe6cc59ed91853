"""`/api/v1/users`: admins list, create and change users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from hub.api.deps import AdminPrincipal, UsersDep
from hub.api.schemas.auth import MAX_ROW_ID, UserCreate, UserOut, UserPatch
from hub.api.schemas.errors import AUTHED, CONFLICT, NOT_FOUND
from hub.audit.chain import Actor
from hub.audit.middleware import mark_audited
from hub.auth.principal import Principal, Role
from hub.auth.users import UserChanges
from hub.storage.repositories.users import UserRecord

router = APIRouter(prefix="/api/v1/users", tags=["users"])


def _out(user: UserRecord) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        role=Role(user.role),
        sites=None if user.sites is None else list(user.sites),
        disabled=user.disabled,
        created_at=user.created_at,
    )


def _actor(principal: Principal) -> Actor:
    return Actor(principal.username, principal.role.value)


@router.get("", summary="List users (admin)", response_model=list[UserOut], responses=AUTHED)
async def list_users(_: AdminPrincipal, users: UsersDep) -> list[UserOut]:
    """Every user, by id."""
    return [_out(u) for u in await users.all()]


@router.post(
    "",
    summary="Create a user (admin)",
    description="Admins are never limited to sites. Usernames are stored in lowercase.",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={**AUTHED, **CONFLICT},
)
async def create_user(
    request: Request, body: UserCreate, principal: AdminPrincipal, users: UsersDep
) -> UserOut:
    """A new user with a role and an optional site scope."""
    user = await users.create(
        _actor(principal),
        username=body.username,
        password=body.password,
        role=body.role,
        sites=body.sites,
    )
    mark_audited(request)
    return _out(user)


@router.patch(
    "/{user_id}",
    summary="Change a user's role, sites, disabled flag or password (admin)",
    description="Any change ends the user's sessions. The last enabled admin cannot be "
    "demoted or disabled (409).",
    response_model=UserOut,
    responses={**AUTHED, **NOT_FOUND, **CONFLICT},
)
async def update_user(
    request: Request,
    user_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    body: UserPatch,
    principal: AdminPrincipal,
    users: UsersDep,
) -> UserOut:
    """Only the fields present change; `sites: null` means every site."""
    given = body.model_fields_set
    changes = UserChanges(
        role=body.role,
        disabled=body.disabled,
        password=body.password,
        **({"sites": body.sites} if "sites" in given else {}),
    )
    user = await users.update(_actor(principal), user_id, changes)
    mark_audited(request)
    return _out(user)
