"""The rule engine: device traffic and liveness in, `Raise`/`Clear` decisions out.

Pure logic (no I/O): the worker feeds it decoded envelopes and, periodically,
each device's liveness, then stores what it decides. Deduplication per
(rule, device) happens where alerts are stored; the engine only avoids repeating
itself for level conditions (a metric above its threshold raises once per
crossing, not once per point).

Example:
    >>> from datetime import UTC, datetime
    >>> from hub.alerts.conditions import AlertSeverity, EventMatch
    >>> watch = EventMatch(events=["model_rejected"])
    >>> rule = Rule(1, "Model rejected", AlertSeverity.WARNING, watch)
    >>> engine = Engine(offline_after_s=60)
    >>> at = datetime(2026, 1, 1, tzinfo=UTC)
    >>> [type(a).__name__ for a in engine.on_event("amr-7", at, "model_rejected", {}, [rule])]
    ['Raise']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.alerts.conditions import (
    BUFFER_OVERFLOW,
    RULE_FIRED,
    AlertSeverity,
    BufferDropping,
    Condition,
    DeviceOffline,
    EventMatch,
    MetricThreshold,
    ZoneIntrusion,
)
from protocol.models import DeviceState, Envelope, Event, TelemetryBatch


@dataclass(frozen=True, slots=True)
class Rule:
    """An enabled rule as the engine sees it."""

    id: int
    name: str
    severity: AlertSeverity
    condition: Condition


@dataclass(frozen=True, slots=True)
class Raise:
    """Raise (or, when one is open, repeat) the alert of `rule` on `device`."""

    rule: Rule
    device: str
    at: datetime
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Clear:
    """The condition of `rule` no longer holds on `device`: resolve its open alert."""

    rule: Rule
    device: str
    at: datetime
    reason: str


Action = Raise | Clear


@dataclass(frozen=True, slots=True)
class Liveness:
    """What the hub last heard from a device (from `device_status`)."""

    device: str
    online: bool
    last_seen: datetime
    state_ts: datetime


def _truncate(detail: Mapping[str, Any], limit: int = 40) -> dict[str, Any]:
    return dict(list(detail.items())[:limit])


class Engine:
    """Decides alerts from device traffic; keeps the little memory level conditions need."""

    def __init__(self, *, offline_after_s: float) -> None:
        self.offline_after_s = offline_after_s
        # (rule id, device) -> tag set -> does the condition hold for those tags
        self._levels: dict[tuple[int, str], dict[tuple[tuple[str, str], ...], bool]] = {}
        self._dropped: dict[str, dict[str, int]] = {}
        self._offline: dict[tuple[int, str], bool] = {}

    def on_envelope(self, envelope: Envelope, rules: Sequence[Rule]) -> list[Action]:
        """Decisions for one uplink envelope (events, state and telemetry matter)."""
        body = envelope.body
        if isinstance(body, Event):
            return self.on_event(envelope.device, body.ts, str(body.type), body.detail, rules)
        if isinstance(body, DeviceState):
            return self.on_state(envelope.device, envelope.ts, body, rules)
        if isinstance(body, TelemetryBatch):
            actions: list[Action] = []
            for p in body.points:
                actions += self.on_metric(envelope.device, p.ts, p.metric, p.value, p.tags, rules)
            return actions
        return []

    def on_event(
        self,
        device: str,
        at: datetime,
        type_: str,
        detail: Mapping[str, Any],
        rules: Sequence[Rule],
    ) -> list[Action]:
        """Decisions for a device event."""
        actions: list[Action] = []
        for rule in rules:
            c = rule.condition
            if isinstance(c, ZoneIntrusion) and type_ == RULE_FIRED:
                actions += _zone(rule, c, device, at, detail)
            elif isinstance(c, EventMatch):
                if type_ in c.events:
                    message = f"{device}: {type_}" + _reason(detail)
                    actions.append(Raise(rule, device, at, message, _event(type_, detail)))
                elif type_ in c.resolve_on:
                    actions.append(Clear(rule, device, at, f"{type_} reported"))
            elif isinstance(c, BufferDropping) and type_ == BUFFER_OVERFLOW:
                message = f"{device}: outbox full, dropping data" + _reason(detail)
                actions.append(Raise(rule, device, at, message, _event(type_, detail)))
        return actions

    def on_state(
        self, device: str, at: datetime, state: DeviceState, rules: Sequence[Rule]
    ) -> list[Action]:
        """Decisions for a device state: growing drop counts raise `buffer_dropping`."""
        if state.buffer is None:
            return []
        now = {str(k): int(v) for k, v in state.buffer.dropped.items()}
        before = self._dropped.get(device)
        self._dropped[device] = now
        if before is None:
            return []
        actions: list[Action] = []
        for rule in rules:
            c = rule.condition
            if not isinstance(c, BufferDropping):
                continue
            classes: list[str] = list(c.classes) or list(now)
            grew = {k: now.get(k, 0) - before.get(k, 0) for k in classes}
            grew = {k: n for k, n in grew.items() if n > 0}
            if grew:
                what = ", ".join(f"{n} {k}" for k, n in sorted(grew.items()))
                message = f"{device}: outbox full, dropped {what}"
                detail = {"dropped": now, "new": grew, "depth": state.buffer.depth}
                actions.append(Raise(rule, device, at, message, detail))
        return actions

    def on_metric(
        self,
        device: str,
        at: datetime,
        metric: str,
        value: float,
        tags: Mapping[str, str],
        rules: Sequence[Rule],
    ) -> list[Action]:
        """Decisions for a telemetry point: raise on crossing, clear on coming back."""
        actions: list[Action] = []
        for rule in rules:
            c = rule.condition
            if not isinstance(c, MetricThreshold) or c.metric != metric:
                continue
            if any(tags.get(k) != v for k, v in c.tags.items()):
                continue
            action = self._level(rule, c, device, at, value, tags)
            if action is not None:
                actions.append(action)
        return actions

    def _level(
        self,
        rule: Rule,
        c: MetricThreshold,
        device: str,
        at: datetime,
        value: float,
        tags: Mapping[str, str],
    ) -> Action | None:
        key = (rule.id, device)
        known = key in self._levels
        levels = self._levels.setdefault(key, {})
        before = any(levels.values())
        tagkey = tuple(sorted(tags.items()))
        if c.holds(value):
            levels[tagkey] = True
        elif c.cleared(value):
            levels[tagkey] = False
        after = any(levels.values())
        if after and not before:
            where = "".join(f" {k}={v}" for k, v in sorted(tags.items()))
            message = f"{device}: {c.metric}{where} = {value:g} ({c.op} {c.threshold:g})"
            detail = {"metric": c.metric, "value": value, "tags": dict(tags)}
            return Raise(rule, device, at, message, detail)
        # An unknown level (first point since the worker started) clears what may be open.
        if not after and (before or not known) and tagkey in levels:
            return Clear(rule, device, at, f"{c.metric} = {value:g}")
        return None

    def offline(
        self, statuses: Iterable[Liveness], rules: Sequence[Rule], now: datetime
    ) -> list[Action]:
        """Decisions of the periodic liveness check: going offline too long raises, back clears.

        Each change is decided once: a device that stays offline is not raised again after
        an operator resolved its alert.
        """
        checks = [(r, r.condition) for r in rules if isinstance(r.condition, DeviceOffline)]
        actions: list[Action] = []
        for status in statuses:
            since = status.last_seen if status.online else max(status.state_ts, status.last_seen)
            silent = (now - since).total_seconds()
            for rule, c in checks:
                assert isinstance(c, DeviceOffline)  # noqa: S101 - filtered above
                after = c.after_s or self.offline_after_s
                key = (rule.id, status.device)
                was = self._offline.get(key)
                if silent >= after and was is not True:
                    self._offline[key] = True
                    message = f"{status.device}: offline for {silent:.0f} s"
                    detail = {"last_seen": status.last_seen.isoformat(), "after_s": after}
                    actions.append(Raise(rule, status.device, now, message, detail))
                elif silent < after and status.online and was is not False:
                    self._offline[key] = False
                    actions.append(Clear(rule, status.device, now, "device back online"))
        return actions


def _reason(detail: Mapping[str, Any]) -> str:
    reason = detail.get("reason")
    return f" ({str(reason)[:200]})" if reason else ""


def _event(type_: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    return {"event": type_, **_truncate(detail)}


def _zone(
    rule: Rule, c: ZoneIntrusion, device: str, at: datetime, detail: Mapping[str, Any]
) -> list[Action]:
    zone = detail.get("zone")
    if not isinstance(zone, str) or (c.zones and zone not in c.zones):
        return []
    raw = detail.get("classes")
    classes = [str(x) for x in raw] if isinstance(raw, list) else []
    if c.classes and not set(c.classes) & set(classes):
        return []
    what = "/".join(classes) or "object"
    message = f"{device}: {what} in zone {zone}" + _reason(detail)
    return [Raise(rule, device, at, message, _event(RULE_FIRED, detail))]
