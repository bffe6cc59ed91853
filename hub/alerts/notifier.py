"""Notifications: webhooks (HMAC-signed, retried with capped backoff) and e-mail (SMTP).

Every attempt lands in the delivery log (`alert_deliveries`). A webhook POSTs the
alert's API JSON with these headers:

| header | value |
|---|---|
| `X-Outpost-Timestamp` | Unix seconds when this attempt was signed |
| `X-Outpost-Signature` | `sha256=` + hex HMAC-SHA256, channel secret, over `TIMESTAMP.BODY` |
| `X-Outpost-Event` | `alert.raised` |
| `X-Outpost-Delivery` | `{alert id}-{channel id}`, the same on every retry |

Example:
    >>> sig = signature("s3cret", "1767225600", b'{"id":1}')
    >>> sig.startswith("sha256="), verify("s3cret", "1767225600", b'{"id":1}', sig)
    (True, True)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.alerts.conditions import AlertSeverity
from hub.settings import AlertsSection
from hub.storage.db import transaction
from hub.storage.repositories import alerts as repo
from hub.storage.repositories.alerts import AlertRecord, ChannelRecord
from protocol.backoff import Backoff

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Outpost-Signature"
TIMESTAMP_HEADER = "X-Outpost-Timestamp"
RAISED = "raised"
SENDERS = 4
"""Deliveries in flight at once."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 with `secret` over `timestamp`, a dot, then the raw body."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether `header` is the signature of `body` at `timestamp` (constant-time compare)."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one try; `retriable` failures are tried again."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    retriable: bool = False
    duration_ms: float = 0.0


Send = Callable[[], Awaitable[Attempt]]
Sleep = Callable[[float], Awaitable[None]]
LogAttempt = Callable[[int, Attempt], Awaitable[None]]


async def deliver(
    send: Send, *, retries: int, backoff: Backoff, sleep: Sleep, log: LogAttempt
) -> Attempt:
    """Try `send` until it succeeds, fails for good, or `retries` retries are spent.

    Each attempt is logged (1-based) before the pause that follows a retriable failure.
    """
    attempt = 1
    while True:
        outcome = await send()
        await log(attempt, outcome)
        if outcome.ok or not outcome.retriable or attempt > retries:
            return outcome
        await sleep(backoff.next())
        attempt += 1


class WebhookSender:
    """POSTs signed alert JSON to a channel's URL."""

    def __init__(
        self, client: httpx.AsyncClient, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._client, self._clock = client, clock

    async def send(self, channel: ChannelRecord, body: bytes, delivery: str) -> Attempt:
        """One attempt; 2xx is success, 5xx, 408, 429 and network errors are retriable."""
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "outpost-hub",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(channel.secret or "", timestamp, body),
            "X-Outpost-Event": f"alert.{RAISED}",
            "X-Outpost-Delivery": delivery,
        }
        started = time.perf_counter()
        try:
            response = await self._client.post(channel.url or "", content=body, headers=headers)
        except httpx.HTTPError as exc:
            took = (time.perf_counter() - started) * 1000
            return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500], True, took)
        took = (time.perf_counter() - started) * 1000
        code = response.status_code
        if 200 <= code < 300:
            return Attempt(True, code, None, False, took)
        retriable = code >= 500 or code in (408, 429)
        return Attempt(False, code, f"HTTP {code}: {response.text[:200]}", retriable, took)


class EmailSender:
    """Sends an alert as a plain-text e-mail through the configured SMTP server."""

    def __init__(self, settings: AlertsSection) -> None:
        self._cfg = settings

    def message(self, channel: ChannelRecord, alert: AlertRecord, body: bytes) -> EmailMessage:
        """The e-mail for `alert` (subject: severity, rule and device)."""
        msg = EmailMessage()
        msg["From"] = self._cfg.smtp_from
        msg["To"] = ", ".join(channel.recipients)
        msg["Subject"] = f"[Outpost] {alert.severity.upper()}: {alert.rule_name} on {alert.device}"
        lines = [
            alert.message,
            "",
            f"Rule:     {alert.rule_name}",
            f"Device:   {alert.device} (site {alert.site_id or '-'})",
            f"Severity: {alert.severity}",
            f"Raised:   {alert.raised_at.isoformat()}",
            f"Alert id: {alert.id}",
            "",
            orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode(),
        ]
        msg.set_content("\n".join(lines))
        return msg

    async def send(self, channel: ChannelRecord, alert: AlertRecord, body: bytes) -> Attempt:
        """One attempt; connection trouble and 4xx SMTP replies are retriable."""
        cfg = self._cfg
        if not cfg.smtp_host:
            return Attempt(False, None, "no SMTP server: set [alerts] smtp_host", False)
        started = time.perf_counter()
        try:
            await aiosmtplib.send(
                self.message(channel, alert, body),
                hostname=cfg.smtp_host,
                port=cfg.smtp_port,
                start_tls=cfg.smtp_starttls,
                username=cfg.smtp_username or None,
                password=cfg.smtp_password or None,
                timeout=cfg.smtp_timeout_s,
            )
        except aiosmtplib.SMTPResponseException as exc:
            took = (time.perf_counter() - started) * 1000
            why = f"SMTP {exc.code}: {exc.message}"[:500]
            return Attempt(False, exc.code, why, 400 <= exc.code < 500, took)
        except (aiosmtplib.SMTPException, OSError) as exc:
            took = (time.perf_counter() - started) * 1000
            return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500], True, took)
        return Attempt(True, 250, None, False, (time.perf_counter() - started) * 1000)


