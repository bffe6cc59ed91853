"""`GET /devices/{id}/drift`: the newest window beside the model's baseline, the hub's score
history, scope; a model the registry does not know has no baseline."""

from __future__ import annotations

from datetime import timedelta

from hub.drift.worker import STREAM
from hub.storage.db import transaction
from hub.storage.models import DriftReference, ModelVersionRow
from protocol.models import DeviceState, ModelRef, TelemetryBatch, TelemetryPoint
from tests.hub.auth.support import Hub
from tests.hub.queries.support import T0, fleet, store

SHA = "e" * 64
BASELINE = {"class_frac": [0.5, 0.5], "brightness_hist": [0.25, 0.25, 0.25, 0.25]}


def window(at_minute: int, brightness: list[float]) -> TelemetryBatch:
    at = T0 + timedelta(minutes=at_minute)
    points = [TelemetryPoint(ts=at, metric="drift.frames", value=10)]
    points += [
        TelemetryPoint(ts=at, metric="drift.brightness_hist", value=v, tags={"bin": f"{i:02d}"})
        for i, v in enumerate(brightness)
    ]
    points.append(TelemetryPoint(ts=at, metric="drift.class_frac", value=1.0, tags={"cls": "a"}))
    return TelemetryBatch(points=points)


async def test_the_newest_window_against_the_baseline(hub: Hub) -> None:
    f = await fleet(hub)
    async with transaction(hub.sessions) as session:
        session.add(
            ModelVersionRow(
                name="det", version="2", sha256=SHA, size=1, card={},
                manifest={"classes": ["a", "b"], "baseline": BASELINE},
                created_by="ml", created_at=T0,
            )
        )  # fmt: skip
    model = ModelRef(name="det", version="2", sha256=SHA)
    await store(hub, f.mine, [DeviceState(online=True, model=model)], stream="state")
    await store(hub, f.mine, [window(1, [0.25] * 4), window(2, [1.0, 0.0, 0.0, 0.0])])
    score = TelemetryPoint(
        ts=T0 + timedelta(minutes=2),
        metric="drift.psi",
        value=2.1,
        tags={"hist": "brightness_hist"},
    )
    await store(hub, f.mine, [TelemetryBatch(points=[score])], stream=STREAM)

    got = await f.get("vic", f"/devices/{f.mine}/drift", **{"from": T0})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["model"]["sha256"] == SHA
    assert body["has_baseline"] is True
    assert body["window_ts"].startswith("2026-01-01T00:02:00")
    hists = {h["key"]: h for h in body["histograms"]}
    assert hists["brightness_hist"]["live"] == [1.0, 0.0, 0.0, 0.0]
    assert hists["brightness_hist"]["baseline"] == [0.25] * 4
    assert hists["brightness_hist"]["psi_train"] > 0.25
    assert body["reference"] == {"windows": 0, "needed": 5, "learning": True}
    assert (hists["brightness_hist"]["reference"], hists["brightness_hist"]["psi"]) == (None, None)
    assert hists["class_frac"]["bins"] == ["a", "b"]
    assert hists["class_frac"]["live"] == [1.0, 0.0]
    assert body["history"] == {"brightness_hist": [{"ts": "2026-01-01T00:02:00Z", "psi": 2.1}]}
    assert (await f.get("vic", f"/devices/{f.theirs}/drift")).status_code == 404

    # Once the camera's own reference is learned, the window is scored against it too.
    async with transaction(hub.sessions) as session:
        session.add(
            DriftReference(
                device=f.mine, camera="", model_sha256=SHA, windows=5, last_window_ms=1,
                histograms={"brightness_hist": [0.9, 0.1, 0.0, 0.0], "class_frac": [1.0, 0.0]},
                created_at=T0, updated_at=T0,
            )
        )  # fmt: skip
    body = (await f.get("vic", f"/devices/{f.mine}/drift")).json()
    assert body["reference"] == {"windows": 5, "needed": 5, "learning": False}
    hists = {h["key"]: h for h in body["histograms"]}
    assert hists["brightness_hist"]["reference"] == [0.9, 0.1, 0.0, 0.0]
    assert 0 < hists["brightness_hist"]["psi"] < hists["brightness_hist"]["psi_train"]
    assert hists["class_frac"]["psi"] == 0.0

    # A viewer cannot make the hub forget it; an operator (here the admin) can.
    reset = f"/api/v1/devices/{f.mine}/drift/reference"
    refused = await hub.client.delete(reset, headers=f.headers["vic"])
    assert refused.status_code == 403
    done = await hub.client.delete(reset, headers=f.headers["root"])
    assert done.json() == {"device_id": f.mine, "forgotten": 1}
    body = (await f.get("vic", f"/devices/{f.mine}/drift")).json()
    assert body["reference"]["learning"] is True


async def test_a_model_the_registry_does_not_know_has_no_baseline(hub: Hub) -> None:
    f = await fleet(hub)
    model = ModelRef(name="local", version="1", sha256="f" * 64)
    await store(hub, f.mine, [DeviceState(online=True, model=model)], stream="state")
    await store(hub, f.mine, [window(1, [0.25] * 4)])
    body = (await f.get("vic", f"/devices/{f.mine}/drift")).json()
    assert body["has_baseline"] is False
    assert body["histograms"] == []
