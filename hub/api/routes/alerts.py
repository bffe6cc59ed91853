"""`/api/v1/alerts`, `/api/v1/alert-rules`, `/api/v1/alert-channels`.

| route | role |
|---|---|
| `GET /alerts`, `GET /alerts/{id}`, `GET /alerts/{id}/deliveries` | viewer (own sites) |
| `POST /alerts/{id}/acknowledge`, `POST /alerts/{id}/resolve` | operator (own sites) |
| `GET /alert-rules`, `GET /alert-rules/{id}` | viewer |
| `POST`, `PATCH`, `DELETE /alert-rules...` | admin |
| `/alert-channels...` (webhook URLs and secrets, e-mail addresses) | admin |

Rules and channels are fleet-wide. Every enabled channel receives each newly
raised alert at or above its `min_severity`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from hub.alerts.conditions import AlertSeverity, AlertState
from hub.alerts.service import AlertService
from hub.api.deps import AdminPrincipal, CurrentPrincipal, OperatorPrincipal
from hub.api.schemas.alerts import (
    AlertOut,
    AlertPage,
    ChannelIn,
    ChannelList,
    ChannelOut,
    ChannelPatch,
    DeliveryList,
    RuleIn,
    RuleList,
    RuleOut,
    RulePatch,
    alert_out,
    channel_out,
    delivery_out,
    rule_out,
)
from hub.api.schemas.auth import MAX_ROW_ID
from hub.api.schemas.errors import AUTHED, CONFLICT, NOT_FOUND
from hub.storage.repositories.alerts import AlertFilter

router = APIRouter(prefix="/api/v1", tags=["alerts"])
MAX_ALERT_ID = 2**63 - 1
AlertId = Annotated[int, Path(ge=1, le=MAX_ALERT_ID)]
RuleId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
ChannelId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def alert_service(request: Request) -> AlertService:
    """The app's `AlertService`."""
    service: AlertService = request.app.state.alerts
    return service


AlertsDep = Annotated[AlertService, Depends(alert_service)]


# --- alerts --------------------------------------------------------------------------------