@dataclass(frozen=True, slots=True)
class _Job:
    alert: AlertRecord
    body: bytes


class Notifier:
    """Sends each raised alert to every enabled channel at or above its `min_severity`.

    `submit` queues; `run` delivers until cancelled. Deliveries live in memory: a
    worker that stops loses the ones not yet sent (the alert itself is stored).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: AlertsSection,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._cfg, self._sleep, self._clock = sessions, settings, sleep, clock
        self._client = client
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=10_000)
        self.email = EmailSender(settings)

    def submit(self, alert: AlertRecord, body: bytes) -> None:
        """Queue the notifications of a newly raised alert (dropped, logged, when full)."""
        try:
            self._queue.put_nowait(_Job(alert, body))
        except asyncio.QueueFull:
            logger.error(  # noqa: TRY400 - a full queue, not an error worth a traceback
                "notification queue full: alert %s not notified", alert.id
            )

    async def run(self) -> None:
        """Deliver queued notifications until cancelled."""
        timeout = httpx.Timeout(self._cfg.webhook_timeout_s)
        async with (
            httpx.AsyncClient(timeout=timeout) if self._client is None else _Borrowed(self._client)
        ) as client:
            webhooks = WebhookSender(client)
            async with asyncio.TaskGroup() as tg:
                for n in range(SENDERS):
                    tg.create_task(self._drain(webhooks), name=f"alert-notify-{n}")

    async def _drain(self, webhooks: WebhookSender) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self.notify(webhooks, job.alert, job.body)
            except Exception:
                logger.exception("notifying alert %s failed", job.alert.id)
            finally:
                self._queue.task_done()

    async def notify(self, webhooks: WebhookSender, alert: AlertRecord, body: bytes) -> None:
        """Deliver `alert` to its channels, one after the other."""
        async with transaction(self._sessions) as session:
            channels = await repo.list_channels(session, enabled_only=True)
        rank = AlertSeverity(alert.severity).rank
        for channel in channels:
            if AlertSeverity(channel.min_severity).rank > rank:
                continue
            send = self._sender(webhooks, channel, alert, body)
            outcome = await deliver(
                send,
                retries=self._cfg.webhook_retries,
                backoff=Backoff(self._cfg.retry_initial_s, self._cfg.retry_max_s),
                sleep=self._sleep,
                log=self._logger(alert, channel),
            )
            if not outcome.ok:
                logger.warning(
                    "alert %s not delivered to %s %s: %s",
                    alert.id,
                    channel.kind,
                    channel.name,
                    outcome.error,
                )

    def _sender(
        self, webhooks: WebhookSender, channel: ChannelRecord, alert: AlertRecord, body: bytes
    ) -> Send:
        if channel.kind == "webhook":
            delivery = f"{alert.id}-{channel.id}"
            return lambda: webhooks.send(channel, body, delivery)
        return lambda: self.email.send(channel, alert, body)

    def _logger(self, alert: AlertRecord, channel: ChannelRecord) -> LogAttempt:
        async def log(attempt: int, outcome: Attempt) -> None:
            values: dict[str, Any] = {
                "alert_id": alert.id,
                "channel_id": channel.id,
                "channel_kind": channel.kind,
                "event": RAISED,
                "attempt": attempt,
                "at": self._clock(),
                "ok": outcome.ok,
                "status_code": outcome.status_code,
                "error": outcome.error,
                "duration_ms": round(outcome.duration_ms, 3),
            }
            async with transaction(self._sessions) as session:
                await repo.insert_delivery(session, values=values)

        return log


class _Borrowed:
    """A client the caller owns: entered and left without closing it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def __aenter__(self) -> httpx.AsyncClient:
        return self._client

    async def __aexit__(self, *_: object) -> None:
        return None
