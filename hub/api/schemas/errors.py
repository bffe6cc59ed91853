"""Error bodies, for the OpenAPI `responses` of every route."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    """Why a request was refused: a stable `code` and a sentence for people."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["not_authenticated", "role_required", "too_many_attempts"])
    message: str


class ErrorBody(BaseModel):
    """`{"detail": {"code": ..., "message": ...}}`, plus fields specific to the code."""

    detail: ErrorDetail


def error(description: str) -> dict[str, Any]:
    """One OpenAPI `responses` entry with the error body."""
    return {"model": ErrorBody, "description": description}


Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {
    401: error("Not logged in, or the token or API key is invalid or expired")
}
FORBIDDEN: Responses = {403: error("Logged in, but the role or site scope does not allow this")}
NOT_FOUND: Responses = {404: error("No such resource (or none the caller may see)")}
CONFLICT: Responses = {409: error("Clashes with the current state")}
TOO_MANY: Responses = {429: error("Too many failed logins; see the Retry-After header")}
AUTHED: Responses = {**UNAUTHORIZED, **FORBIDDEN}
UNAVAILABLE: Responses = {
    503: error("Stored, but the MQTT broker did not confirm the publish: it may not arrive")
}
