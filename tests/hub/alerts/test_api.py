"""The alert routes: scope, filters, pages, roles, rules and channels, the OpenAPI contract."""

from __future__ import annotations

from tests.hub.alerts.rig import AlertRig, ids
from tests.hub.alerts.support import at, danger, event, metric


async def _three(rig: AlertRig) -> tuple[int, int, int]:
    """Danger zone and battery on plant-a's device, danger zone on plant-b's."""
    (zone,) = await rig.feed(danger(rig.mine))
    (battery,) = await rig.feed(
        metric(rig.mine, "robot.battery.percent", 50), metric(rig.mine, "robot.battery.percent", 9)
    )
    (theirs,) = await rig.feed(danger(rig.theirs, at(1)))
    return zone.id, battery.id, theirs.id


async def test_lists_show_only_alerts_of_the_callers_sites(rig: AlertRig) -> None:
    zone, battery, theirs = await _three(rig)
    as_vic = (await rig.call("GET", "vic", "/alerts")).json()
    as_root = (await rig.call("GET", "root", "/alerts")).json()
    assert ids(as_vic["items"]) == [battery, zone]
    assert ids(as_root["items"]) == [theirs, battery, zone]
    assert (await rig.call("GET", "vic", f"/alerts/{theirs}")).status_code == 404
    assert (await rig.call("POST", "olga", f"/alerts/{theirs}/acknowledge")).status_code == 404
    assert (await rig.call("GET", "vic", f"/alerts/{zone}")).json()["device"] == rig.mine


async def test_filters_and_cursor_pages(rig: AlertRig) -> None:
    zone, battery, theirs = await _three(rig)

    async def listed(query: str) -> list[int]:
        response = await rig.call("GET", "root", f"/alerts?{query}")
        assert response.status_code == 200, response.text
        return ids(response.json()["items"])

    assert await listed("severity=critical") == [theirs, zone]
    assert await listed(f"device={rig.mine}") == [battery, zone]
    assert await listed("site=plant-b") == [theirs]
    rules = (await rig.call("GET", "root", "/alert-rules")).json()["items"]
    battery_rule = next(r["id"] for r in rules if r["name"] == "Battery low")
    assert await listed(f"rule={battery_rule}") == [battery]
    await rig.call("POST", "root", f"/alerts/{zone}/acknowledge")
    assert await listed("state=acknowledged") == [zone]
    assert await listed("state=active") == [theirs, battery]
    pages, cursor = [], ""
    while True:
        page = (await rig.call("GET", "root", f"/alerts?limit=2{cursor}")).json()
        pages.append(ids(page["items"]))
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert pages == [[theirs, battery], [zone]]
    assert (await rig.call("GET", "root", "/alerts?cursor=nope")).status_code == 422
    assert (await rig.call("GET", "root", "/alerts?state=asleep")).status_code == 422


async def test_only_operators_acknowledge_and_resolve(rig: AlertRig) -> None:
    zone, _, _ = await _three(rig)
    denied = await rig.call("POST", "vic", f"/alerts/{zone}/acknowledge")
    assert denied.status_code == 403
    assert denied.json()["detail"]["code"] == "role_required"
    assert (await rig.call("POST", "vic", f"/alerts/{zone}/resolve")).status_code == 403
    assert (await rig.call("POST", "olga", f"/alerts/{zone}/acknowledge")).status_code == 200
    again = await rig.call("POST", "olga", f"/alerts/{zone}/acknowledge")
    assert again.status_code == 200
    assert again.json()["state"] == "acknowledged"
    assert (await rig.call("POST", "olga", f"/alerts/{zone}/resolve")).status_code == 200
    late = await rig.call("POST", "olga", f"/alerts/{zone}/acknowledge")
    assert late.status_code == 409
    assert late.json()["detail"]["code"] == "alert_resolved"
    assert (await rig.call("POST", "olga", f"/alerts/{zone}/resolve")).status_code == 409
    assert (await rig.call("POST", "olga", "/alerts/999999/resolve")).status_code == 404
    audited = [
        (r["actor"], r["target"], r["decision"])
        for r in await rig.hub.audit_rows()
        if r["action"] == "POST /api/v1/alerts/{alert_id}/acknowledge"
    ]
    path = f"/api/v1/alerts/{zone}/acknowledge"
    assert audited[:2] == [("vic", path, "denied"), ("olga", path, "allowed")]


