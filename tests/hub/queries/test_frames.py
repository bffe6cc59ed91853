"""Kept frames: snapshots and captures are stored once (re-sends ignored), inference frames
are not kept; listings carry the model's objects; the JPEG comes back byte for byte; scope."""

from __future__ import annotations

from datetime import timedelta

import cv2
import numpy as np

from protocol.models import DetectionBatch, Frame, FramePurpose
from tests.hub.auth.support import Hub
from tests.hub.queries.support import T0, fleet, frame, store


def jpeg(shade: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((24, 32, 3), shade, np.uint8))
    assert ok
    return data.tobytes()


def sent(frame_id: str, purpose: FramePurpose, shade: int, minute: int) -> Frame:
    return Frame(
        ts=T0 + timedelta(minutes=minute),
        frame_id=frame_id,
        purpose=purpose,
        width=32,
        height=24,
        jpeg=jpeg(shade),
    )


async def test_snapshots_and_captures_are_kept_with_their_detections(hub: Hub) -> None:
    f = await fleet(hub)
    unsure = frame(T0 + timedelta(minutes=2), ["person"], {})
    capture = sent(unsure.frame_id, FramePurpose.CAPTURE, 90, 2)
    bodies = [
        sent("snap-1", FramePurpose.SNAPSHOT, 10, 1),
        capture,
        DetectionBatch(frames=[unsure]),
        sent("thin-1", FramePurpose.INFERENCE, 50, 3),
    ]
    await store(hub, f.mine, bodies)
    await store(hub, f.mine, bodies)  # a re-send after a lost watermark changes nothing
    await store(hub, f.theirs, [sent("snap-b", FramePurpose.SNAPSHOT, 20, 1)])

    page = (await f.get("vic", f"/devices/{f.mine}/frames")).json()
    assert [i["frame_id"] for i in page["items"]] == [unsure.frame_id, "snap-1"]
    kept = page["items"][0]
    assert kept["purpose"] == "capture"
    assert kept["model"] == {"name": "yolo", "version": "1.0"}
    assert [o["cls"] for o in kept["objects"]] == ["person"]
    assert kept["size"] == len(capture.jpeg)
    image = await hub.client.get(kept["url"], headers=f.headers["vic"])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert image.content == capture.jpeg

    captures = (await f.get("vic", "/frames", purpose="capture")).json()["items"]
    assert [i["frame_id"] for i in captures] == [unsure.frame_id]
    everything = (await f.get("root", "/frames")).json()["items"]
    assert sorted(i["frame_id"] for i in everything) == sorted(
        [unsure.frame_id, "snap-1", "snap-b"]
    )
    mine_only = (await f.get("vic", "/frames")).json()["items"]
    assert {i["device_id"] for i in mine_only} == {f.mine}


async def test_paging_and_scope(hub: Hub) -> None:
    f = await fleet(hub)
    await store(hub, f.mine, [sent(f"s-{i}", FramePurpose.SNAPSHOT, i, i) for i in range(5)])
    first = (await f.get("vic", f"/devices/{f.mine}/frames", limit=2)).json()
    second = (
        await f.get("vic", f"/devices/{f.mine}/frames", limit=2, cursor=first["next_cursor"])
    ).json()
    assert [i["frame_id"] for i in first["items"] + second["items"]] == [
        "s-4", "s-3", "s-2", "s-1"
    ]  # fmt: skip
    assert (await f.get("vic", f"/devices/{f.theirs}/frames")).status_code == 404
    theirs = await f.get("vic", f"/devices/{f.theirs}/frames/snap-b.jpg")
    assert theirs.status_code == 404
    missing = await f.get("vic", f"/devices/{f.mine}/frames/nope.jpg")
    assert missing.status_code == 404
    assert missing.json()["detail"]["code"] == "frame_not_found"
