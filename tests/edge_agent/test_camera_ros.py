"""A camera on a ROS 2 `sensor_msgs/Image` topic, published by a real rclpy node in the test."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.perception.camera import Camera
from edge_agent.perception.camera_config import CameraSection
from edge_agent.perception.camera_ros import to_bgr
from edge_agent.perception.camera_sources import SourceUnavailable
from protocol.models import KnownEvent
from tests.edge_agent.test_camera import EventLog

# rclpy's message parser imports lark, which imports the deprecated `sre_parse` and `sre_constants`.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_(parse|constants)' is deprecated")

TOPIC = "/cam/image_raw"


def image_message(value: int, encoding: str = "bgr8", width: int = 32, height: int = 24) -> object:
    from sensor_msgs.msg import Image

    channels = {"bgr8": 3, "rgb8": 3, "mono8": 1, "rgba8": 4}[encoding]
    pixels = np.zeros((height, width, channels), np.uint8)
    pixels[..., 0] = value  # blue in bgr8, red in rgb8
    step = width * channels + 8  # padded rows, as some drivers send
    rows = np.zeros((height, step), np.uint8)
    rows[:, : width * channels] = pixels.reshape(height, -1)
    return Image(height=height, width=width, encoding=encoding, step=step, data=rows.tobytes())


class Publisher:
    """A node publishing bgr8 images whose blue channel counts up, until paused."""

    def __init__(self, domain_id: int) -> None:
        import rclpy
        from rclpy.context import Context
        from sensor_msgs.msg import Image

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("camera_driver", context=self.context)
        self.publisher = self.node.create_publisher(Image, TOPIC, 10)
        self.flowing = threading.Event()
        self.flowing.set()
        self.sent = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.flowing.is_set():
                self.sent += 1
                self.publisher.publish(image_message(self.sent % 250))
            time.sleep(0.05)

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self.thread.join(5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Publisher, int]]:
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    domain_id = secrets.randbelow(100) + 1
    publisher = Publisher(domain_id)
    try:
        yield publisher, domain_id
    finally:
        publisher.close()


def test_encodings_become_bgr_and_others_are_refused() -> None:
    bgr = to_bgr(image_message(9, "bgr8"))  # type: ignore[arg-type]
    assert bgr.shape == (24, 32, 3)
    assert bgr[0, 0].tolist() == [9, 0, 0]
    rgb = to_bgr(image_message(9, "rgb8"))  # type: ignore[arg-type]
    assert rgb[0, 0].tolist() == [0, 0, 9]
    assert to_bgr(image_message(7, "mono8"))[5, 5].tolist() == [7, 7, 7]  # type: ignore[arg-type]
    assert to_bgr(image_message(7, "rgba8"))[0, 0].tolist() == [0, 0, 7]  # type: ignore[arg-type]
    depth = image_message(1, "bgr8")
    depth.encoding = "16UC1"  # type: ignore[attr-defined]
    with pytest.raises(SourceUnavailable, match="16UC1"):
        to_bgr(depth)  # type: ignore[arg-type]


def test_topic_names_are_checked() -> None:
    assert CameraSection(source="ros2:/cam/image_raw").kind == "ros2"
    with pytest.raises(ValidationError, match="not a valid topic name"):
        CameraSection(source="ros2:/cam/image raw")
    with pytest.raises(ValidationError, match="ros2: sources only"):
        CameraSection(source="0", ros_domain_id=3)


@pytest.mark.timeout(60)
async def test_images_feed_the_camera_and_a_silent_topic_is_a_lost_camera(
    driver: tuple[Publisher, int],
) -> None:
    publisher, domain_id = driver
    section = CameraSection(
        name="ros",
        source=f"ros2:{TOPIC}",
        ros_domain_id=domain_id,
        fps=0,
        read_timeout_s=0.5,
        reconnect_initial_s=0.1,
        reconnect_max_s=0.4,
    )
    log = EventLog()
    async with Camera(section, on_event=log) as camera:
        frame = await camera.next_frame()
        assert frame.image.shape == (24, 32, 3)
        later = await camera.next_frame()
        assert later.seq > frame.seq
        assert int(later.image[0, 0, 0]) != int(frame.image[0, 0, 0]), "the same image twice"

        publisher.flowing.clear()
        paused = time.monotonic()
        lost = await log.wait(KnownEvent.CAMERA_LOST, within=5)
        publisher.flowing.set()
        restored = await log.wait(KnownEvent.CAMERA_RESTORED, within=10)
        print(
            f"\nROS 2 image topic silent -> camera_lost after {(lost - paused) * 1000:.0f} ms; "
            f"publishing again -> camera_restored after {(restored - lost) * 1000:.0f} ms"
        )
        assert lost - paused < 0.5 + 1.0
        assert len(log.of(KnownEvent.CAMERA_LOST)) == 1
