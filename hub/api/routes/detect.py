"""`POST /api/v1/detect`: detect objects in one image now, on a gateway agent.

For callers off the robots (a line-side tool, a script) that need an answer at once.
The hub runs no model: it routes the image to a gateway agent over Kafka and returns
that agent's answer as is, the same JSON as the agent's own `POST /v1/detect`, plus
`gateway` (which agent answered). Viewer or above: it changes nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hub.api.deps import ViewerPrincipal
from hub.api.schemas.errors import AUTHED, Responses, error
from hub.audit.middleware import mark_audited
from hub.auth.errors import ApiError
from hub.bus.base import BusError
from hub.detect import DetectRouter, DetectTimeout
from protocol.models import MAX_DETECT_IMAGE_BYTES

router = APIRouter(prefix="/api/v1", tags=["queries"])

ACCEPTED = ("image/jpeg", "image/png", "application/octet-stream", "multipart/form-data")
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            },
        },
    }
}
RESPONSES: Responses = {
    **AUTHED,
    400: error("The image is empty, not a JPEG or PNG, corrupt, or too many pixels"),
    413: error(f"The body is over {MAX_DETECT_IMAGE_BYTES} bytes"),
    415: error("Another Content-Type; the accepted ones are listed"),
    503: error("No bus in this hub process, or the bus is down"),
    504: error("No gateway agent answered in time (none runs, or all are busy)"),
}


class _TooLarge(ApiError):
    status = 413
    code = "too_large"


class _Unsupported(ApiError):
    status = 415
    code = "unsupported_media_type"


class _Unavailable(ApiError):
    status = 503
    code = "unavailable"


class _NoGateway(ApiError):
    status = 504
    code = "no_gateway"


@router.post(
    "/detect",
    summary="Detect objects in one image now, on a gateway agent",
    responses=RESPONSES,
    openapi_extra=IMAGE_BODY,
)
async def detect(request: Request, _: ViewerPrincipal) -> JSONResponse:
    """Send the image bytes as the body (`image/jpeg`, `image/png`), or a form with a file
    field `image`. The answer is the gateway's: `model`, `width`, `height`, `objects`
    (boxes as fractions of the image), `latency_ms`, and `gateway`; a bad image is the
    gateway's 400 with its reason."""
    mark_audited(request)  # a detection changes nothing: no audit row per image
    detector: DetectRouter | None = getattr(request.app.state, "detect", None)
    if detector is None:
        raise _Unavailable("this hub process has no bus to reach gateway agents through")
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() not in ACCEPTED:
        raise _Unsupported(
            f"Content-Type {content_type[:80]!r} is not accepted; send one of "
            + ", ".join(ACCEPTED)
        )
    image = await _body(request)
    try:
        reply = await detector.detect(image, content_type)
    except DetectTimeout as exc:
        raise _NoGateway(str(exc)) from None
    except BusError as exc:
        raise _Unavailable(f"the bus is down: {exc}") from None
    body: dict[str, Any] = {**reply.body, "gateway": reply.gateway}
    return JSONResponse(body, status_code=reply.status)


async def _body(request: Request) -> bytes:
    """The body, refused (413) as soon as it passes the limit, and (400) when empty."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_DETECT_IMAGE_BYTES:
        raise _TooLarge(f"the body is {declared} bytes; at most {MAX_DETECT_IMAGE_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_DETECT_IMAGE_BYTES:
            raise _TooLarge(f"the body is over {MAX_DETECT_IMAGE_BYTES} bytes")
        chunks.append(chunk)
    if not size:
        raise ApiError("the image is empty (0 bytes)", code="empty_image")  # 400
    return b"".join(chunks)
