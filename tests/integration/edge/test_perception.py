"""`edge-agent run` with a camera: a real MJPEG stream, a real ultralytics-exported model.

The stream shows the shapes the tiny model was trained on; a stop rule watches a
danger zone covering the frame. Detections, the critical `rule_fired` event and a
snapshot reach the broker; the stop latches with source `rule` and a release is
refused while the rule holds; killing the stream reports `camera_lost`, bringing
it back `camera_restored`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import cv2
import numpy as np
import pytest
import tomli_w

from protocol import Channel, CommandType, DetectionBatch, Event, KnownEvent, Severity, topic
from protocol.models import CaptureParams, Frame, ReleaseParams
from protocol.signing import public_key_to_text
from tests.edge_agent import model_rig
from tests.edge_agent.mjpeg_server import MjpegServer
from tests.edge_agent.ultralytics_model import CLASSES, draw_scene
from tests.integration.edge.robotrig import (
    HUB_KEY,
    engaged,
    send_and_collect,
    signed,
    status,
)
from tests.integration.harness import (
    AgentProcess,
    BrokerObserver,
    agent_config,
    wait_for,
)
from tests.integration.hubrig import HubStack

WHOLE_FRAME = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def scene(n: int, width: int, height: int) -> bytes:
    image = draw_scene(np.random.default_rng(n % 16), height, width, shapes=3)[0]
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.fixture
def stream() -> Iterator[MjpegServer]:
    server = MjpegServer(fps=10, width=320, height=240, draw=scene)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def observing(mqtt_url: str, device: str, run_id: str) -> BrokerObserver:
    """What the agent publishes, seen at the broker; the real hub stores and confirms it."""
    channels = (Channel.EVENTS, Channel.DETECTIONS, Channel.FRAMES)
    return BrokerObserver(mqtt_url, [topic(device, c) for c in channels], f"obs-{run_id}")


def bodies(observer: BrokerObserver, device: str, kind: Channel) -> list[object]:
    return observer.bodies(device, kind)


def events(observer: BrokerObserver, device: str, kind: KnownEvent) -> list[Event]:
    return [
        e
        for e in bodies(observer, device, Channel.EVENTS)
        if isinstance(e, Event) and e.type == kind
    ]


@pytest.mark.timeout(180)
def test_camera_model_and_danger_rule_through_a_real_agent(
    tmp_path: Path,
    mqtt_url: str,
    run_id: str,
    stream: MjpegServer,
    tiny_yolo_onnx: Path,
    real_hub: Callable[[str], HubStack],
) -> None:
    device = f"cam-{run_id}"
    data = tmp_path / "data"
    cfg = agent_config(
        tmp_path / "agent.toml",
        device=device,
        data_dir=data,
        mqtt_url=mqtt_url,
        hub={"public_key": public_key_to_text(HUB_KEY.public_key())},
    )
    camera = {
        "name": "front",
        "source": stream.url,
        "fps": 5,
        "reconnect_initial_s": 0.2,
        "reconnect_max_s": 1,
    }
    perception = {
        "model": str(tiny_yolo_onnx),
        "batch_delay_s": 0.2,
        "detector": {"conf": 0.05},
        "capture": {"enabled": True, "band": [0.0, 1.0], "probability": 1.0, "min_interval_s": 0},
        "zones": [{"name": "danger", "camera": "front", "polygon": WHOLE_FRAME}],
        "rules": [
            {
                "name": "shape-in-danger",
                "classes": list(CLASSES),
                "zone": "danger",
                "min_conf": 0.05,
                "action": "stop",
            }
        ],
    }
    # Top-level keys must come before any table: the extra settings go first.
    cfg.write_text(tomli_w.dumps({"cameras": [camera], "perception": perception}) + cfg.read_text())
    agent = AgentProcess(cfg, tmp_path / "agent.log")
    hub = real_hub(mqtt_url)
    with observing(mqtt_url, device, run_id) as observer:
        agent.start()
        try:
            wait_for(lambda: engaged(data), 60, "the danger-zone stop")
            assert status(data)["estop"]["source"] == "rule"
            wait_for(
                lambda: bool(events(observer, device, KnownEvent.RULE_FIRED)), 20, "rule_fired"
            )
            fired = events(observer, device, KnownEvent.RULE_FIRED)[0]
            assert fired.severity == Severity.CRITICAL
            wait_for(lambda: bool(bodies(observer, device, Channel.DETECTIONS)), 20, "detections")
            batch = bodies(observer, device, Channel.DETECTIONS)[0]
            assert isinstance(batch, DetectionBatch)
            frame = batch.frames[0]
            assert frame.camera == "front"
            assert frame.model.name == tiny_yolo_onnx.stem
            assert frame.objects
            assert frame.zones["danger"]
            wait_for(lambda: bool(bodies(observer, device, Channel.FRAMES)), 20, "a snapshot")
            snapshot = bodies(observer, device, Channel.FRAMES)[0]
            assert isinstance(snapshot, Frame)
            assert snapshot.camera == "front"

            # The shapes stay in the zone: the rule holds and release is refused.
            held = signed(device, CommandType.RELEASE, ReleaseParams(reason="try"))
            acks = asyncio.run(send_and_collect(mqtt_url, device, [held], until_status="failed"))
            assert "rule:shape-in-danger" in acks[-1]["detail"]

            # Frames kept for retraining go to the hub on a `capture` command.
            captured = [f.frame_id for f in bodies(observer, device, Channel.FRAMES)]
            capture = signed(device, CommandType.CAPTURE, CaptureParams(max_frames=3))
            acks = asyncio.run(send_and_collect(mqtt_url, device, [capture], until_status="done"))
            assert acks[-1]["detail"] == "3 captured frame(s) queued for the hub"
            wait_for(
                lambda: len(bodies(observer, device, Channel.FRAMES)) >= len(captured) + 3,
                20,
                "three captured frames",
            )

            stream.stop()
            wait_for(
                lambda: bool(events(observer, device, KnownEvent.CAMERA_LOST)), 20, "camera_lost"
            )
            stream.start()
            wait_for(
                lambda: bool(events(observer, device, KnownEvent.CAMERA_RESTORED)),
                20,
                "camera_restored",
            )
            # The real hub stored what the broker saw.
            wanted = {"rule_fired", "camera_lost", "camera_restored"}
            wait_for(lambda: wanted <= hub.event_types(device), 30, "the events at the hub")
            assert hub.detection_frames(device) > 0
            assert agent.terminate() == 0
        finally:
            agent.ensure_stopped()


@pytest.mark.timeout(180)
def test_model_assignments_over_mqtt_swap_the_serving_model_or_are_refused(
    tmp_path: Path,
    mqtt_url: str,
    run_id: str,
    stream: MjpegServer,
    tiny_yolo_onnx: Path,
    real_hub: Callable[[str], HubStack],
) -> None:
    device = f"mdl-{run_id}"
    data = tmp_path / "data"
    cfg = agent_config(
        tmp_path / "agent.toml",
        device=device,
        data_dir=data,
        mqtt_url=mqtt_url,
        hub={"public_key": public_key_to_text(model_rig.HUB_KEY.public_key())},
        mqtt={"username": model_rig.USERNAME, "password": model_rig.PASSWORD},
    )
    camera = {"name": "front", "source": stream.url, "fps": 5}
    perception = {"batch_delay_s": 0.2, "detector": {"conf": 0.05}}
    # Top-level keys must come before any table: the extra settings go first.
    cfg.write_text(tomli_w.dumps({"cameras": [camera], "perception": perception}) + cfg.read_text())
    good = tiny_yolo_onnx.read_bytes()
    tampered = bytearray(good)
    tampered[len(tampered) // 2] ^= 0xFF
    agent = AgentProcess(cfg, tmp_path / "agent.log")
    real_hub(mqtt_url)
    with (
        model_rig.ArtifactServer() as artifacts,
        observing(mqtt_url, device, run_id) as observer,
    ):
        v1 = model_rig.manifest_for(
            good, url=artifacts.serve("/v1.onnx", good), name="shapes", version="1",
            classes=CLASSES,
        )  # fmt: skip
        v2 = model_rig.manifest_for(
            good, url=artifacts.serve("/v2.onnx", bytes(tampered)), name="shapes", version="2",
            classes=CLASSES,
        )  # fmt: skip
        agent.start()
        try:
            wait_for(lambda: status(data).get("link", {}).get("state") == "up", 30, "link up")
            publish_retained(mqtt_url, device, model_rig.assignment_for(v1, device=device))
            wait_for(lambda: bool(events(observer, device, KnownEvent.MODEL_ACTIVATED)), 60, "v1")
            wait_for(lambda: (status(data).get("model") or {}).get("version") == "1", 10, "status")
            wait_for(
                lambda: any(
                    f.model.version == "1"
                    for b in bodies(observer, device, Channel.DETECTIONS)
                    for f in b.frames  # type: ignore[attr-defined]
                ),
                30,
                "detections by v1",
            )

            publish_retained(mqtt_url, device, model_rig.assignment_for(v2, device=device))
            wait_for(lambda: bool(events(observer, device, KnownEvent.MODEL_REJECTED)), 60, "v2")
            rejected = events(observer, device, KnownEvent.MODEL_REJECTED)[0]
            assert rejected.detail["reason"] == "sha256_mismatch", rejected.detail
            assert rejected.detail["version"] == "2"
            seen = len(bodies(observer, device, Channel.DETECTIONS))
            wait_for(
                lambda: len(bodies(observer, device, Channel.DETECTIONS)) > seen + 1,
                30,
                "detections after the refusal",
            )
            latest = bodies(observer, device, Channel.DETECTIONS)[-1]
            assert {f.model.version for f in latest.frames} == {"1"}  # type: ignore[attr-defined]
            assert (status(data).get("model") or {}).get("version") == "1"
            assert agent.terminate() == 0
        finally:
            agent.ensure_stopped()
            publish_retained(mqtt_url, device, b"")  # clear the retained assignment


def publish_retained(url: str, device: str, payload: bytes) -> None:
    async def publish() -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        async with aiomqtt.Client(host, int(port), identifier=f"hub-{device}") as client:
            await client.publish(topic(device, Channel.MODEL), payload, qos=1, retain=True)

    asyncio.run(publish())