@router.get(
    "/alerts",
    summary="Alerts in your scope, newest first",
    response_model=AlertPage,
    responses={**AUTHED},
)
async def list_alerts(
    principal: CurrentPrincipal,
    alerts: AlertsDep,
    state: AlertState | None = None,
    severity: AlertSeverity | None = None,
    device: Annotated[str | None, Query(max_length=63)] = None,
    site: Annotated[str | None, Query(max_length=63)] = None,
    rule: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="A rule id.")] = None,
    cursor: Annotated[str | None, Query(max_length=32, description="`next_cursor`.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertPage:
    """Filter by state, severity, device, site and rule; page with `cursor`."""
    where = AlertFilter(
        state=state.value if state else None,
        severity=severity.value if severity else None,
        device=device,
        site=site,
        rule_id=rule,
    )
    page, next_cursor = await alerts.page(principal, where, cursor=cursor, limit=limit)
    return AlertPage(items=[alert_out(a) for a in page], next_cursor=next_cursor)


@router.get(
    "/alerts/{alert_id}",
    summary="One alert",
    response_model=AlertOut,
    responses={**AUTHED, **NOT_FOUND},
)
async def get_alert(alert_id: AlertId, principal: CurrentPrincipal, alerts: AlertsDep) -> AlertOut:
    """The alert, with who acknowledged and resolved it."""
    return alert_out(await alerts.get(principal, alert_id))


@router.post(
    "/alerts/{alert_id}/acknowledge",
    summary="Acknowledge an alert (operator)",
    description="`active` → `acknowledged`; repeats of the condition still count on it. "
    "409 when it is already resolved.",
    response_model=AlertOut,
    responses={**AUTHED, **NOT_FOUND, **CONFLICT},
)
async def acknowledge(
    alert_id: AlertId, principal: OperatorPrincipal, alerts: AlertsDep
) -> AlertOut:
    """Say someone is on it."""
    return alert_out(await alerts.acknowledge(principal, alert_id))


@router.post(
    "/alerts/{alert_id}/resolve",
    summary="Resolve an alert (operator)",
    description="Closes the alert; the next firing of its rule on the device opens a new "
    "one. 409 when it is already resolved.",
    response_model=AlertOut,
    responses={**AUTHED, **NOT_FOUND, **CONFLICT},
)
async def resolve(alert_id: AlertId, principal: OperatorPrincipal, alerts: AlertsDep) -> AlertOut:
    """Close the alert."""
    return alert_out(await alerts.resolve(principal, alert_id))


@router.get(
    "/alerts/{alert_id}/deliveries",
    summary="An alert's notification attempts (delivery log)",
    response_model=DeliveryList,
    responses={**AUTHED, **NOT_FOUND},
)
async def deliveries(
    alert_id: AlertId, principal: CurrentPrincipal, alerts: AlertsDep
) -> DeliveryList:
    """Each webhook and e-mail attempt: when, whether it worked, the status or error."""
    items = await alerts.deliveries(principal, alert_id)
    return DeliveryList(items=[delivery_out(d) for d in items])


# --- rules ---------------------------------------------------------------------------------


@router.get(
    "/alert-rules",
    summary="Alert rules",
    response_model=RuleList,
    responses=AUTHED,
)
async def list_rules(_: CurrentPrincipal, alerts: AlertsDep) -> RuleList:
    """Every rule, the defaults included."""
    return RuleList(items=[rule_out(r) for r in await alerts.rules()])


@router.get(
    "/alert-rules/{rule_id}",
    summary="One alert rule",
    response_model=RuleOut,
    responses={**AUTHED, **NOT_FOUND},
)
async def get_rule(rule_id: RuleId, _: CurrentPrincipal, alerts: AlertsDep) -> RuleOut:
    """The rule."""
    return rule_out(await alerts.rule(rule_id))


@router.post(
    "/alert-rules",
    summary="Add an alert rule (admin)",
    status_code=status.HTTP_201_CREATED,
    response_model=RuleOut,
    responses={**AUTHED, **CONFLICT},
)
async def create_rule(body: RuleIn, _: AdminPrincipal, alerts: AlertsDep) -> RuleOut:
    """A new rule; applies within seconds."""
    return rule_out(await alerts.create_rule(body))


@router.patch(
    "/alert-rules/{rule_id}",
    summary="Change an alert rule (admin)",
    response_model=RuleOut,
    responses={**AUTHED, **NOT_FOUND, **CONFLICT},
)
async def update_rule(
    rule_id: RuleId, body: RulePatch, _: AdminPrincipal, alerts: AlertsDep
) -> RuleOut:
    """Rename, retune, enable or disable a rule."""
    return rule_out(await alerts.update_rule(rule_id, body))


@router.delete(
    "/alert-rules/{rule_id}",
    summary="Delete an alert rule (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**AUTHED, **NOT_FOUND},
)
async def delete_rule(rule_id: RuleId, _: AdminPrincipal, alerts: AlertsDep) -> Response:
    """Its alerts stay; disable it instead to keep it for later."""
    await alerts.delete_rule(rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- channels ------------------------------------------------------------------------------


@router.get(
    "/alert-channels",
    summary="Notification channels (admin)",
    response_model=ChannelList,
    responses=AUTHED,
)
async def list_channels(_: AdminPrincipal, alerts: AlertsDep) -> ChannelList:
    """Every webhook and e-mail channel (webhook secrets are never returned)."""
    return ChannelList(items=[channel_out(c) for c in await alerts.channels()])


@router.get(
    "/alert-channels/{channel_id}",
    summary="One notification channel (admin)",
    response_model=ChannelOut,
    responses={**AUTHED, **NOT_FOUND},
)
async def get_channel(channel_id: ChannelId, _: AdminPrincipal, alerts: AlertsDep) -> ChannelOut:
    """The channel."""
    return channel_out(await alerts.channel(channel_id))


@router.post(
    "/alert-channels",
    summary="Add a notification channel (admin)",
    description="A webhook needs `url` and a `secret` (16+ characters) to sign with; "
    "an e-mail channel needs `recipients` and the hub's `[alerts] smtp_*` settings.",
    status_code=status.HTTP_201_CREATED,
    response_model=ChannelOut,
    responses={**AUTHED, **CONFLICT},
)
async def create_channel(body: ChannelIn, _: AdminPrincipal, alerts: AlertsDep) -> ChannelOut:
    """A new channel."""
    return channel_out(await alerts.create_channel(body))


@router.patch(
    "/alert-channels/{channel_id}",
    summary="Change a notification channel (admin)",
    response_model=ChannelOut,
    responses={**AUTHED, **NOT_FOUND, **CONFLICT},
)
async def update_channel(
    channel_id: ChannelId, body: ChannelPatch, _: AdminPrincipal, alerts: AlertsDep
) -> ChannelOut:
    """Change the URL, secret, addresses, severity floor or enabled flag."""
    return channel_out(await alerts.update_channel(channel_id, body))


@router.delete(
    "/alert-channels/{channel_id}",
    summary="Delete a notification channel (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**AUTHED, **NOT_FOUND},
)
async def delete_channel(channel_id: ChannelId, _: AdminPrincipal, alerts: AlertsDep) -> Response:
    """Its delivery log stays."""
    await alerts.delete_channel(channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
