"""Bodies of `/api/v1/auth/*` and `/api/v1/users*`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from hub.auth.policy import check_password, check_sites, check_username
from hub.auth.principal import Role

Username = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_username)]
NewPassword = Annotated[str, Field(max_length=1024), AfterValidator(check_password)]
Sites = Annotated[
    list[str] | None,
    Field(description="Site ids the user is limited to; null for every site."),
    AfterValidator(check_sites),
]


# Ids of rows with an INTEGER key: larger ones exist nowhere, and PostgreSQL refuses them.
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


def refuse_nul(value: Any) -> Any:
    """`value`, unless a string in it holds NUL (PostgreSQL text cannot): ValueError then.

    Example:
        >>> refuse_nul({"zone": ["a", "b"]})
        {'zone': ['a', 'b']}
    """
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    if isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key)
            refuse_nul(item)
    elif isinstance(value, list | tuple):
        for item in value:
            refuse_nul(item)
    return value


class Body(BaseModel):
    """A request body: unknown fields are errors, and so is NUL in any string."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return refuse_nul(value)


class LoginRequest(Body):
    """Username and password (JSON, or an OAuth2 password form)."""

    model_config = ConfigDict(extra="ignore")  # OAuth2 forms carry grant_type, scope, ...

    username: Annotated[str, Field(min_length=1, max_length=256)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class RefreshRequest(Body):
    """A refresh token from the last login or refresh."""

    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class TokenResponse(BaseModel):
    """An access token for `Authorization: Bearer`, and the single-use refresh token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Single use: each refresh returns a new one.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires.")


class PrincipalOut(BaseModel):
    """Who the caller is, as the API sees them."""

    user_id: int
    username: str
    role: Role
    sites: list[str] | None = Field(description="null: every site.")
    via: Literal["jwt", "api_key"]
    api_key_id: int | None = None


class PasswordChange(Body):
    """Change one's own password (ends every session of the user, this one included)."""

    current_password: Annotated[str, Field(min_length=1, max_length=1024)]
    new_password: NewPassword


class ApiKeyCreate(Body):
    """A name to recognise the key by (where it is used)."""

    name: Annotated[str, Field(min_length=1, max_length=128)]


class ApiKeyOut(BaseModel):
    """An API key as listed: never the secret."""

    id: int
    user_id: int
    name: str
    prefix: str = Field(description="The key's public part: `opk_<prefix>_…`.")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """A new key: `key` is shown only in this response."""

    key: str = Field(description="Send as `Authorization: Bearer <key>` or `X-API-Key: <key>`.")


class UserCreate(Body):
    """A new user."""

    username: Username
    password: NewPassword
    role: Role
    sites: Sites = None


class UserPatch(Body):
    """Fields to change; omitted fields stay. `sites: null` means every site."""

    role: Role | None = None
    sites: Sites = None
    disabled: bool | None = None
    password: NewPassword | None = None


class UserOut(BaseModel):
    """A user as the API shows it (never the password hash)."""

    id: int
    username: str
    role: Role
    sites: list[str] | None = Field(description="null: every site.")
    disabled: bool
    created_at: datetime
