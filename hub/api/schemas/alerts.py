"""Request and response bodies of the alert routes; `AlertOut` is also the bus's JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field

from hub.alerts.conditions import AlertSeverity, AlertState, Condition, ConditionType
from hub.api.schemas.auth import Body
from hub.storage.repositories.alerts import AlertRecord, ChannelRecord, DeliveryRecord, RuleRecord

Name = Annotated[str, Field(min_length=1, max_length=128)]
Email = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$", max_length=254)
]


class AlertOut(BaseModel):
    """An alert: one rule on one device, from raised to resolved.

    `count` says how often the condition fired while the alert was open; `device`
    and `site` name where it happened.
    """

    id: int
    rule_id: int
    rule: str
    type: ConditionType | str
    device: str
    site: str
    severity: AlertSeverity
    state: AlertState
    message: str
    detail: dict[str, Any]
    count: int
    raised_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    updated_at: datetime


def alert_out(a: AlertRecord) -> AlertOut:
    """The API (and bus) form of a stored alert."""
    return AlertOut(
        id=a.id,
        rule_id=a.rule_id,
        rule=a.rule_name,
        type=a.rule_type,
        device=a.device,
        site=a.site_id,
        severity=AlertSeverity(a.severity),
        state=AlertState(a.state),
        message=a.message,
        detail=a.detail,
        count=a.count,
        raised_at=a.raised_at,
        last_seen_at=a.last_seen_at,
        acknowledged_at=a.acknowledged_at,
        acknowledged_by=a.acknowledged_by,
        resolved_at=a.resolved_at,
        resolved_by=a.resolved_by,
        updated_at=a.updated_at,
    )


def alert_json(a: AlertRecord) -> bytes:
    """The JSON bytes of `alert_out(a)`, as webhooks and the `alerts` topic carry them."""
    return alert_out(a).model_dump_json().encode()


class AlertPage(BaseModel):
    """A page of alerts, newest first; pass `next_cursor` as `cursor` for the next."""

    items: list[AlertOut]
    next_cursor: str | None


class RuleIn(Body):
    """A new alert rule."""

    name: Name
    condition: Condition
    severity: AlertSeverity = AlertSeverity.WARNING
    enabled: bool = True
    description: Annotated[str, Field(max_length=1000)] = ""


class RulePatch(Body):
    """Fields of a rule to change; the others stay."""

    name: Name | None = None
    condition: Condition | None = None
    severity: AlertSeverity | None = None
    enabled: bool | None = None
    description: Annotated[str, Field(max_length=1000)] | None = None


class RuleOut(BaseModel):
    """An alert rule."""

    id: int
    name: str
    type: str
    condition: dict[str, Any]
    severity: AlertSeverity
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime


def rule_out(r: RuleRecord) -> RuleOut:
    """The API form of a stored rule."""
    return RuleOut(
        id=r.id,
        name=r.name,
        type=r.type,
        condition=r.condition,
        severity=AlertSeverity(r.severity),
        enabled=r.enabled,
        description=r.description,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


class RuleList(BaseModel):
    """Every alert rule."""

    items: list[RuleOut]


class ChannelIn(Body):
    """A new notification channel: a webhook (`url`, `secret`) or e-mail (`recipients`)."""

    name: Name
    kind: Literal["webhook", "email"]
    url: AnyHttpUrl | None = None
    secret: Annotated[str, Field(min_length=16, max_length=256)] | None = None
    recipients: Annotated[list[Email], Field(max_length=50)] = Field(default_factory=list)
    min_severity: AlertSeverity = AlertSeverity.WARNING
    enabled: bool = True


class ChannelPatch(Body):
    """Fields of a channel to change; the others stay (`secret` is write-only)."""

    name: Name | None = None
    url: AnyHttpUrl | None = None
    secret: Annotated[str, Field(min_length=16, max_length=256)] | None = None
    recipients: Annotated[list[Email], Field(max_length=50)] | None = None
    min_severity: AlertSeverity | None = None
    enabled: bool | None = None


class ChannelOut(BaseModel):
    """A notification channel; the webhook secret is never returned, only whether one is set."""

    id: int
    name: str
    kind: Literal["webhook", "email"]
    url: str | None
    has_secret: bool
    recipients: list[str]
    min_severity: AlertSeverity
    enabled: bool
    created_at: datetime
    updated_at: datetime


def channel_out(c: ChannelRecord) -> ChannelOut:
    """The API form of a stored channel (without its secret)."""
    kind: Literal["webhook", "email"] = "webhook" if c.kind == "webhook" else "email"
    return ChannelOut(
        id=c.id,
        name=c.name,
        kind=kind,
        url=c.url,
        has_secret=bool(c.secret),
        recipients=c.recipients,
        min_severity=AlertSeverity(c.min_severity),
        enabled=c.enabled,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


class ChannelList(BaseModel):
    """Every notification channel."""

    items: list[ChannelOut]


class DeliveryOut(BaseModel):
    """One attempt to notify a channel of an alert."""

    id: int
    alert_id: int
    channel_id: int
    channel_kind: str
    event: str
    attempt: int
    at: datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


def delivery_out(d: DeliveryRecord) -> DeliveryOut:
    """The API form of a delivery-log row."""
    return DeliveryOut(
        id=d.id,
        alert_id=d.alert_id,
        channel_id=d.channel_id,
        channel_kind=d.channel_kind,
        event=d.event,
        attempt=d.attempt,
        at=d.at,
        ok=d.ok,
        status_code=d.status_code,
        error=d.error,
        duration_ms=d.duration_ms,
    )


class DeliveryList(BaseModel):
    """An alert's delivery log, oldest first."""

    items: list[DeliveryOut]
