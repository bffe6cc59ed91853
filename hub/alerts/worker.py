"""The alert worker: device traffic on the bus → rules → alerts, published and notified.

It reads `system.events`, `device.state` and `telemetry.raw` in its own consumer
group (`[alerts] group`), so it sees every record the database writer sees without
slowing it. Per batch: the engine decides, the decisions are stored in one
transaction (deduplicated per (rule, device) while open), every changed alert is
published on `alerts` as the API's JSON, the offsets are committed, and newly
raised alerts are queued for notification. Every `evaluation_interval_s` it also
checks device liveness for the `device_offline` rules.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.alerts.conditions import AlertSeverity, DeviceOffline, parse_condition
from hub.alerts.engine import Action, Clear, Engine, Liveness, Raise, Rule
from hub.alerts.notifier import Notifier
from hub.api.schemas.alerts import alert_json
from hub.bus.base import Bus, BusError, Record
from hub.bus.topics import ALERTS, DEVICE_STATE, EVENTS, TELEMETRY_RAW
from hub.settings import HubSettings
from hub.storage.db import transaction
from hub.storage.errors import StorageUnavailable
from hub.storage.repositories import alerts as repo
from hub.storage.repositories.alerts import AlertRecord, NewAlert
from protocol import DecodeError, Envelope, decode_envelope
from protocol.backoff import Backoff

logger = logging.getLogger(__name__)

TOPICS = (EVENTS, DEVICE_STATE, TELEMETRY_RAW)
RULES_TTL_S = 2.0
"""How long a loaded rule set is used before it is read again (edits apply within it)."""


def to_rule(record: repo.RuleRecord) -> Rule | None:
    """The engine's form of a stored rule; None (logged) when its condition no longer parses."""
    try:
        condition = parse_condition(record.condition)
    except ValidationError as exc:
        logger.error(  # noqa: TRY400 - the reason is in the message
            "alert rule %s has an invalid condition: %s", record.id, str(exc)[:300]
        )
        return None
    return Rule(record.id, record.name, AlertSeverity(record.severity), condition)


class AlertWorker:
    """Evaluates alert rules on the bus's device traffic (see the module docstring)."""

    def __init__(
        self,
        settings: HubSettings,
        bus: Bus,
        sessions: async_sessionmaker[AsyncSession],
        *,
        notifier: Notifier | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings, self._bus, self._sessions, self._clock = settings, bus, sessions, clock
        self._cfg = settings.alerts
        self.engine = Engine(offline_after_s=self._cfg.offline_after_s)
        self.notifier = notifier or Notifier(sessions, self._cfg)
        self._rules: list[Rule] = []
        self._rules_at = -RULES_TTL_S

    async def run(self) -> None:
        """Evaluate, check liveness and notify until cancelled, riding out outages."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(), name="alerts-consume")
            tg.create_task(self._liveness_loop(), name="alerts-liveness")
            tg.create_task(self.notifier.run(), name="alerts-notify")

    async def _consume(self) -> None:
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                async with self._bus.consumer(TOPICS, group=self._cfg.group) as consumer:
                    while True:
                        records = await consumer.poll(max_records=1000, timeout_s=1.0)
                        if records:
                            await self.handle(records)
                            await consumer.commit()
                            backoff.reset()
            except (BusError, StorageUnavailable) as exc:
                delay = backoff.next()
                logger.warning(
                    "alert worker paused %.1f s: %s: %s", delay, type(exc).__name__, str(exc)[:300]
                )
                await asyncio.sleep(delay)

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.evaluation_interval_s)
            try:
                await self.check_liveness()
            except Exception:
                logger.exception("alert liveness check failed; retrying at the next interval")

    async def handle(self, records: Sequence[Record]) -> list[AlertRecord]:
        """Evaluate one batch; returns the alerts it raised, repeated or resolved."""
        rules = await self.rules()
        actions: list[Action] = []
        for record in records:
            envelope = _decode(record)
            if envelope is not None and rules:
                actions += self.engine.on_envelope(envelope, rules)
        return await self.apply(actions)

    async def check_liveness(self, now: datetime | None = None) -> list[AlertRecord]:
        """Raise `device_offline` alerts for silent devices, resolve those back online."""
        rules = [r for r in await self.rules() if isinstance(r.condition, DeviceOffline)]
        if not rules:
            return []
        async with transaction(self._sessions) as session:
            rows = await repo.liveness(session)
        statuses = [Liveness(r.device, r.online, r.last_seen, r.state_ts) for r in rows]
        return await self.apply(self.engine.offline(statuses, rules, now or self._clock()))

    async def rules(self) -> list[Rule]:
        """The enabled rules, read again when older than `RULES_TTL_S`."""
        if time.monotonic() - self._rules_at >= RULES_TTL_S:
            async with transaction(self._sessions) as session:
                records = await repo.list_rules(session, enabled_only=True)
            self._rules = [r for r in map(to_rule, records) if r is not None]
            self._rules_at = time.monotonic()
        return self._rules

    def forget_rules(self) -> None:
        """Read the rules again on the next batch (after an edit, in tests)."""
        self._rules_at = -RULES_TTL_S

    async def apply(self, actions: Sequence[Action]) -> list[AlertRecord]:
        """Store the decisions, publish the changed alerts, queue the new ones' notifications."""
        if not actions:
            return []
        changed: list[AlertRecord] = []
        raised: list[AlertRecord] = []
        async with transaction(self._sessions) as session:
            sites = await repo.device_sites(session, devices=[a.device for a in actions])
            for action in actions:
                if isinstance(action, Raise):
                    alert, created = await repo.raise_alert(
                        session, alert=_new(action, sites.get(action.device, ""))
                    )
                    changed.append(alert)
                    if created:
                        raised.append(alert)
                else:
                    resolved = await _resolve(session, action)
                    if resolved is not None:
                        changed.append(resolved)
        latest = {a.id: a for a in changed}  # one record per alert: its last state
        await self._bus.produce_many(
            [(ALERTS, a.device.encode(), alert_json(a)) for a in latest.values()]
        )
        for alert in raised:
            logger.info("alert %s raised: %s", alert.id, alert.message[:200])
            self.notifier.submit(latest[alert.id], alert_json(latest[alert.id]))
        return list(latest.values())


def _new(action: Raise, site_id: str) -> NewAlert:
    return NewAlert(
        rule_id=action.rule.id,
        rule_name=action.rule.name,
        rule_type=action.rule.condition.type,
        device=action.device,
        site_id=site_id,
        severity=action.rule.severity.value,
        message=action.message[:2000],
        detail=action.detail,
        at=action.at,
    )


async def _resolve(session: AsyncSession, action: Clear) -> AlertRecord | None:
    alert = await repo.open_alert(session, rule_id=action.rule.id, device=action.device)
    if alert is None:
        return None
    logger.info("alert %s resolved: %s", alert.id, action.reason[:200])
    by = f"auto: {action.reason}"[:128]
    return await repo.set_state(session, alert_id=alert.id, state="resolved", by=by, at=action.at)


def _decode(record: Record) -> Envelope | None:
    try:
        return decode_envelope(record.value)
    except DecodeError:  # ingest validated it; the writer dead-letters it
        return None
