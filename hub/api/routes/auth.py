"""`/api/v1/auth/*`: login, refresh, logout, who am I, own password, API keys."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from hub.api.deps import AuthDep, ClientDep, CurrentPrincipal, UsersDep
from hub.api.schemas.auth import (
    MAX_ROW_ID,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginRequest,
    PasswordChange,
    PrincipalOut,
    RefreshRequest,
    TokenResponse,
)
from hub.api.schemas.errors import AUTHED, NOT_FOUND, TOO_MANY, UNAUTHORIZED, Responses
from hub.audit.chain import Actor
from hub.audit.middleware import mark_audited
from hub.auth.errors import ApiError, Forbidden, NotAuthenticated
from hub.auth.passwords import check_user_password
from hub.auth.service import TokenPair
from hub.auth.users import UserChanges
from hub.storage.repositories.api_keys import ApiKeyRecord

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

_LOGIN_SCHEMA = LoginRequest.model_json_schema()
_LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _LOGIN_SCHEMA},
            "application/x-www-form-urlencoded": {"schema": _LOGIN_SCHEMA},
        },
    }
}
_INVALID_BODY: Responses = {
    422: {
        "description": "Validation Error",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
        },
    }
}
MAX_LOGIN_BODY = 8192


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
    )


async def _login_body(request: Request) -> LoginRequest:
    raw = await request.body()
    if len(raw) > MAX_LOGIN_BODY:
        raise RequestValidationError([_body_error("too large")])
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/x-www-form-urlencoded":
            form = parse_qs(raw.decode(), keep_blank_values=True)
            data: Any = {k: v[0] for k, v in form.items()}
        else:
            data = json.loads(raw or b"null")
        return LoginRequest.model_validate(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RequestValidationError([_body_error("not JSON or a urlencoded form")]) from None
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _body_error(message: str) -> dict[str, Any]:
    return {"type": "value_error", "loc": ["body"], "msg": message, "input": None}


@router.post(
    "/login",
    summary="Log in with a username and password",
    description="JSON `{username, password}` or an OAuth2 password form. Returns a short-lived "
    "access token and a single-use refresh token. After too many failures for the same "
    "username from the same address: 429 with `Retry-After`.",
    response_model=TokenResponse,
    responses={**UNAUTHORIZED, **TOO_MANY, **_INVALID_BODY},
    openapi_extra=_LOGIN_BODY,
)
async def login(request: Request, auth: AuthDep, client: ClientDep) -> TokenResponse:
    """Password → tokens."""
    body = await _login_body(request)
    try:
        pair = await auth.login(body.username, body.password, client=client)
    except ApiError:
        mark_audited(request)
        raise
    mark_audited(request)
    return _tokens(pair)


@router.post(
    "/refresh",
    summary="Trade a refresh token for a new token pair",
    description="Each refresh token works once. Presenting one again ends its login session.",
    response_model=TokenResponse,
    responses=UNAUTHORIZED,
)
async def refresh(
    request: Request, body: RefreshRequest, auth: AuthDep, client: ClientDep
) -> TokenResponse:
    """Refresh token → new tokens."""
    try:
        pair = await auth.refresh(body.refresh_token, client=client)
    finally:
        mark_audited(request)
    return _tokens(pair)


@router.post(
    "/logout",
    summary="End the login session of a refresh token",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=UNAUTHORIZED,
)
async def logout(request: Request, body: RefreshRequest, auth: AuthDep, client: ClientDep) -> None:
    """Revoke the refresh token's session (access tokens expire on their own)."""
    try:
        await auth.logout(body.refresh_token, client=client)
    finally:
        mark_audited(request)


@router.get(
    "/me",
    summary="Who the caller is: user, role, site scope",
    response_model=PrincipalOut,
    responses=UNAUTHORIZED,
)
async def me(principal: CurrentPrincipal) -> PrincipalOut:
    """The caller's principal."""
    return PrincipalOut(
        user_id=principal.user_id,
        username=principal.username,
        role=principal.role,
        sites=None if principal.sites is None else sorted(principal.sites),
        via=principal.via,
        api_key_id=principal.api_key_id,
    )


@router.post(
    "/password",
    summary="Change one's own password",
    description="Needs the current password. Ends every session of the user, this one too.",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=AUTHED,
)
async def change_password(
    request: Request, body: PasswordChange, principal: CurrentPrincipal, users: UsersDep
) -> None:
    """Current password + new password."""
    if principal.via != "jwt":
        raise Forbidden("change a password after a password login", code="password_login_required")
    user = await users.get(user_id=principal.user_id)
    if not await check_user_password(user.password_hash, body.current_password):
        raise NotAuthenticated("the current password is wrong", code="bad_credentials")
    actor = Actor(principal.username, principal.role.value)
    await users.update(actor, principal.user_id, UserChanges(password=body.new_password))
    mark_audited(request)


def _key_out(record: ApiKeyRecord) -> ApiKeyOut:
    return ApiKeyOut(
        id=record.id,
        user_id=record.user_id,
        name=record.name,
        prefix=record.prefix,
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
    )


@router.post(
    "/api-keys",
    summary="Create an API key acting as the caller",
    description="The key (`opk_…`) is in this response only; the hub keeps a hash. Needs a "
    "password login (an API key cannot make more keys).",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=AUTHED,
)
async def create_api_key(
    request: Request, body: ApiKeyCreate, principal: CurrentPrincipal, auth: AuthDep
) -> ApiKeyCreated:
    """Name → new key."""
    record, text = await auth.create_api_key(principal, name=body.name)
    mark_audited(request)
    return ApiKeyCreated(**_key_out(record).model_dump(), key=text)


@router.get(
    "/api-keys",
    summary="List API keys: the caller's, or everyone's for an admin with all=true",
    response_model=list[ApiKeyOut],
    responses=AUTHED,
)
async def list_api_keys(
    principal: CurrentPrincipal,
    auth: AuthDep,
    everyone: Annotated[bool, Query(alias="all", description="Every user's keys (admin).")] = False,
) -> list[ApiKeyOut]:
    """Keys, newest first, revoked ones included."""
    return [_key_out(r) for r in await auth.list_api_keys(principal, everyone=everyone)]


@router.delete(
    "/api-keys/{key_id}",
    summary="Revoke an API key (the caller's own; an admin: anyone's)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**AUTHED, **NOT_FOUND},
)
async def revoke_api_key(
    request: Request,
    key_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    principal: CurrentPrincipal,
    auth: AuthDep,
) -> None:
    """Refused from its next use on."""
    await auth.revoke_api_key(principal, key_id)
    mark_audited(request)
