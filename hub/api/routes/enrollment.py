"""`POST /api/v1/enrollment-tokens` (users) and `POST /api/v1/enroll` (devices).

Enrollment needs no user login: the single-use token is the credential. Its
answers follow `protocol.enrollment`: 201, 401 unknown token, 410 used or
expired, 422 malformed (errors are `{"detail": "..."}`). With an external
broker the hub creates the device's login through Mosquitto's dynamic-security
plugin (`[broker] provisioning = "dynsec"`); 503 when the broker did not take
it (nothing is enrolled, the token stays usable), 501 when no provisioning is set.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from hub.api.deps import EnrollmentDep, OperatorPrincipal, TokensDep
from hub.api.schemas.assets import TokenCreate, TokenOut
from hub.api.schemas.errors import AUTHED, NOT_FOUND
from hub.assets.enrollment import ExternalBrokerEnrollment, TokenGone, TokenUnknown
from hub.assets.service import BrokerUnavailable, actor_of
from hub.audit.middleware import mark_audited
from protocol.enrollment import ENROLL_PATH, EnrollRequest, EnrollResponse

router = APIRouter(tags=["enrollment"])


def install_command(hub_url: str, token: str) -> str:
    """The line a field technician runs on the device.

    Example:
        >>> install_command("https://hub:8080/", "oet_x")
        'edge-agent install --hub https://hub:8080 --token oet_x'
    """
    return f"edge-agent install --hub {hub_url.rstrip('/')} --token {token}"


@router.post(
    "/api/v1/enrollment-tokens",
    summary="Create a single-use enrollment token (operator of the site)",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenOut,
    responses={**AUTHED, **NOT_FOUND},
)
async def create_token(
    request: Request, body: TokenCreate, principal: OperatorPrincipal, tokens: TokensDep
) -> TokenOut:
    """The token is in this response only; the hub keeps a SHA-256 of it."""
    new = await tokens.create(
        actor_of(principal),
        principal.sites,
        site_id=body.site_id,
        group=body.group_id,
        ttl_s=body.ttl_s,
        name_prefix=body.name_prefix,
    )
    mark_audited(request)
    record = new.record
    return TokenOut(
        token=new.token,
        id=record.id,
        site_id=record.site_id,
        group_id=record.group_id,
        expires_at=record.expires_at,
        install_command=install_command(str(request.base_url), new.token),
    )


def _refusal(description: str) -> dict[str, object]:
    schema = {"type": "object", "properties": {"detail": {"type": "string"}}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@router.post(
    ENROLL_PATH,
    summary="Exchange an enrollment token for a device identity (no login)",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollResponse,
    responses={
        401: _refusal("The token is not recognised"),
        410: _refusal("The token was used already or has expired"),
        501: _refusal("External broker without `[broker] provisioning`: add logins by hand"),
        503: _refusal("The broker did not take the device's login; nothing was enrolled"),
    },
)
async def enroll(request: Request, body: EnrollRequest, enrollment: EnrollmentDep) -> JSONResponse:
    """Create the device, its MQTT login and answer with them and the hub's public key."""
    try:
        response = await enrollment.enroll(body, api_host=request.url.hostname)
    except (TokenUnknown, TokenGone, ExternalBrokerEnrollment, BrokerUnavailable) as exc:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
    mark_audited(request)
    return JSONResponse(response.model_dump(mode="json"), status_code=status.HTTP_201_CREATED)
