"""`outpost sim camera`: a camera-only device on a real Mosquitto, as a gateway sees it."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol import Channel, decode_envelope, topic
from protocol.models import Frame, FramePurpose
from tests.integration.harness import PrivateBroker

OUTPOST = str(Path(sys.executable).parent / "outpost")


@pytest.mark.timeout(120)
def test_sim_camera_sends_inference_frames_of_a_scenario_view(tmp_path: Path) -> None:
    broker = PrivateBroker(tmp_path / "mosquitto")
    broker.start()
    received: list[bytes] = []
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, m: received.append(m.payload)
    client.connect("127.0.0.1", broker.port)
    client.subscribe(topic("cam-dock-1", Channel.FRAMES), qos=1)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        args = [OUTPOST, "sim", "camera", "--mqtt-url", broker.url, "--device", "cam-dock-1"]
        out = subprocess.run(
            [*args, "--view", "cam-dock", "--fps", "10", "--frames", "3"],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "3 frames sent" in out.stdout
    finally:
        client.loop_stop()
        client.disconnect()
        broker.kill()
    envelopes = [decode_envelope(p) for p in received]
    assert [e.seq for e in envelopes] == [1, 2, 3]
    assert {e.device for e in envelopes} == {"cam-dock-1"}
    for envelope in envelopes:
        assert isinstance(envelope.body, Frame)
        assert envelope.body.purpose is FramePurpose.INFERENCE
        assert (envelope.body.width, envelope.body.height) == (640, 480)


def test_an_unknown_view_is_refused_with_the_allowed_ones() -> None:
    args = [OUTPOST, "sim", "camera", "--mqtt-url", "mqtt://127.0.0.1:1", "--device", "c-1"]
    out = subprocess.run(
        [*args, "--view", "nowhere"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 2
    assert "--view 'nowhere' is not a fixed camera" in out.stderr
    assert "cam-dock" in out.stderr
