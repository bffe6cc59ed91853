"""A camera fed by a ROS 2 `sensor_msgs/Image` topic (`source = "ros2:/camera/image_raw"`).

The source joins the ROS graph with a node and a context of its own (rclpy spins
in a thread); `read()` waits up to `read_timeout_s` for an image newer than the
last one handed out, so a silent topic is a lost camera like a dead stream.
Encodings: `bgr8`, `rgb8`, `mono8`, `bgra8`, `rgba8` (and `8UC1`/`8UC3`); anything
else (16-bit depth, Bayer, YUV) is refused with the encoding named. Needs the
`ros` extra.
"""

from __future__ import annotations

import re
import threading

import cv2
import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image as ImageMsg

from edge_agent.perception.camera_config import CameraSection
from edge_agent.perception.camera_sources import Image, SourceUnavailable
from protocol.rosnode import RosNode

_CHANNELS = {"bgr8": 3, "rgb8": 3, "8UC3": 3, "mono8": 1, "8UC1": 1, "bgra8": 4, "rgba8": 4}
_TO_BGR = {
    "rgb8": cv2.COLOR_RGB2BGR,
    "mono8": cv2.COLOR_GRAY2BGR,
    "8UC1": cv2.COLOR_GRAY2BGR,
    "bgra8": cv2.COLOR_BGRA2BGR,
    "rgba8": cv2.COLOR_RGBA2BGR,
}


def to_bgr(message: ImageMsg) -> Image:
    """The image as a BGR uint8 array (a copy); `SourceUnavailable` for other encodings."""
    channels = _CHANNELS.get(message.encoding)
    if channels is None:
        supported = ", ".join(sorted(_CHANNELS))
        raise SourceUnavailable(
            f"image encoding {message.encoding!r} is not supported (supported: {supported})"
        )
    height, width, step = message.height, message.width, message.step
    raw = np.frombuffer(message.data, dtype=np.uint8)
    if step < width * channels or raw.size < step * height:
        raise SourceUnavailable(f"image of {width}x{height} with step {step} has {raw.size} bytes")
    rows = raw[: step * height].reshape(height, step)[:, : width * channels]
    pixels = rows.reshape(height, width, channels)
    code = _TO_BGR.get(message.encoding)
    if code is None:
        return np.array(pixels, dtype=np.uint8)
    return np.asarray(cv2.cvtColor(pixels, code), dtype=np.uint8)


class RosImageSource:
    """Frames from a ROS 2 image topic."""

    frame_interval_s = 0.0

    def __init__(self, topic: str, *, name: str, domain_id: int | None, timeout_s: float) -> None:
        self.topic, self.domain_id, self.timeout_s = topic, domain_id, timeout_s
        self._node_name = "outpost_camera_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        self._latest: ImageMsg | None = None
        self._fresh = threading.Condition()
        self._ros: RosNode | None = None

    @classmethod
    def from_section(cls, section: CameraSection) -> RosImageSource:
        """The source a `ros2:` camera section describes."""
        return cls(
            section.target,
            name=section.name,
            domain_id=section.ros_domain_id,
            timeout_s=section.read_timeout_s,
        )

    def open(self) -> None:
        """Join the graph and subscribe; images flow in from the spin thread."""
        self.close()
        try:
            ros = RosNode(self._node_name, domain_id=self.domain_id)
        except Exception as exc:  # rclpy raises its own types from C
            raise SourceUnavailable(f"cannot join the ROS 2 graph for {self.topic}: {exc}") from exc
        try:
            ros.node.create_subscription(
                ImageMsg, self.topic, self._received, qos_profile_sensor_data
            )
        except Exception as exc:
            ros.close()
            raise SourceUnavailable(f"cannot subscribe to ROS 2 topic {self.topic}: {exc}") from exc
        ros.spin()
        self._ros = ros

    def _received(self, message: ImageMsg) -> None:
        with self._fresh:
            self._latest = message
            self._fresh.notify_all()

    def read(self) -> Image | None:
        """The next image; `SourceUnavailable` when none comes within the read timeout."""
        with self._fresh:
            if self._latest is None:
                self._fresh.wait(self.timeout_s)
            message, self._latest = self._latest, None
        if message is None:
            raise SourceUnavailable(
                f"no image on ROS 2 topic {self.topic} within {self.timeout_s:g} s"
            )
        return to_bgr(message)

    def close(self) -> None:
        """Leave the graph."""
        if self._ros is not None:
            self._ros.close()
            self._ros = None
