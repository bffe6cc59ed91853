"""`edge-agent run` with `[detect_api]`: the real agent answers `POST /v1/detect` with
the objects its camera pipeline sends to the broker for the same image.

The camera is a PNG file (read losslessly, looping), so the pipeline and the API see the
very same pixels; the model is the shipped detector (no `[perception] model`). Status
names the API's address; SIGTERM closes the port.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import tomli_w

from protocol import Channel, DetectionBatch, topic
from protocol.models import DetectedObject
from tests.edge_agent.sim_scene import encoded, person_and_forklift
from tests.edge_agent.test_detect_api import iou
from tests.integration.edge.robotrig import status
from tests.integration.harness import (
    AgentProcess,
    BrokerObserver,
    agent_config,
    free_port,
    wait_for,
)
from tests.integration.hubrig import HubStack


def frame_objects(observer: BrokerObserver, device: str) -> list[DetectedObject] | None:
    """The objects of the first frame result the agent sent, once one arrived."""
    for body in observer.bodies(device, Channel.DETECTIONS):
        if isinstance(body, DetectionBatch):
            return body.frames[0].objects
    return None


@pytest.mark.timeout(180)
def test_the_running_agent_detects_a_posted_image_as_its_camera_pipeline_does(
    tmp_path: Path, mqtt_url: str, run_id: str, real_hub: Callable[[str], HubStack]
) -> None:
    device = f"det-{run_id}"
    data = tmp_path / "data"
    png = encoded(person_and_forklift(), ".png")
    (tmp_path / "scene.png").write_bytes(png)
    port = free_port()
    cfg = agent_config(
        tmp_path / "agent.toml",
        device=device,
        data_dir=data,
        mqtt_url=mqtt_url,
        detect_api={"port": port},
    )
    camera = {"name": "front", "source": f"file:{tmp_path / 'scene.png'}", "fps": 2}
    perception = {"batch_delay_s": 0.2, "drift": {"enabled": False}}
    # Top-level keys must come before any table: the extra settings go first.
    cfg.write_text(tomli_w.dumps({"cameras": [camera], "perception": perception}) + cfg.read_text())
    url = f"http://127.0.0.1:{port}/v1/detect"
    agent = AgentProcess(cfg, tmp_path / "agent.log")
    real_hub(mqtt_url)  # stores and confirms; the observer sees what the agent published
    detections = topic(device, Channel.DETECTIONS)
    with BrokerObserver(mqtt_url, detections, client_id=f"obs-{run_id}") as observer:
        agent.start()
        try:
            wait_for(lambda: frame_objects(observer, device) is not None, 90, "detections")
            sent = frame_objects(observer, device)
            assert sent is not None
            assert {o.cls for o in sent} >= {"person", "forklift"}
            assert (status(data).get("detect_api") or {}).get("url") == url

            with httpx.Client(timeout=30) as client:
                answer = client.post(url, content=png, headers={"Content-Type": "image/png"})
                assert answer.status_code == 200, answer.text
                objects = answer.json()["objects"]
                assert [o["cls"] for o in objects] == [o.cls for o in sent]
                for got, want in zip(objects, sent, strict=True):
                    assert iou(got["box"], want.box.model_dump()) >= 0.99
                    assert got["conf"] == pytest.approx(want.conf, abs=1e-6)
                assert answer.json()["model"]["name"] == "outpost-sim-detector"

                bad = client.post(url, content=b"GIF89a", headers={"Content-Type": "image/png"})
                assert bad.status_code == 400
                assert bad.json()["error"].startswith("not a JPEG or PNG image")

            assert agent.terminate() == 0
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5)
        finally:
            agent.ensure_stopped()
