"""Notifications to real receivers: a webhook server that checks the HMAC signature, and an
aiosmtpd SMTP server; retries and the delivery log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from tests.hub.alerts.rig import AlertRig, NoSleep, alert_rig
from tests.hub.alerts.support import danger, metric
from tests.integration.hub.alert_receivers import smtp_server, webhook_receiver

SECRET = "whsec-0123456789abcdef"


@asynccontextmanager
async def notifying(
    tmp_path: Path, alerts: dict[str, Any], sleep: NoSleep | None = None
) -> AsyncIterator[AlertRig]:
    """A SQLite alert rig whose notifier runs for the block."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    try:
        await migrate(engine)
        async with alert_rig(engine, tmp_path / "data", alerts=alerts, sleep=sleep) as rig:
            task = asyncio.create_task(rig.worker.notifier.run(), name="notifier")
            try:
                yield rig
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        await engine.dispose()


async def _wait(event: Any) -> None:
    assert await asyncio.to_thread(event.wait, 10.0), "nothing arrived in time"


async def _deliveries(rig: AlertRig, alert_id: int, count: int) -> list[dict[str, Any]]:
    for _ in range(100):
        items = (await rig.call("GET", "vic", f"/alerts/{alert_id}/deliveries")).json()["items"]
        if len(items) >= count:
            return list(items)
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} deliveries logged")


async def test_a_danger_zone_alert_reaches_the_webhook_signed_and_the_mailbox(
    tmp_path: Path,
) -> None:
    with webhook_receiver(SECRET) as hook, smtp_server() as (mailbox, port):
        alerts = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_from": "hub@plant.test"}
        async with notifying(tmp_path, alerts) as rig:
            webhook = {"name": "ops", "kind": "webhook", "url": hook.url, "secret": SECRET}
            email = {"name": "safety", "kind": "email", "recipients": ["safety@plant.test"]}
            for channel in (webhook, email):
                created = await rig.call("POST", "root", "/alert-channels", channel)
                assert created.status_code == 201, created.text
            (alert,) = await rig.feed(danger(rig.mine))
            await _wait(hook.event)
            await _wait(mailbox.event)
            logged = await _deliveries(rig, alert.id, 2)

    (delivery,) = hook.received
    assert delivery.valid, delivery.headers
    body = orjson.loads(delivery.body)
    assert (body["id"], body["device"], body["site"]) == (alert.id, rig.mine, "plant-a")
    assert (body["rule"], body["severity"], body["state"]) == (
        "Person in danger zone",
        "critical",
        "active",
    )
    assert delivery.headers["X-Outpost-Event"] == "alert.raised"
    ((sender, rcpts, message),) = mailbox.messages
    assert (sender, rcpts) == ("hub@plant.test", ["safety@plant.test"])
    assert message["Subject"] == f"[Outpost] CRITICAL: Person in danger zone on {rig.mine}"
    text = message.get_payload(decode=True)
    assert isinstance(text, bytes)
    assert b"person in zone dock" in text
    assert sorted((d["channel_kind"], d["ok"], d["attempt"]) for d in logged) == [
        ("email", True, 1),
        ("webhook", True, 1),
    ]


async def test_a_failing_webhook_is_retried_with_backoff_and_every_attempt_logged(
    tmp_path: Path,
) -> None:
    sleep = NoSleep()
    alerts = {"webhook_retries": 5, "retry_initial_s": 1, "retry_max_s": 2}
    with webhook_receiver(SECRET, failures=3) as hook:
        async with notifying(tmp_path, alerts, sleep) as rig:
            hook_channel = {"name": "ops", "kind": "webhook", "url": hook.url, "secret": SECRET}
            await rig.call("POST", "root", "/alert-channels", hook_channel)
            (alert,) = await rig.feed(danger(rig.mine))
            await _wait(hook.event)
            logged = await _deliveries(rig, alert.id, 4)
    assert [(d["attempt"], d["ok"], d["status_code"]) for d in logged] == [
        (1, False, 500),
        (2, False, 500),
        (3, False, 500),
        (4, True, 204),
    ]
    assert all(d.valid for d in hook.received)
    # the same delivery id on every retry, so a receiver can drop duplicates
    assert {d.headers["X-Outpost-Delivery"] for d in hook.received} == {f"{alert.id}-1"}
    assert len(sleep.slept) == 3
    assert all(0.5 <= s <= 2 for s in sleep.slept)


async def test_channels_get_only_alerts_at_or_above_their_severity(tmp_path: Path) -> None:
    with webhook_receiver(SECRET) as hook:
        async with notifying(tmp_path, {}) as rig:
            channel = {
                "name": "pager",
                "kind": "webhook",
                "url": hook.url,
                "secret": SECRET,
                "min_severity": "critical",
            }
            await rig.call("POST", "root", "/alert-channels", channel)
            (battery,) = await rig.feed(
                metric(rig.mine, "robot.battery.percent", 50),
                metric(rig.mine, "robot.battery.percent", 5),
            )  # warning: not for this channel
            (zone,) = await rig.feed(danger(rig.mine))  # critical
            await _wait(hook.event)
            assert await _deliveries(rig, zone.id, 1)
            items = (await rig.call("GET", "vic", f"/alerts/{battery.id}/deliveries")).json()
    assert [orjson.loads(d.body)["id"] for d in hook.received] == [zone.id]
    assert items["items"] == []
