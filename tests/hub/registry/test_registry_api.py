"""The registry and rollouts through the API on SQLite (again on PostgreSQL in
tests/integration/hub/test_models_postgres.py): push refusals, device downloads,
canary → promotion → completion, automatic rollback to each device's previous model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.auth.principal import Role
from hub.auth.signing import load_or_create_signing_key
from protocol.signing import verify_object
from tests.hub.assets.support import add_site, enrolled
from tests.hub.auth.support import Hub
from tests.hub.registry.support import (
    DEVICE_PASSWORD,
    FakeRetainedPublisher,
    credentials,
    onnx_bytes,
    push,
    registry,
    report_latency,
    report_malformed,
    report_model,
    report_rejected,
    sha,
)


async def _fleet(hub: Hub, count: int = 4) -> list[str]:
    await add_site(hub, "plant-a")
    devices = [await enrolled(hub, "plant-a", f"AMR {i}") for i in range(count)]
    for device in devices:
        await credentials(hub, device)
    return sorted(devices)


async def _post(hub: Hub, path: str, body: dict[str, Any] | None = None, user: str = "root") -> Any:
    return await hub.client.post(f"/api/v1{path}", headers=await hub.bearer(user), json=body)


async def _get(hub: Hub, path: str) -> Any:
    answer = await hub.client.get(f"/api/v1{path}", headers=await hub.bearer("root"))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _status(hub: Hub, rollout_id: int) -> tuple[str, dict[str, str]]:
    shown = await _get(hub, f"/rollouts/{rollout_id}")
    return shown["state"], {d["device_id"]: d["status"] for d in shown["devices"]}


async def test_push_stores_a_signed_manifest_and_refuses_what_agents_could_not_run(
    hub: Hub, tmp_path: Path
) -> None:
    await add_site(hub, "plant-a")
    await hub.add_user("vic", Role.VIEWER)
    data = onnx_bytes(tmp_path, "v1")
    card = json.dumps({"baseline": {"class_hist": [0.7, 0.3]}, "metrics": {"map50": 0.8}})
    created = await push(hub, data, "1", card=card)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["sha256"], body["size"], body["input_size"]) == (sha(data), len(data), [160, 160])
    manifest = body["manifest"]
    assert manifest["url"] == f"/api/v1/models/artifacts/{sha(data)}"
    assert manifest["baseline"] == {"class_hist": [0.7, 0.3]}
    assert body["card"]["metrics"] == {"map50": 0.8}
    key = load_or_create_signing_key(hub.settings.data_dir)
    verify_object(manifest, key.public_key())
    assert (hub.settings.data_dir / "models" / f"{sha(data)}.onnx").read_bytes() == data

    again = await push(hub, onnx_bytes(tmp_path, "other"), "1")
    assert again.status_code == 409, again.text
    refused = await push(hub, b"\x08\x01garbage", "2")
    assert refused.status_code == 422
    assert "not a valid ONNX model" in refused.json()["detail"][0]["msg"]
    assert (await push(hub, data, "../evil")).status_code == 422
    assert (await push(hub, data, "3", card="[1, 2]")).status_code == 422
    viewer = await hub.client.post(
        "/api/v1/models",
        headers=await hub.bearer("vic"),
        files={"file": ("m.onnx", data)},
        data={"name": "det", "version": "9"},
    )
    assert viewer.status_code == 403
    listed = await hub.client.get("/api/v1/models", headers=await hub.bearer("vic"))
    assert [m["version"] for m in listed.json()["items"]] == ["1"]
    assert len(list((hub.settings.data_dir / "models").iterdir())) == 1  # refused uploads gone


async def test_only_a_device_assigned_the_model_downloads_it_with_its_credentials(
    hub: Hub, tmp_path: Path
) -> None:
    first, second = (await _fleet(hub, 2))[:2]
    data = onnx_bytes(tmp_path, "v1")
    assert (await push(hub, data, "1")).status_code == 201
    url = f"/api/v1/models/artifacts/{sha(data)}"
    assert (await hub.client.get(url)).status_code == 401
    assert (await hub.client.get(url, auth=(first, "wrong"))).status_code == 401
    assert (await hub.client.get(url, auth=(first, DEVICE_PASSWORD))).status_code == 404
    rollout = await _post(
        hub, "/rollouts", {"name": "det", "version": "1", "target": {"devices": [first]}}
    )
    assert rollout.status_code == 201, rollout.text
    answer = await hub.client.get(url, auth=(first, DEVICE_PASSWORD))
    assert answer.status_code == 200
    assert answer.content == data
    assert (await hub.client.get(url, auth=(second, DEVICE_PASSWORD))).status_code == 404


async def test_canary_then_promotion_then_every_device_active(
    hub: Hub, tmp_path: Path, publisher: FakeRetainedPublisher
) -> None:
    devices = await _fleet(hub)
    data = onnx_bytes(tmp_path, "v1")
    await push(hub, data, "1")
    created = await _post(
        hub,
        "/rollouts",
        {"name": "det", "version": "1", "target": {"site": "plant-a"}, "canary_percent": 50},
    )
    assert created.status_code == 201, created.text
    rollout = created.json()["id"]
    canary, rest = devices[:2], devices[2:]
    assert {d: publisher.assignment(d) is not None for d in devices} == {
        d: d in canary for d in devices
    }
    assignment = publisher.assignment(canary[0])
    assert assignment is not None
    assert assignment["device"] == canary[0]
    key = load_or_create_signing_key(hub.settings.data_dir).public_key()
    verify_object(assignment, key)
    verify_object(assignment["manifest"], key)

    assert (await _post(hub, f"/rollouts/{rollout}/promote")).status_code == 409
    await report_model(hub, canary[0], data)
    await registry(hub).tick()
    assert await _status(hub, rollout) == (
        "canary",
        {canary[0]: "active", canary[1]: "assigned", rest[0]: "pending", rest[1]: "pending"},
    )
    await report_model(hub, canary[1], data)
    await registry(hub).tick()  # every canary active: the window starts
    await registry(hub).tick()  # and, with a window of 0 s, ends
    assert (await _status(hub, rollout))[0] == "canary_healthy"

    promoted = await _post(hub, f"/rollouts/{rollout}/promote")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["state"] == "promoted"
    assert all(publisher.assignment(d) is not None for d in devices)
    for device in rest:
        await report_model(hub, device, data)
    await registry(hub).tick()
    state, statuses = await _status(hub, rollout)
    assert (state, set(statuses.values())) == ("completed", {"active"})


async def test_a_rejection_rolls_back_to_each_devices_previous_model(
    hub: Hub, tmp_path: Path, publisher: FakeRetainedPublisher
) -> None:
    devices = await _fleet(hub, 3)
    v1, v2 = onnx_bytes(tmp_path, "v1"), onnx_bytes(tmp_path, "v2")
    await push(hub, v1, "1")
    await push(hub, v2, "2")
    first = await _post(
        hub, "/rollouts", {"name": "det", "version": "1", "target": {"devices": devices[:2]}}
    )
    assert first.status_code == 201
    assert (
        await _post(hub, f"/rollouts/{first.json()['id']}/rollback", {"reason": "x"})
    ).status_code == 200
    # devices[0] and [1] were given v1 by a finished rollout; [2] never had a model.
    await _post(
        hub,
        "/rollouts",
        {
            "name": "det",
            "version": "1",
            "target": {"devices": devices[:2]},
            "auto_promote": True,
            "canary_percent": 100,
        },
    )
    for device in devices[:2]:
        await report_model(hub, device, v1)
    await registry(hub).tick()
    await registry(hub).tick()
    second = await _post(
        hub,
        "/rollouts",
        {"name": "det", "version": "2", "target": {"site": "plant-a"}, "canary_percent": 100},
    )
    assert second.status_code == 201, second.text
    rollout = second.json()["id"]
    busy = await _post(
        hub, "/rollouts", {"name": "det", "version": "1", "target": {"site": "plant-a"}}
    )
    assert busy.status_code == 409
    assert busy.json()["detail"]["code"] == "rollout_in_progress"

    await report_rejected(hub, devices[1], "2", "sha256_mismatch")
    assert "rollback" in [a for _, a in await registry(hub).tick()]
    shown = await _get(hub, f"/rollouts/{rollout}")
    assert shown["state"] == "rolled_back"
    assert shown["reason"].startswith(f"model_rejected by {devices[1]}: sha256_mismatch")
    for device in devices[:2]:
        back = publisher.assignment(device)
        assert back is not None
        assert back["manifest"]["version"] == "1"
    assert publisher.assignment(devices[2]) is None  # cleared: it had none before
    assert (await _post(hub, f"/rollouts/{rollout}/rollback")).status_code == 409
    rows = [(r["actor"], r["action"]) for r in await hub.audit_rows()]
    assert ("system", "model.rollout.rollback") in rows


async def test_a_publish_failure_answers_503_and_names_the_devices(
    hub: Hub, tmp_path: Path, publisher: FakeRetainedPublisher
) -> None:
    devices = await _fleet(hub, 1)
    await push(hub, onnx_bytes(tmp_path, "v1"), "1")
    publisher.failure = "no PUBACK from the broker within 3 s"
    answer = await _post(
        hub, "/rollouts", {"name": "det", "version": "1", "target": {"devices": devices}}
    )
    assert answer.status_code == 503
    assert answer.json()["detail"]["failed"][0]["device"] == devices[0]


async def test_openapi_declares_the_routes_with_their_refusals(hub: Hub) -> None:
    spec = (await hub.client.get("/openapi.json")).json()
    push_route = spec["paths"]["/api/v1/models"]["post"]
    assert {"201", "401", "403", "409", "422"} <= set(push_route["responses"])
    assert "multipart/form-data" in push_route["requestBody"]["content"]
    assert "/api/v1/rollouts/{rollout_id}/promote" in spec["paths"]


async def test_a_latency_regression_on_the_canary_rolls_back(
    hub: Hub, tmp_path: Path, publisher: FakeRetainedPublisher
) -> None:
    devices = await _fleet(hub, 2)
    v1, v2 = onnx_bytes(tmp_path, "v1"), onnx_bytes(tmp_path, "v2")
    await push(hub, v1, "1")
    await push(hub, v2, "2")
    body = {"target": {"devices": devices}, "canary_percent": 100, "auto_promote": True}
    await _post(hub, "/rollouts", {"name": "det", "version": "1", **body})
    for device in devices:
        await report_model(hub, device, v1)
        await report_latency(hub, device, v1, "1", 20.0, ago_s=30)
    await registry(hub).tick()
    await registry(hub).tick()
    second = (await _post(hub, "/rollouts", {"name": "det", "version": "2", **body})).json()["id"]
    await report_model(hub, devices[0], v2, "2")
    await report_latency(hub, devices[0], v2, "2", 25.0)  # within 1.5x
    await registry(hub).tick()
    assert (await _status(hub, second))[0] != "rolled_back"
    await report_model(hub, devices[1], v2, "2")
    await report_latency(hub, devices[1], v2, "2", 90.0)
    await registry(hub).tick()
    shown = await _get(hub, f"/rollouts/{second}")
    assert shown["state"] == "rolled_back"
    assert shown["reason"].startswith(f"latency_regression on {devices[1]}")
    assert all((publisher.assignment(d) or {})["manifest"]["version"] == "1" for d in devices)


async def test_a_cleared_assignment_reported_as_malformed_does_not_fail_the_next_rollout(
    hub: Hub, tmp_path: Path
) -> None:
    devices = await _fleet(hub, 1)
    await push(hub, onnx_bytes(tmp_path, "v1"), "1")
    body = {"name": "det", "version": "1", "target": {"devices": devices}}
    first = (await _post(hub, "/rollouts", body)).json()["id"]
    await _post(hub, f"/rollouts/{first}/rollback")
    await report_malformed(hub, devices[0])  # the agent saw the emptied retained topic
    second = (await _post(hub, "/rollouts", body)).json()["id"]
    await registry(hub).tick()
    assert (await _status(hub, second))[0] == "canary"


async def test_a_user_limited_to_sites_sees_only_rollouts_reaching_them(
    hub: Hub, tmp_path: Path, publisher: FakeRetainedPublisher
) -> None:
    mine = await _fleet(hub, 1)
    await add_site(hub, "plant-b")
    theirs = await enrolled(hub, "plant-b", "AMR B")
    await credentials(hub, theirs)
    await push(hub, onnx_bytes(tmp_path, "v1"), "1")
    ids = {}
    for name, devices in (("a", mine), ("b", [theirs]), ("both", [*mine, theirs])):
        created = await _post(
            hub, "/rollouts", {"name": "det", "version": "1", "target": {"devices": devices}}
        )
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]
        await _post(hub, f"/rollouts/{ids[name]}/rollback")  # free the devices again
    await hub.add_user("vic", Role.VIEWER, ["plant-a"])
    vic = await hub.bearer("vic")
    listed = (await hub.client.get("/api/v1/rollouts", headers=vic)).json()["items"]
    assert sorted(r["id"] for r in listed) == sorted([ids["a"], ids["both"]])
    both = (await hub.client.get(f"/api/v1/rollouts/{ids['both']}", headers=vic)).json()
    assert [d["device_id"] for d in both["devices"]] == mine
    hidden = await hub.client.get(f"/api/v1/rollouts/{ids['b']}", headers=vic)
    assert hidden.status_code == 404
