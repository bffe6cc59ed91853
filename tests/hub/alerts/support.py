"""Envelopes as devices send them, and the default rules as the migration seeds them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.alerts.conditions import AlertSeverity, parse_condition
from hub.alerts.engine import Rule
from hub.storage.migrations.versions import r0009_drift_references as r0009
from hub.storage.migrations.versions.r0006_alerts import DEFAULT_RULES
from protocol import Channel, encode
from protocol.models import (
    BufferStatus,
    DeviceState,
    Envelope,
    Event,
    TelemetryBatch,
    TelemetryPoint,
)

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
_seq = itertools.count(1)


def at(seconds: float) -> datetime:
    """`T0` plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def default_rules() -> dict[str, Rule]:
    """The seeded rules by name, with the ids they get in a fresh database (1, 2, ...), as
    the migrations after 0006 left them."""
    rules = {}
    for i, r in enumerate(DEFAULT_RULES, start=1):
        condition = r0009.AFTER if r["name"] == r0009.RULE else r["condition"]
        rules[r["name"]] = Rule(
            i, r["name"], AlertSeverity(r["severity"]), parse_condition(condition)
        )
    return rules


def envelope(device: str, body: Any, ts: datetime = T0) -> Envelope:
    """An uplink envelope carrying `body`."""
    kind = {
        Event: Channel.EVENTS,
        DeviceState: Channel.STATE,
        TelemetryBatch: Channel.TELEMETRY,
    }[type(body)]
    return Envelope(device=device, stream="s1", seq=next(_seq), ts=ts, kind=kind, body=body)


def event(device: str, type_: str, ts: datetime = T0, **detail: Any) -> Envelope:
    """A device event envelope."""
    return envelope(device, Event(ts=ts, type=type_, severity="warning", detail=detail), ts)


def danger(device: str, ts: datetime = T0, zone: str = "dock", cls: str = "person") -> Envelope:
    """A `rule_fired` event of a person in a danger zone, as the agent's rules send it."""
    return event(
        device,
        "rule_fired",
        ts,
        rule="person-in-dock",
        action="stop",
        camera="front",
        classes=[cls],
        count=1,
        conf=0.91,
        zone=zone,
        reason=f"1 x {cls} in {zone}, conf 0.91, 3 frames",
    )


def metric(device: str, name: str, value: float, ts: datetime = T0, **tags: str) -> Envelope:
    """A telemetry batch of one point."""
    point = TelemetryPoint(ts=ts, metric=name, value=value, tags=tags)
    return envelope(device, TelemetryBatch(points=[point]), ts)


def state(device: str, ts: datetime = T0, **dropped: int) -> Envelope:
    """An online state with the given outbox drop counts."""
    buffer = BufferStatus(depth=10, dropped=dropped)
    return envelope(device, DeviceState(online=True, buffer=buffer), ts)


def wire(env: Envelope) -> bytes:
    """The envelope's bytes, as the bus carries them."""
    return encode(env)
