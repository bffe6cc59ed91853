"""Alerts from the worker through their lifecycle: dedupe, acknowledge, resolve, publish."""

from __future__ import annotations

from hub.alerts.conditions import AlertState
from protocol.models import DeviceState
from tests.hub.alerts.rig import AlertRig
from tests.hub.alerts.support import T0, at, danger, envelope, event, metric


async def test_one_open_alert_per_rule_and_device(rig: AlertRig) -> None:
    first = await rig.feed(danger(rig.mine))
    again = await rig.feed(danger(rig.mine, at(1)), danger(rig.mine, at(2)))
    other = await rig.feed(danger(rig.theirs))
    assert len(first) == 1
    assert first[0].state == AlertState.ACTIVE
    assert first[0].count == 1
    assert [a.id for a in again] == [first[0].id]
    assert again[0].count == 3
    assert again[0].last_seen_at == at(2)
    assert again[0].raised_at == T0
    assert other[0].id != first[0].id
    assert (first[0].site_id, other[0].site_id) == ("plant-a", "plant-b")


async def test_acknowledged_alerts_still_dedupe_and_resolved_ones_do_not(rig: AlertRig) -> None:
    (alert,) = await rig.feed(danger(rig.mine))
    acked = await rig.call("POST", "olga", f"/alerts/{alert.id}/acknowledge")
    assert acked.status_code == 200, acked.text
    assert acked.json()["state"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == "olga"
    (repeat,) = await rig.feed(danger(rig.mine, at(5)))
    assert (repeat.id, repeat.state, repeat.count) == (alert.id, "acknowledged", 2)
    resolved = await rig.call("POST", "olga", f"/alerts/{alert.id}/resolve")
    assert resolved.json()["state"] == "resolved"
    assert resolved.json()["resolved_by"] == "olga"
    (fresh,) = await rig.feed(danger(rig.mine, at(9)))
    assert fresh.id != alert.id
    assert fresh.state == "active"
    assert fresh.count == 1


async def test_a_cleared_condition_resolves_its_alert(rig: AlertRig) -> None:
    (stop,) = await rig.feed(event(rig.mine, "estop_engaged", reason="person in dock"))
    (done,) = await rig.feed(event(rig.mine, "estop_released", at(30)))
    assert done.id == stop.id
    assert done.state == "resolved"
    assert done.resolved_by == "auto: estop_released reported"
    assert done.resolved_at == at(30)
    assert await rig.feed(event(rig.mine, "estop_released", at(31))) == []  # nothing open


async def test_every_change_is_published_with_device_and_site(rig: AlertRig) -> None:
    (alert,) = await rig.feed(danger(rig.mine))
    await rig.feed(danger(rig.mine, at(1)))
    await rig.call("POST", "olga", f"/alerts/{alert.id}/acknowledge")
    await rig.call("POST", "root", f"/alerts/{alert.id}/resolve")
    published = await rig.published()
    assert [(p["id"], p["state"], p["count"]) for p in published] == [
        (alert.id, "active", 1),
        (alert.id, "active", 2),
        (alert.id, "acknowledged", 2),
        (alert.id, "resolved", 2),
    ]
    assert {(p["_key"], p["device"], p["site"]) for p in published} == {
        (rig.mine, rig.mine, "plant-a")
    }
    assert published[0]["rule"] == "Person in danger zone"
    assert published[0]["severity"] == "critical"


async def test_a_disabled_rule_does_not_fire(rig: AlertRig) -> None:
    rules = (await rig.call("GET", "vic", "/alert-rules")).json()["items"]
    battery = next(r for r in rules if r["name"] == "Battery low")
    off = await rig.call("PATCH", "root", f"/alert-rules/{battery['id']}", {"enabled": False})
    assert off.status_code == 200
    assert off.json()["enabled"] is False
    rig.worker.forget_rules()
    assert await rig.feed(metric(rig.mine, "robot.battery.percent", 5)) == []
    await rig.call("PATCH", "root", f"/alert-rules/{battery['id']}", {"enabled": True})
    rig.worker.forget_rules()
    (low,) = await rig.feed(metric(rig.mine, "robot.battery.percent", 5, at(1)))
    assert low.rule_name == "Battery low"
    assert low.severity == "warning"


async def test_a_device_silent_too_long_raises_offline_and_its_return_resolves(
    rig: AlertRig,
) -> None:
    await rig.store(envelope(rig.mine, DeviceState(online=True), T0))
    await rig.store(envelope(rig.mine, DeviceState(online=False), at(1)))  # the last will
    assert await rig.worker.check_liveness(at(30)) == []
    (offline,) = await rig.worker.check_liveness(at(62))
    assert offline.rule_name == "Device offline"
    assert offline.site_id == "plant-a"
    assert await rig.worker.check_liveness(at(120)) == []  # still the same alert, no repeat
    await rig.store(envelope(rig.mine, DeviceState(online=True), at(200)))
    (back,) = await rig.worker.check_liveness(at(201))
    assert back.id == offline.id
    assert back.state == "resolved"
