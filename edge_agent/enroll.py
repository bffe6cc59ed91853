"""Enrollment at the hub: one `POST /api/v1/enroll` that turns a token into an identity.

Every failure becomes an `EnrollmentError` that says in plain words what went
wrong and what to do; `retriable` tells whether trying again later can help.

Example (against a fake hub, as the tests do with a real one):
    >>> import httpx
    >>> from protocol.signing import generate_private_key, public_key_to_text
    >>> key = public_key_to_text(generate_private_key().public_key())
    >>> gone = httpx.MockTransport(lambda request: httpx.Response(410, json={"detail": "used"}))
    >>> enroll("http://hub:8080", "t", name="amr", public_key=key, transport=gone)
    Traceback (most recent call last):
    ...
    edge_agent.enroll.EnrollmentError: enrollment token already used or expired — ...
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import httpx
from pydantic import ValidationError

from edge_agent import __version__
from edge_agent.errors import AgentError
from protocol.enrollment import (
    ENROLL_CREATED,
    ENROLL_INVALID,
    ENROLL_PATH,
    ENROLL_TOKEN_GONE,
    ENROLL_UNKNOWN_TOKEN,
    EnrollRequest,
    EnrollResponse,
)

logger = logging.getLogger(__name__)

NEW_TOKEN_HINT = "ask the hub operator for a new one (`outpost hub token create`)"  # noqa: S105
TOKEN_GONE = f"enrollment token already used or expired — {NEW_TOKEN_HINT}"
TOKEN_UNKNOWN = (
    "enrollment token not recognised by the hub — check that it was copied whole, or "
    + NEW_TOKEN_HINT
)
_DETAIL_CHARS = 200
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class EnrollmentError(AgentError):
    """Enrollment failed; the message says why in plain words and what to do."""


class HubUnreachableError(EnrollmentError):
    """The hub could not be reached or failed; trying again later may help."""

    retriable: ClassVar[bool] = True


def normalize_hub_url(url: str) -> str:
    """`http(s)://host[:port][/prefix]` without a trailing slash; `EnrollmentError` otherwise."""
    text = url.strip().rstrip("/")
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise EnrollmentError(f"hub URL {url!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise EnrollmentError(
            f"hub URL {url!r} must look like https://hub.example.com or http://10.0.0.5:8080"
        )
    if parsed.query or parsed.fragment:
        raise EnrollmentError(f"hub URL {url!r} must not have a query or fragment")
    return text


def cleartext_warning(hub_url: str) -> str | None:
    """A warning when secrets would cross a network unencrypted (plain http, not loopback)."""
    parsed = httpx.URL(hub_url)
    if parsed.scheme != "http" or parsed.host in _LOOPBACK_HOSTS:
        return None
    return (
        f"warning: {hub_url} is plain http: the enrollment token and the MQTT password cross "
        "the network unencrypted; use https:// outside a lab"
    )


def enroll(
    hub_url: str,
    token: str,
    *,
    name: str,
    public_key: str,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> EnrollResponse:
    """Enroll this device at `hub_url` with a single-use `token`; the hub's answer on success."""
    base = normalize_hub_url(hub_url)
    body = _request_body(token=token, name=name, public_key=public_key)
    response = _post(base, body, timeout=timeout, transport=transport)
    return _parse(base, response)


def _request_body(*, token: str, name: str, public_key: str) -> dict[str, Any]:
    try:
        request = EnrollRequest(
            token=token, name=name, public_key=public_key, agent_version=__version__
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise EnrollmentError(f"cannot enroll with these values: {problems}") from None
    return request.model_dump(mode="json")


def _post(
    base: str, body: dict[str, Any], *, timeout: float, transport: httpx.BaseTransport | None
) -> httpx.Response:
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            return client.post(base + ENROLL_PATH, json=body)
    except httpx.TimeoutException:
        raise HubUnreachableError(
            f"cannot reach the hub at {base}: no answer within {timeout:g} s"
        ) from None
    except httpx.HTTPError as exc:
        raise HubUnreachableError(
            f"cannot reach the hub at {base}: {exc or type(exc).__name__} — check the URL, "
            "the network and that the hub is running"
        ) from None


def _parse(base: str, response: httpx.Response) -> EnrollResponse:
    status = response.status_code
    if status == ENROLL_CREATED:
        return _parse_created(base, response)
    logger.info("enrollment at %s refused: HTTP %d %.200s", base, status, response.text)
    if status == ENROLL_TOKEN_GONE:
        raise EnrollmentError(TOKEN_GONE)
    if status == ENROLL_UNKNOWN_TOKEN:
        raise EnrollmentError(TOKEN_UNKNOWN)
    if status == ENROLL_INVALID:
        raise EnrollmentError(f"the hub at {base} refused the request: {_detail(response)}")
    raise _unexpected(base, response)


def _parse_created(base: str, response: httpx.Response) -> EnrollResponse:
    try:
        return EnrollResponse.model_validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise EnrollmentError(
            f"the hub at {base} sent an invalid enrollment answer ({where}: {first['msg']}); "
            "is the hub the same Outpost version as this agent?"
        ) from None


def _unexpected(base: str, response: httpx.Response) -> EnrollmentError:
    status = response.status_code
    if response.is_redirect:
        location = response.headers.get("location", "?")
        return EnrollmentError(
            f"the hub at {base} redirects to {location}; pass that address with --hub"
        )
    if status == httpx.codes.NOT_FOUND:
        return EnrollmentError(
            f"{base} has no Outpost enrollment endpoint (HTTP 404 for {ENROLL_PATH}); "
            "is this the hub's address?"
        )
    if response.is_server_error:
        return HubUnreachableError(
            f"the hub at {base} failed (HTTP {status}: {_detail(response)}); try again later"
        )
    return EnrollmentError(f"unexpected answer from the hub at {base}: HTTP {status}")


def _detail(response: httpx.Response) -> str:
    """The hub's `detail`, as text, shortened; the raw body if it is not JSON."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    text = detail if isinstance(detail, str) else str(detail)
    return text[:_DETAIL_CHARS] or response.reason_phrase