async def test_rules_are_read_by_viewers_and_written_by_admins(rig: AlertRig) -> None:
    listed = (await rig.call("GET", "vic", "/alert-rules")).json()["items"]
    assert len(listed) == 7
    assert all(r["enabled"] for r in listed)
    rule = {
        "name": "Robot fault",
        "severity": "critical",
        "condition": {"type": "event", "events": ["robot_fault"]},
    }
    assert (await rig.call("POST", "olga", "/alert-rules", rule)).status_code == 403
    created = await rig.call("POST", "root", "/alert-rules", rule)
    assert created.status_code == 201, created.text
    rule_id = created.json()["id"]
    assert created.json()["type"] == "event"
    assert created.json()["condition"] == {
        "type": "event",
        "events": ["robot_fault"],
        "resolve_on": [],
    }
    assert (await rig.call("POST", "root", "/alert-rules", rule)).status_code == 409
    bad = {**rule, "name": "Bad", "condition": {"type": "metric_threshold", "metric": "x"}}
    assert (await rig.call("POST", "root", "/alert-rules", bad)).status_code == 422
    unknown = {**rule, "name": "Odd", "condition": {"type": "moon_phase"}}
    assert (await rig.call("POST", "root", "/alert-rules", unknown)).status_code == 422
    rig.worker.forget_rules()
    (fault,) = await rig.feed(event(rig.mine, "robot_fault", code="E12"))
    assert fault.rule_id == rule_id
    assert fault.severity == "critical"
    patched = await rig.call(
        "PATCH",
        "root",
        f"/alert-rules/{rule_id}",
        {"severity": "info", "condition": {"type": "event", "events": ["camera_lost"]}},
    )
    assert patched.status_code == 200
    assert patched.json()["severity"] == "info"
    assert patched.json()["name"] == "Robot fault"
    renamed = await rig.call("PATCH", "root", f"/alert-rules/{rule_id}", {"name": "Battery low"})
    assert renamed.status_code == 409
    assert (await rig.call("DELETE", "olga", f"/alert-rules/{rule_id}")).status_code == 403
    assert (await rig.call("DELETE", "root", f"/alert-rules/{rule_id}")).status_code == 204
    assert (await rig.call("GET", "vic", f"/alert-rules/{rule_id}")).status_code == 404
    # its alert stays, with the rule's name
    assert (await rig.call("GET", "vic", f"/alerts/{fault.id}")).json()["rule"] == "Robot fault"


async def test_channels_are_admin_only_and_never_return_the_secret(rig: AlertRig) -> None:
    hook = {
        "name": "ops",
        "kind": "webhook",
        "url": "https://ops.example.com/hook",
        "secret": "s" * 32,
        "min_severity": "critical",
    }
    assert (await rig.call("GET", "olga", "/alert-channels")).status_code == 403
    assert (await rig.call("POST", "olga", "/alert-channels", hook)).status_code == 403
    created = await rig.call("POST", "root", "/alert-channels", hook)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["has_secret"] is True
    assert "secret" not in body
    assert "s" * 32 not in created.text
    no_secret = {**hook, "name": "ops2", "secret": None}
    assert (await rig.call("POST", "root", "/alert-channels", no_secret)).status_code == 422
    no_rcpt = {"name": "mail", "kind": "email", "recipients": []}
    assert (await rig.call("POST", "root", "/alert-channels", no_rcpt)).status_code == 422
    bad_rcpt = {"name": "mail", "kind": "email", "recipients": ["not an address"]}
    assert (await rig.call("POST", "root", "/alert-channels", bad_rcpt)).status_code == 422
    mail = {"name": "mail", "kind": "email", "recipients": ["ops@example.com"]}
    assert (await rig.call("POST", "root", "/alert-channels", mail)).status_code == 201
    assert (await rig.call("POST", "root", "/alert-channels", mail)).status_code == 409
    off = await rig.call("PATCH", "root", f"/alert-channels/{body['id']}", {"enabled": False})
    assert off.status_code == 200
    assert off.json()["enabled"] is False
    assert off.json()["url"] == "https://ops.example.com/hook"
    listed = (await rig.call("GET", "root", "/alert-channels")).json()["items"]
    assert [c["name"] for c in listed] == ["ops", "mail"]
    assert (await rig.call("DELETE", "root", f"/alert-channels/{body['id']}")).status_code == 204
    assert (await rig.call("GET", "root", f"/alert-channels/{body['id']}")).status_code == 404


async def test_the_openapi_contract_declares_bodies_and_errors(rig: AlertRig) -> None:
    spec = (await rig.hub.client.get("/openapi.json")).json()
    paths = spec["paths"]
    ack = paths["/api/v1/alerts/{alert_id}/acknowledge"]["post"]
    assert {"200", "401", "403", "404", "409"} <= set(ack["responses"])
    ok = ack["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/AlertOut"}
    assert {"401", "403", "422"} <= set(paths["/api/v1/alerts"]["get"]["responses"])
    assert {"401", "403", "409", "422"} <= set(paths["/api/v1/alert-rules"]["post"]["responses"])
    assert "/api/v1/alert-channels/{channel_id}" in paths
    assert "/api/v1/alerts/{alert_id}/deliveries" in paths
    alert = spec["components"]["schemas"]["AlertOut"]["properties"]
    assert {"device", "site", "state", "severity", "count"} <= set(alert)
