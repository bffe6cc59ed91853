"""`AlertService`: what the API does with alerts, rules, channels and the delivery log.

Alerts are read within the caller's site scope (an alert outside it answers 404,
like a missing one); acknowledging and resolving need the operator role (checked
by the routes) and are published on the `alerts` topic when the app has a bus.
Rules and channels are fleet-wide: admins write them, viewers read rules, and
channels (which hold webhook secrets and addresses) are admin-only.

Example:
    >>> async def ack(alerts: AlertService, principal, alert_id: int) -> str:
    ...     return (await alerts.acknowledge(principal, alert_id)).state  # 'acknowledged'
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.alerts.conditions import AlertState
from hub.api.schemas.alerts import ChannelIn, ChannelPatch, RuleIn, RulePatch, alert_json
from hub.auth.errors import Conflict, InvalidInput, NotFound
from hub.auth.principal import Principal
from hub.bus.base import Bus, BusError
from hub.bus.topics import ALERTS
from hub.storage.db import transaction
from hub.storage.repositories import alerts as repo
from hub.storage.repositories.alerts import (
    AlertFilter,
    AlertRecord,
    ChannelRecord,
    DeliveryRecord,
    RuleRecord,
)

logger = logging.getLogger(__name__)

MAX_PAGE = 500


def decode_cursor(cursor: str) -> int:
    """The alert id a cursor stands for; 422 when it is not one.

    Example:
        >>> decode_cursor("42")
        42
    """
    try:
        value = int(cursor)
    except ValueError:
        raise InvalidInput("not a cursor from this listing", field="cursor") from None
    if not 1 <= value < 2**63:
        raise InvalidInput("not a cursor from this listing", field="cursor")
    return value


class AlertService:
    """Alerts, rules, channels and deliveries for the API."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        bus: Bus | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions, self._bus, self._clock = sessions, bus, clock

    # --- alerts ----------------------------------------------------------------------------

    async def page(
        self, principal: Principal, where: AlertFilter, *, cursor: str | None, limit: int
    ) -> tuple[list[AlertRecord], str | None]:
        """A page of alerts in the caller's scope, newest first, and the next cursor."""
        before = decode_cursor(cursor) if cursor is not None else None
        limit = max(1, min(limit, MAX_PAGE))
        scoped = AlertFilter(
            sites=principal.sites,
            state=where.state,
            severity=where.severity,
            device=where.device,
            site=where.site,
            rule_id=where.rule_id,
        )
        async with transaction(self._sessions) as session:
            rows = await repo.list_alerts(session, where=scoped, before_id=before, limit=limit + 1)
        page = rows[:limit]
        return page, (str(page[-1].id) if len(rows) > limit else None)

    async def get(self, principal: Principal, alert_id: int) -> AlertRecord:
        """One alert; 404 when missing or outside the caller's scope."""
        async with transaction(self._sessions) as session:
            return await self._visible(session, principal, alert_id)

    async def acknowledge(self, principal: Principal, alert_id: int) -> AlertRecord:
        """Someone is on it: `active` → `acknowledged` (already acknowledged: unchanged)."""
        return await self._move(principal, alert_id, AlertState.ACKNOWLEDGED)

    async def resolve(self, principal: Principal, alert_id: int) -> AlertRecord:
        """Done: the alert closes, and the next firing of its rule opens a new one."""
        return await self._move(principal, alert_id, AlertState.RESOLVED)

    async def deliveries(self, principal: Principal, alert_id: int) -> list[DeliveryRecord]:
        """The alert's notification attempts."""
        async with transaction(self._sessions) as session:
            await self._visible(session, principal, alert_id)
            return await repo.list_deliveries(session, alert_id=alert_id)

    async def _move(self, principal: Principal, alert_id: int, to: AlertState) -> AlertRecord:
        async with transaction(self._sessions) as session:
            alert = await self._visible(session, principal, alert_id)
            if alert.state == AlertState.RESOLVED:
                raise Conflict(
                    f"alert {alert_id} is already resolved",
                    code="alert_resolved",
                    resolved_by=alert.resolved_by,
                )
            if alert.state == to:
                return alert
            moved = await repo.set_state(
                session, alert_id=alert_id, state=to.value, by=principal.username, at=self._clock()
            )
        assert moved is not None  # noqa: S101 - read in the same transaction
        await self._publish(moved)
        return moved

    async def _visible(
        self, session: AsyncSession, principal: Principal, alert_id: int
    ) -> AlertRecord:
        alert = await repo.get_alert(session, alert_id=alert_id)
        if alert is None or not principal.can_access_site(alert.site_id):
            raise NotFound(f"no alert {alert_id}", code="alert_not_found", alert=alert_id)
        return alert

    async def _publish(self, alert: AlertRecord) -> None:
        if self._bus is None:
            return
        try:
            await self._bus.produce(ALERTS, key=alert.device.encode(), value=alert_json(alert))
        except BusError as exc:  # stored already; live views catch up on their next read
            logger.warning("alert %s change not published: %s", alert.id, str(exc)[:300])

    # --- rules -----------------------------------------------------------------------------

    async def rules(self) -> list[RuleRecord]:
        """Every rule."""
        async with transaction(self._sessions) as session:
            return await repo.list_rules(session)

    async def rule(self, rule_id: int) -> RuleRecord:
        """One rule; 404 when missing."""
        async with transaction(self._sessions) as session:
            return await self._rule(session, rule_id)

    async def create_rule(self, body: RuleIn) -> RuleRecord:
        """A new rule; 409 when the name is taken."""
        now = self._clock()
        values = {
            "name": body.name,
            "type": body.condition.type,
            "condition": body.condition.model_dump(mode="json"),
            "severity": body.severity.value,
            "enabled": body.enabled,
            "description": body.description,
            "created_at": now,
            "updated_at": now,
        }
        async with transaction(self._sessions) as session:
            await self._name_free(session, body.name, None)
            rule_id = await repo.insert_rule(session, values=values)
            return await self._rule(session, rule_id)

    async def update_rule(self, rule_id: int, body: RulePatch) -> RuleRecord:
        """Change a rule; 404 when missing, 409 when the new name is taken."""
        values: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"condition"})
        if "severity" in values and body.severity is not None:
            values["severity"] = body.severity.value
        if body.condition is not None:
            values |= {
                "type": body.condition.type,
                "condition": body.condition.model_dump(mode="json"),
            }
        for key in ("name", "enabled", "severity", "description"):
            if key in values and values[key] is None:
                raise InvalidInput(f"{key} cannot be null", field=key)
        async with transaction(self._sessions) as session:
            await self._rule(session, rule_id)
            if body.name is not None:
                await self._name_free(session, body.name, rule_id)
            await repo.update_rule(
                session, rule_id=rule_id, values={**values, "updated_at": self._clock()}
            )
            return await self._rule(session, rule_id)

    async def delete_rule(self, rule_id: int) -> None:
        """Delete a rule (its alerts stay); 404 when missing."""
        async with transaction(self._sessions) as session:
            if not await repo.delete_rule(session, rule_id=rule_id):
                raise NotFound(f"no alert rule {rule_id}", code="rule_not_found", rule=rule_id)

    async def _rule(self, session: AsyncSession, rule_id: int) -> RuleRecord:
        rule = await repo.get_rule(session, rule_id=rule_id)
        if rule is None:
            raise NotFound(f"no alert rule {rule_id}", code="rule_not_found", rule=rule_id)
        return rule

    @staticmethod
    async def _name_free(session: AsyncSession, name: str, own: int | None) -> None:
        other = await repo.rule_named(session, name=name)
        if other is not None and other.id != own:
            raise Conflict(f"a rule is already called {name!r}", code="rule_exists", rule=other.id)

    # --- channels --------------------------------------------------------------------------

    async def channels(self) -> list[ChannelRecord]:
        """Every channel."""
        async with transaction(self._sessions) as session:
            return await repo.list_channels(session)

    async def channel(self, channel_id: int) -> ChannelRecord:
        """One channel; 404 when missing."""
        async with transaction(self._sessions) as session:
            return await self._channel(session, channel_id)

    async def create_channel(self, body: ChannelIn) -> ChannelRecord:
        """A new channel; 422 when a webhook lacks URL or secret or an e-mail lacks addresses."""
        now = self._clock()
        values: dict[str, Any] = {
            "name": body.name,
            "kind": body.kind,
            "url": str(body.url) if body.url is not None else None,
            "secret": body.secret,
            "recipients": list(body.recipients),
            "min_severity": body.min_severity.value,
            "enabled": body.enabled,
            "created_at": now,
            "updated_at": now,
        }
        _check_channel(values)
        async with transaction(self._sessions) as session:
            other = await repo.channel_named(session, name=body.name)
            if other is not None:
                raise Conflict(
                    f"a channel is already called {body.name!r}",
                    code="channel_exists",
                    channel=other.id,
                )
            channel_id = await repo.insert_channel(session, values=values)
            return await self._channel(session, channel_id)

    async def update_channel(self, channel_id: int, body: ChannelPatch) -> ChannelRecord:
        """Change a channel; 404 when missing, 409 when the new name is taken."""
        values: dict[str, Any] = body.model_dump(exclude_unset=True)
        if "url" in values and body.url is not None:
            values["url"] = str(body.url)
        if "min_severity" in values and body.min_severity is not None:
            values["min_severity"] = body.min_severity.value
        for key in ("name", "enabled", "min_severity", "recipients"):
            if key in values and values[key] is None:
                raise InvalidInput(f"{key} cannot be null", field=key)
        async with transaction(self._sessions) as session:
            current = await self._channel(session, channel_id)
            if body.name is not None:
                other = await repo.channel_named(session, name=body.name)
                if other is not None and other.id != channel_id:
                    raise Conflict(
                        f"a channel is already called {body.name!r}", code="channel_exists"
                    )
            merged = {
                "kind": current.kind,
                "url": current.url,
                "secret": current.secret,
                "recipients": current.recipients,
                **values,
            }
            _check_channel(merged)
            await repo.update_channel(
                session, channel_id=channel_id, values={**values, "updated_at": self._clock()}
            )
            return await self._channel(session, channel_id)

    async def delete_channel(self, channel_id: int) -> None:
        """Delete a channel (its delivery log stays); 404 when missing."""
        async with transaction(self._sessions) as session:
            if not await repo.delete_channel(session, channel_id=channel_id):
                raise NotFound(
                    f"no alert channel {channel_id}", code="channel_not_found", channel=channel_id
                )

    @staticmethod
    async def _channel(session: AsyncSession, channel_id: int) -> ChannelRecord:
        channel = await repo.get_channel(session, channel_id=channel_id)
        if channel is None:
            raise NotFound(
                f"no alert channel {channel_id}", code="channel_not_found", channel=channel_id
            )
        return channel


def _check_channel(values: dict[str, Any]) -> None:
    if values["kind"] == "webhook":
        if not values.get("url"):
            raise InvalidInput("a webhook channel needs a url", field="url")
        if not values.get("secret"):
            raise InvalidInput("a webhook channel needs a secret (16+ characters)", field="secret")
    elif not values.get("recipients"):
        raise InvalidInput("an e-mail channel needs recipients", field="recipients")
