"""Commands through the API: who may send what, what is signed and stored, audited, and how
the devices' acks move a command along."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.auth.principal import Role
from hub.auth.signing import load_or_create_signing_key
from protocol.codec import dumps
from protocol.commands import accept_command
from protocol.models import AckStatus
from tests.hub.assets.support import add_site, enrolled
from tests.hub.auth.support import Hub
from tests.hub.control.support import FakePublisher, device_acks, get, post

DEVICE_COMMANDS = (
    ("estop", {"reason": "aisle blocked"}),
    ("release", {"reason": "aisle clear"}),
    ("override", {"linear": 0.2, "angular": 0.0, "duration_s": 1.5}),
    ("path", {"waypoints": [{"x": 1, "y": 2}], "speed": 0.5, "timeout_s": 30}),
)


async def _fleet(hub: Hub) -> tuple[str, str]:
    """plant-a with olga (operator) and vic (viewer) of it; plant-b; one device each."""
    await add_site(hub, "plant-a")
    await add_site(hub, "plant-b")
    mine, theirs = await enrolled(hub, "plant-a", "AMR A"), await enrolled(hub, "plant-b", "AMR B")
    await hub.add_user("vic", Role.VIEWER, ["plant-a"])
    await hub.add_user("olga", Role.OPERATOR, ["plant-a"])
    return mine, theirs


async def _command_rows(hub: Hub) -> list[tuple[str, str, str, str, str]]:
    return [
        (r["actor"], r["action"], r["target"], r["decision"], r["result"])
        for r in await hub.audit_rows()
        if r["action"].startswith("command.") or "/estop" in r["action"]
    ]


async def test_roles_and_scope_matrix_for_every_control_route(
    hub: Hub, publisher: FakePublisher
) -> None:
    mine, theirs = await _fleet(hub)
    calls = [
        (f"/devices/{d}/{name}", body) for d in (mine, theirs) for name, body in DEVICE_COMMANDS
    ]
    calls += [("/sites/plant-a/estop", None), ("/sites/plant-b/estop", {"reason": "drill"})]
    outcome = {
        user: [(await post(hub, user, path, body)).status_code for path, body in calls]
        for user in ("vic", "olga", "root")
    }
    assert outcome == {
        "vic": [403] * 10,
        "olga": [202] * 4 + [404] * 4 + [202, 404],
        "root": [202] * 10,
    }
    # Only what was answered 202 went out: olga's 4 + 1 and root's 8 + 2 (one device per site).
    assert len(publisher.sent) == 5 + 10
    assert {topic for topic, _, _ in publisher.sent} == {
        f"outpost/v1/{mine}/cmd",
        f"outpost/v1/{theirs}/cmd",
    }


async def test_fleet_stop_covers_the_callers_scope_and_a_viewer_cannot(
    hub: Hub, publisher: FakePublisher
) -> None:
    mine, theirs = await _fleet(hub)
    assert (await post(hub, "vic", "/fleet/estop")).status_code == 403
    olga = await post(hub, "olga", "/fleet/estop", {"reason": "fire alarm"})
    assert olga.status_code == 202, olga.text
    assert [c["device_id"] for c in olga.json()["items"]] == [mine]
    root = await post(hub, "root", "/fleet/estop")
    assert sorted(c["device_id"] for c in root.json()["items"]) == sorted([mine, theirs])
    assert all(c["batch"] == "fleet" and c["status"] == "sent" for c in root.json()["items"])
    assert len(publisher.sent) == 3


async def test_commands_are_signed_for_their_device_with_the_configured_lifetimes(
    hub: Hub, publisher: FakePublisher
) -> None:
    mine, _ = await _fleet(hub)
    stop = await post(hub, "olga", f"/devices/{mine}/estop", {"reason": "aisle blocked"})
    go = await post(hub, "olga", f"/devices/{mine}/release", {"reason": "aisle clear"})
    assert (stop.status_code, go.status_code) == (202, 202)
    key = load_or_create_signing_key(hub.settings.data_dir).public_key()
    now = datetime.now(UTC)
    accepted = [
        accept_command(dumps(payload), device_id=mine, hub_key=key, now=now, seen=set())
        for _, payload, _ in publisher.sent
    ]
    assert [(c.type.value, c.issued_by, c.params.reason) for c in accepted] == [  # type: ignore[union-attr]
        ("estop", "olga", "aisle blocked"),
        ("release", "olga", "aisle clear"),
    ]
    lifetimes = [c.expires_at - c.issued_at for c in accepted]
    assert lifetimes == [timedelta(seconds=600), timedelta(seconds=30)]
    assert [expiry for _, _, expiry in publisher.sent] == [600, 30]
    body = stop.json()
    assert (body["cmd_id"], body["status"], body["links"]["self"]) == (
        accepted[0].cmd_id,
        "sent",
        f"/api/v1/commands/{accepted[0].cmd_id}",
    )
    assert body["published_at"] is not None


async def test_release_needs_a_reason(hub: Hub, publisher: FakePublisher) -> None:
    mine, _ = await _fleet(hub)
    for body in (None, {}, {"reason": ""}, {"reason": "   "}):
        answer = await post(hub, "olga", f"/devices/{mine}/release", body)
        assert answer.status_code == 422, (body, answer.text)
    assert publisher.sent == []


async def test_a_removed_device_cannot_be_commanded(hub: Hub, publisher: FakePublisher) -> None:
    mine, _ = await _fleet(hub)
    assert (
        await hub.client.delete(f"/api/v1/devices/{mine}", headers=await hub.bearer("root"))
    ).status_code == 204
    answer = await post(hub, "olga", f"/devices/{mine}/estop")
    assert answer.status_code == 409
    assert answer.json()["detail"]["code"] == "device_removed"
    assert publisher.sent == []
    assert (
        "olga",
        "command.estop",
        f"device:{mine}",
        "denied",
        "device_removed",
    ) in await _command_rows(hub)
    # Nor is it part of a site stop.
    site = await post(hub, "olga", "/sites/plant-a/estop")
    assert (site.status_code, site.json()["count"]) == (202, 0)


async def test_a_publish_failure_answers_503_and_marks_the_command(
    hub: Hub, publisher: FakePublisher
) -> None:
    mine, _ = await _fleet(hub)
    publisher.failure = "no PUBACK from the broker within 3 s"
    answer = await post(hub, "olga", f"/devices/{mine}/estop")
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert detail["code"] == "publish_failed"
    assert detail["reason"] == "no PUBACK from the broker within 3 s"
    assert "may not reach the device" in detail["message"]

    shown = (await get(hub, "olga", f"/commands/{detail['cmd_id']}")).json()
    assert (shown["status"], shown["detail"]) == ("publish_failed", detail["reason"])
    assert [s["status"] for s in shown["lifecycle"]] == ["sent", "publish_failed"]

    site = await post(hub, "olga", "/sites/plant-a/estop")
    assert site.status_code == 503
    assert [f["device"] for f in site.json()["detail"]["failed"]] == [mine]


async def test_every_allowed_and_denied_command_has_an_audit_row(hub: Hub) -> None:
    mine, theirs = await _fleet(hub)
    await post(hub, "vic", f"/devices/{mine}/estop")
    await post(hub, "vic", f"/devices/{mine}/release", {"reason": "x"})
    await post(hub, "vic", "/sites/plant-a/estop")
    await post(hub, "vic", "/fleet/estop")
    await post(hub, "olga", f"/devices/{theirs}/estop")
    await post(hub, "olga", "/devices/no-such-device/estop")
    await post(hub, "olga", "/sites/plant-b/estop")
    await post(hub, "olga", f"/devices/{mine}/estop", {"reason": "drill"})
    await post(hub, "olga", "/sites/plant-a/estop")

    assert await _command_rows(hub) == [
        ("vic", "command.estop", f"device:{mine}", "denied", "role_required"),
        ("vic", "command.release", f"device:{mine}", "denied", "role_required"),
        ("vic", "command.estop_site", "site:plant-a", "denied", "role_required"),
        ("vic", "command.estop_fleet", "fleet", "denied", "role_required"),
        ("olga", "command.estop", f"device:{theirs}", "denied", "out_of_scope"),
        ("olga", "command.estop", "device:no-such-device", "denied", "not_found"),
        ("olga", "command.estop_site", "site:plant-b", "denied", "not_found"),
        ("olga", "command.estop", f"device:{mine}", "allowed", "sent"),
        ("olga", "command.estop", f"device:{mine}", "allowed", "sent"),
        ("olga", "command.estop_site", "site:plant-a", "allowed", "sent 1"),
    ]
    allowed = [r for r in await hub.audit_rows() if r["result"] == "sent"]
    assert '"reason":"drill"' in allowed[0]["detail"]
    assert (await hub.audit.verify()).intact


async def test_acks_out_of_order_or_twice_keep_the_most_advanced_state(hub: Hub) -> None:
    mine, theirs = await _fleet(hub)
    cmd = (await post(hub, "olga", f"/devices/{mine}/estop")).json()["cmd_id"]

    await device_acks(hub, mine, (cmd, AckStatus.DONE))
    await device_acks(hub, mine, (cmd, AckStatus.RECEIVED), (cmd, AckStatus.DONE), seq_from=2)
    await device_acks(hub, mine, (cmd, AckStatus.DONE), seq_from=2)  # a re-send of seq 2..
    await device_acks(hub, theirs, (cmd, AckStatus.FAILED))  # another device: ignored

    shown = (await get(hub, "vic", f"/commands/{cmd}")).json()
    assert (shown["status"], shown["detail"]) == ("done", "done #1")
    assert [(s["status"], s["source"]) for s in shown["lifecycle"]] == [
        ("sent", "hub"),
        ("received", "device"),
        ("done", "device"),
    ]

    path = {"waypoints": [{"x": 1, "y": 1}], "speed": 0.5, "timeout_s": 30}
    moving = (await post(hub, "olga", f"/devices/{mine}/path", path)).json()["cmd_id"]
    await device_acks(
        hub, mine, (moving, AckStatus.EXECUTING), (moving, AckStatus.RECEIVED), seq_from=10
    )
    assert (await get(hub, "vic", f"/commands/{moving}")).json()["status"] == "executing"


async def test_history_is_newest_first_paged_and_scoped(hub: Hub) -> None:
    mine, theirs = await _fleet(hub)
    sent = [
        (await post(hub, "olga", f"/devices/{mine}/estop", {"reason": f"#{n}"})).json()["cmd_id"]
        for n in range(3)
    ]
    first = (await get(hub, "vic", f"/devices/{mine}/commands?limit=2")).json()
    assert [c["cmd_id"] for c in first["items"]] == sent[::-1][:2]
    second = (
        await get(hub, "vic", f"/devices/{mine}/commands?limit=2&cursor={first['next_cursor']}")
    ).json()
    assert ([c["cmd_id"] for c in second["items"]], second["next_cursor"]) == ([sent[0]], None)

    assert (await get(hub, "vic", f"/devices/{mine}/commands?cursor=nonsense")).status_code == 422
    assert (await get(hub, "vic", f"/devices/{theirs}/commands")).status_code == 404
    theirs_cmd = (await post(hub, "root", f"/devices/{theirs}/estop")).json()["cmd_id"]
    assert (await get(hub, "vic", f"/commands/{theirs_cmd}")).status_code == 404
    assert (await get(hub, "root", f"/commands/{theirs_cmd}")).status_code == 200
