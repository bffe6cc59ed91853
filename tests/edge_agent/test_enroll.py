"""Enrollment errors in plain words, for the hub answers the real responder does not give."""

from __future__ import annotations

import re

import httpx
import pytest

from edge_agent.enroll import (
    EnrollmentError,
    HubUnreachableError,
    cleartext_warning,
    enroll,
    normalize_hub_url,
)
from protocol.signing import generate_private_key, public_key_to_text

KEY = public_key_to_text(generate_private_key().public_key())


def answering(response: httpx.Response) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: response)


def enroll_against(transport: httpx.MockTransport, hub: str = "http://hub:8080/") -> None:
    enroll(hub, "t", name="amr", public_key=KEY, transport=transport)


@pytest.mark.parametrize(
    ("response", "words", "retriable"),
    [
        (httpx.Response(404), "has no Outpost enrollment endpoint", False),
        (httpx.Response(503, json={"detail": "database down"}), "database down", True),
        (httpx.Response(500, text="boom"), "try again later", True),
        (
            httpx.Response(308, headers={"location": "https://hub:8443/api/v1/enroll"}),
            "redirects to https://hub:8443",
            False,
        ),
        (httpx.Response(422, json={"detail": [{"msg": "bad"}]}), "refused the request", False),
        (httpx.Response(201, json={"device_id": "AMR!"}), "invalid enrollment answer", False),
        (httpx.Response(201, text="not json"), "invalid enrollment answer", False),
        (httpx.Response(418), "unexpected answer from the hub at http://hub:8080: HTTP 418", False),
    ],
)
def test_hub_answers_become_plain_errors(
    response: httpx.Response, words: str, retriable: bool
) -> None:
    with pytest.raises(EnrollmentError, match=re.escape(words)) as caught:
        enroll_against(answering(response))
    assert caught.value.retriable is retriable


def test_the_request_is_the_contract() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"detail": "unknown"})

    with pytest.raises(EnrollmentError, match="not recognised"):
        enroll_against(httpx.MockTransport(handler))
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", "http://hub:8080/api/v1/enroll")
    assert set(httpx.Response(200, content=request.content).json()) == {
        "token",
        "name",
        "public_key",
        "agent_version",
    }


def test_a_timeout_is_retriable_and_says_how_long() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(HubUnreachableError, match=r"no answer within 3 s"):
        enroll(
            "http://hub",
            "t",
            name="amr",
            public_key=KEY,
            timeout=3,
            transport=httpx.MockTransport(handler),
        )


def test_values_the_hub_would_refuse_are_caught_before_sending() -> None:
    with pytest.raises(EnrollmentError, match="name"):
        enroll("http://hub", "t", name="", public_key=KEY, transport=answering(httpx.Response(500)))


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://hub.example.com/", "https://hub.example.com"),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
        (" https://example.com/outpost/ ", "https://example.com/outpost"),
    ],
)
def test_hub_urls_are_normalised(url: str, normal: str) -> None:
    assert normalize_hub_url(url) == normal


@pytest.mark.parametrize("url", ["hub:8080", "ftp://hub", "https://", "http://hub/?a=1"])
def test_bad_hub_urls_are_refused(url: str) -> None:
    with pytest.raises(EnrollmentError, match="hub URL"):
        normalize_hub_url(url)


def test_plain_http_to_another_machine_is_warned_about() -> None:
    assert cleartext_warning("http://127.0.0.1:8080") is None
    assert cleartext_warning("https://hub.example.com") is None
    assert "unencrypted" in (cleartext_warning("http://10.0.0.5:8080") or "")
