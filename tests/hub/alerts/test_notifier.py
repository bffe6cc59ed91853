"""Webhook signing, the retry loop with capped backoff (fake clock), HTTP outcomes."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import pytest

from hub.alerts.notifier import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Attempt,
    WebhookSender,
    deliver,
    signature,
    verify,
)
from hub.storage.repositories.alerts import ChannelRecord
from protocol.backoff import Backoff

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CHANNEL = ChannelRecord(
    1, "ops", "webhook", "http://receiver/hook", "a-secret-of-16-chars", [], "info", True, NOW, NOW
)


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":1,"device":"amr-7"}'
    expected = hmac.new(b"k" * 16, b"1767225600." + body, hashlib.sha256).hexdigest()
    assert signature("k" * 16, "1767225600", body) == f"sha256={expected}"


def test_verify_refuses_another_body_timestamp_or_secret() -> None:
    body = b'{"id":1}'
    good = signature("s" * 16, "100", body)
    assert verify("s" * 16, "100", body, good)
    assert not verify("s" * 16, "100", b'{"id":2}', good)
    assert not verify("s" * 16, "101", body, good)
    assert not verify("t" * 16, "100", body, good)


class Script:
    """A sender answering from a list of outcomes; records each call."""

    def __init__(self, *outcomes: Attempt) -> None:
        self.outcomes, self.calls = list(outcomes), 0

    async def __call__(self) -> Attempt:
        self.calls += 1
        return self.outcomes.pop(0)


class FakeClock:
    """`sleep` that only records how long it was asked to wait."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


FAIL = Attempt(ok=False, status_code=503, error="HTTP 503", retriable=True)
FATAL = Attempt(ok=False, status_code=400, error="HTTP 400", retriable=False)
OK = Attempt(ok=True, status_code=204)


async def _run(script: Script, clock: FakeClock, retries: int) -> tuple[Attempt, list[int]]:
    logged: list[int] = []

    async def log(attempt: int, outcome: Attempt) -> None:
        logged.append(attempt)

    backoff = Backoff(1.0, 8.0, rng=random.Random(7))
    final = await deliver(script, retries=retries, backoff=backoff, sleep=clock.sleep, log=log)
    return final, logged


async def test_retries_with_capped_exponential_backoff_until_success() -> None:
    clock, script = FakeClock(), Script(FAIL, FAIL, FAIL, FAIL, FAIL, OK)
    final, logged = await _run(script, clock, retries=10)
    assert final.ok
    assert script.calls == 6
    assert logged == [1, 2, 3, 4, 5, 6]
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0]  # doubled, then capped at 8 s
    assert len(clock.slept) == 5
    for slept, ceiling in zip(clock.slept, ceilings, strict=True):
        assert ceiling / 2 <= slept <= ceiling


async def test_gives_up_after_the_configured_retries() -> None:
    clock, script = FakeClock(), Script(FAIL, FAIL, FAIL, OK)
    final, logged = await _run(script, clock, retries=2)
    assert not final.ok
    assert logged == [1, 2, 3]
    assert len(clock.slept) == 2


async def test_a_permanent_failure_is_not_retried() -> None:
    clock, script = FakeClock(), Script(FATAL, OK)
    final, logged = await _run(script, clock, retries=5)
    assert final is FATAL
    assert logged == [1]
    assert clock.slept == []


@pytest.mark.parametrize(
    ("status", "ok", "retriable"),
    [
        (200, True, False),
        (204, True, False),
        (400, False, False),
        (404, False, False),
        (408, False, True),
        (429, False, True),
        (500, False, True),
        (503, False, True),
    ],
)
async def test_http_outcomes(status: int, ok: bool, retriable: bool) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, text="nope" if status >= 300 else "")

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        outcome = await WebhookSender(client, clock=lambda: 1767225600.5).send(
            CHANNEL, b'{"id":1}', "1-1"
        )
    assert (outcome.ok, outcome.retriable, outcome.status_code) == (ok, retriable, status)
    sent = seen[0]
    assert sent.headers[TIMESTAMP_HEADER] == "1767225600"
    assert verify(CHANNEL.secret or "", "1767225600", sent.content, sent.headers[SIGNATURE_HEADER])
    assert sent.headers["X-Outpost-Delivery"] == "1-1"


async def test_a_network_error_is_retriable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        outcome = await WebhookSender(client).send(CHANNEL, b"{}", "1-1")
    assert not outcome.ok
    assert outcome.retriable
    assert outcome.status_code is None
    assert outcome.error is not None
    assert "ConnectError" in outcome.error
