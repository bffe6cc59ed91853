"""The API's refusals: each carries its HTTP status, a stable code and a message.

Services raise them; one exception handler in `hub.app` turns them into
`{"detail": {"code": ..., "message": ...}}` responses (plus headers such as
`WWW-Authenticate` and `Retry-After`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from hub.errors import HubError


class ApiError(HubError):
    """A request refused for a reason the caller can act on."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = code or self.code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The response's `detail` object."""
        return {"code": self.error_code, "message": self.message, **self.extra}

    def headers(self) -> dict[str, str]:
        """Headers the response must carry."""
        return {}


class NotAuthenticated(ApiError):
    """No credentials, or credentials that do not check out (401)."""

    status = 401
    code = "not_authenticated"

    def headers(self) -> dict[str, str]:
        """RFC 6750: say which scheme to use, and that the token was bad when it was."""
        if self.error_code == "not_authenticated":
            return {"WWW-Authenticate": 'Bearer realm="outpost"'}
        return {"WWW-Authenticate": 'Bearer realm="outpost", error="invalid_token"'}


class Forbidden(ApiError):
    """Authenticated, but not allowed to do this (403)."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """No such thing, or none the caller may see (404)."""

    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The request clashes with the current state (409)."""

    status = 409
    code = "conflict"


class InvalidInput(ApiError, ValueError):
    """A value breaks a rule (422); `field` names it. A ValueError, so pydantic reports it."""

    status = 422
    code = "invalid"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class TooManyAttempts(ApiError):
    """Too many failed logins for this user from this address (429)."""

    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        """When to try again, in whole seconds."""
        return {"Retry-After": str(self.retry_after_s)}
