"""FastAPI dependencies every route builds on: services from `app.state`, and who is calling.

Services open and commit their own transactions (`hub.storage.db.transaction`);
a route must not hold a database transaction open while its response starts:
`AuditMiddleware` writes the request's audit row at that moment, and on SQLite it
would wait for the route's write lock.

Example:
    >>> from fastapi import APIRouter
    >>> router = APIRouter()
    >>> @router.post("/api/v1/devices/{device_id}/estop")
    ... async def estop(device_id: str, principal: OperatorPrincipal) -> None:
    ...     ...  # check principal.can_access_site(<the device's site>) before acting
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from hub.api.schemas.auth import refuse_nul
from hub.assets.enrollment import EnrollmentService, EnrollmentTokens
from hub.assets.service import AssetService
from hub.audit.log import AuditLog
from hub.audit.middleware import set_principal
from hub.auth.errors import Forbidden
from hub.auth.principal import Principal, Role
from hub.auth.service import AuthService
from hub.auth.users import UserService

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An access token from `POST /api/v1/auth/login`, or an API key (`opk_…`).",
)
_api_key = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="An API key (`opk_…`) from `POST /api/v1/auth/api-keys`.",
)


def auth_service(request: Request) -> AuthService:
    """The app's `AuthService`."""
    service: AuthService = request.app.state.auth
    return service


def user_service(request: Request) -> UserService:
    """The app's `UserService`."""
    service: UserService = request.app.state.users
    return service


def audit_log(request: Request) -> AuditLog:
    """The app's `AuditLog`."""
    log: AuditLog = request.app.state.audit
    return log


def asset_service(request: Request) -> AssetService:
    """The app's `AssetService`."""
    service: AssetService = request.app.state.assets
    return service


def enrollment_service(request: Request) -> EnrollmentService:
    """The app's `EnrollmentService`."""
    service: EnrollmentService = request.app.state.enrollment
    return service


def token_service(request: Request) -> EnrollmentTokens:
    """The app's `EnrollmentTokens`."""
    service: EnrollmentTokens = request.app.state.enrollment_tokens
    return service


def client_address(request: Request) -> str:
    """The caller's address (the proxy's, unless uvicorn trusts forwarded headers)."""
    return request.client.host if request.client else "unknown"


async def no_nul_parameters(request: HTTPConnection) -> None:
    """422 when a path or query parameter holds NUL, which PostgreSQL text cannot hold.

    An app-wide dependency (`hub.app`): it runs before any route's own, so the database
    never sees one. Bodies are checked by `hub.api.schemas.auth.Body`. It takes the
    connection, not the request, so that WebSocket routes can run it too.
    """
    for where, params in (
        ("path", list(request.path_params.items())),
        ("query", request.query_params.multi_items()),
    ):
        for name, value in params:
            try:
                refuse_nul(value)
            except ValueError as exc:
                error = {"type": "value_error", "loc": (where, name), "msg": str(exc)}
                raise RequestValidationError([error]) from None


AuthDep = Annotated[AuthService, Depends(auth_service)]
UsersDep = Annotated[UserService, Depends(user_service)]
AuditDep = Annotated[AuditLog, Depends(audit_log)]
AssetsDep = Annotated[AssetService, Depends(asset_service)]
EnrollmentDep = Annotated[EnrollmentService, Depends(enrollment_service)]
TokensDep = Annotated[EnrollmentTokens, Depends(token_service)]
ClientDep = Annotated[str, Depends(client_address)]


async def current_principal(
    request: Request,
    auth: AuthDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The logged-in caller (access token or API key), or 401 with `WWW-Authenticate`."""
    principal = await auth.authenticate(
        bearer=bearer.credentials if bearer else None, api_key=api_key
    )
    set_principal(request, principal)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(minimum: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, if their role is `minimum` or above; 403 otherwise.

    Example:
        >>> from fastapi import Depends
        >>> Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
    """

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has_role(minimum):
            raise Forbidden(
                f"this needs the {minimum.value} role; you are {principal.role.value}",
                code="role_required",
                required=minimum.value,
                role=principal.role.value,
            )
        return principal

    dependency.__name__ = f"require_{minimum.value}"
    return dependency


def require_site(principal: Principal, site_id: str) -> None:
    """403 unless the caller's scope includes `site_id` (for routes that act on a site)."""
    if not principal.can_access_site(site_id):
        raise Forbidden(
            f"site {site_id!r} is outside your scope",
            code="site_forbidden",
            site=site_id,
        )


ViewerPrincipal = CurrentPrincipal
OperatorPrincipal = Annotated[Principal, Depends(require(Role.OPERATOR))]
AdminPrincipal = Annotated[Principal, Depends(require(Role.ADMIN))]
