"""Camera source plugins: one small class per kind behind the `FrameSource` protocol.

A source is driven by the camera's capture thread, never by the event loop: its
calls may block (OpenCV reads do). `open()` and `read()` raise `SourceUnavailable`
with a reason a technician can act on; the camera then reports `camera_lost`
and reopens with backoff. `read()` returns None only for a clean end of stream
(a file played once).

HTTP MJPEG and RTSP both go through OpenCV's FFmpeg backend, which reads
`multipart/x-mixed-replace` streams and honours open and read timeouts, so a
dead or hung connection surfaces within `read_timeout_s` instead of blocking.

The registry `SOURCE_FACTORIES` maps each kind of `CameraSection.kind` to a
factory. A ROS 2 `sensor_msgs/Image` source fits the same protocol: its `read()`
waits (with `read_timeout_s`) for the next image its subscription received.

Example:
    source = make_source(CameraSection(source="file:/data/clip.avi"))
    source.open()
    image = source.read()  # BGR uint8, or None at the end of a file played once
    source.close()
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeAlias

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.errors import AgentError
from edge_agent.perception.camera_config import CameraSection, SourceKind

logger = logging.getLogger(__name__)

Image: TypeAlias = npt.NDArray[np.uint8]
"""A BGR frame, height x width x 3, uint8."""

MAX_FILE_FPS = 1000.0
DEFAULT_FILE_FPS = 25.0


class CameraError(AgentError):
    """Root of the camera's errors."""


class SourceUnavailable(CameraError):
    """The source cannot be opened or stopped giving frames; the reason says why."""

    retriable = True


class FrameSource(Protocol):
    """What the camera needs from a source of frames."""

    @property
    def frame_interval_s(self) -> float:
        """Seconds between frames when the camera must pace reads itself (files); 0: live."""

    def open(self) -> None:
        """Open the source; `SourceUnavailable` with the reason when it cannot."""

    def read(self) -> Image | None:
        """The next BGR frame (may block); None at a clean end of stream."""

    def close(self) -> None:
        """Release the source; safe to call when it is not open."""


SourceFactory = Callable[[CameraSection], FrameSource]


def as_bgr(image: npt.NDArray[np.generic]) -> Image:
    """A 3-channel uint8 BGR view or copy of a grey, BGR or BGRA frame."""
    if image.dtype != np.uint8:
        raise SourceUnavailable(f"source gave {image.dtype} frames; only 8-bit video is supported")
    frame: Image = np.asarray(image, dtype=np.uint8)
    if frame.ndim == 2:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise SourceUnavailable(f"source gave frames of shape {image.shape}; expected BGR")


class _OpenCvSource:
    """Shared handling of one `cv2.VideoCapture`: open check, read, release."""

    frame_interval_s = 0.0

    def __init__(self, what: str) -> None:
        self._what = what
        self._cap: cv2.VideoCapture | None = None

    def _capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def open(self) -> None:
        """Open the capture or raise `SourceUnavailable`."""
        self.close()
        try:
            cap = self._capture()
        except cv2.error as exc:
            raise SourceUnavailable(f"cannot open {self._what}: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            raise SourceUnavailable(self._cannot_open())
        self._cap = cap
        self._opened(cap)

    def _opened(self, cap: cv2.VideoCapture) -> None:
        """Hook: the capture just opened."""

    def _cannot_open(self) -> str:
        return f"cannot open {self._what}"

    def _grab(self) -> Image | None:
        """The next frame, or None when OpenCV read nothing."""
        if self._cap is None:
            raise SourceUnavailable(f"{self._what} is not open")
        try:
            ok, image = self._cap.read()
        except cv2.error as exc:
            raise SourceUnavailable(f"reading {self._what} failed: {exc}") from exc
        if not ok or image is None:
            return None
        return as_bgr(np.asarray(image))

    def close(self) -> None:
        """Release the capture."""
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class DeviceSource(_OpenCvSource):
    """A local camera by index (`0`) or V4L2 path (`/dev/video0`)."""

    def __init__(self, target: str, *, width: int | None = None, height: int | None = None):
        super().__init__(f"camera device {target}")
        self._target: int | str = int(target) if target.isdigit() else target
        self._width = width
        self._height = height

    @classmethod
    def from_section(cls, section: CameraSection) -> DeviceSource:
        """The device a section names, with its requested size."""
        return cls(section.target, width=section.width, height=section.height)

    def _capture(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self._target, cv2.CAP_ANY)
        if cap.isOpened():
            # One buffered frame: a slow pipeline must see the scene now, not a second ago.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self._width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._width)
            if self._height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._height)
        return cap

    def _cannot_open(self) -> str:
        return f"cannot open {self._what} (absent, busy or no permission: is the user in `video`?)"

    def read(self) -> Image:
        """The next frame from the driver."""
        image = self._grab()
        if image is None:
            raise SourceUnavailable(f"{self._what} gave no frame (unplugged?)")
        return image


class FileSource(_OpenCvSource):
    """A video file played at its own frame rate, looping to the start when `loop`."""

    def __init__(self, path: str, *, loop: bool = True, fallback_fps: float = DEFAULT_FILE_FPS):
        super().__init__(f"video file {path}")
        self._path = Path(path).expanduser()
        self._loop = loop
        self._fallback_fps = fallback_fps or DEFAULT_FILE_FPS
        self._frames_since_open = 0
        self.frame_interval_s = 1.0 / self._fallback_fps
        self.plays = 0
        """How many times the file was started (1 + the number of loops)."""

    @classmethod
    def from_section(cls, section: CameraSection) -> FileSource:
        """The file a section names; paced by the limit when the file states no rate."""
        return cls(section.target, loop=section.loop, fallback_fps=section.fps)

    def _capture(self) -> cv2.VideoCapture:
        if not self._path.is_file():
            raise SourceUnavailable(f"no such file: {self._path}")
        return cv2.VideoCapture(str(self._path), cv2.CAP_ANY)

    def _opened(self, cap: cv2.VideoCapture) -> None:
        fps = cap.get(cv2.CAP_PROP_FPS)
        if math.isfinite(fps) and 0 < fps <= MAX_FILE_FPS:
            self.frame_interval_s = 1.0 / fps
        self._frames_since_open = 0
        self.plays += 1

    def _cannot_open(self) -> str:
        return f"cannot open {self._what} (not a video OpenCV can decode)"

    def read(self) -> Image | None:
        """The next frame; at the end, the first again when looping, else None."""
        image = self._grab()
        if image is not None:
            self._frames_since_open += 1
            return image
        if self._frames_since_open == 0:
            raise SourceUnavailable(f"{self._what} has no readable frames")
        if not self._loop:
            return None
        # Reopening is the one rewind that works for every container OpenCV reads.
        self.open()
        return self.read()


class StreamSource(_OpenCvSource):
    """An RTSP or HTTP MJPEG URL, read by FFmpeg with open and read timeouts."""

    def __init__(
        self, url: str, *, shown_as: str, open_timeout_s: float = 5.0, read_timeout_s: float = 5.0
    ) -> None:
        super().__init__(f"stream {shown_as}")
        self._url = url
        self._open_timeout_ms = round(open_timeout_s * 1000)
        self._read_timeout_ms = round(read_timeout_s * 1000)

    @classmethod
    def from_section(cls, section: CameraSection) -> StreamSource:
        """The stream a section names, with its timeouts."""
        return cls(
            section.target,
            shown_as=section.display_source,
            open_timeout_s=section.open_timeout_s,
            read_timeout_s=section.read_timeout_s,
        )

    def _capture(self) -> cv2.VideoCapture:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            self._open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            self._read_timeout_ms,
        ]
        return cv2.VideoCapture(self._url, cv2.CAP_FFMPEG, params)

    def _cannot_open(self) -> str:
        return (
            f"cannot open {self._what} (refused, unreachable, no answer within "
            f"{self._open_timeout_ms / 1000:g} s, or not a video stream)"
        )

    def read(self) -> Image:
        """The next frame; `SourceUnavailable` when the stream closed or went silent."""
        image = self._grab()
        if image is None:
            raise SourceUnavailable(
                f"{self._what} closed or gave no frame within {self._read_timeout_ms / 1000:g} s"
            )
        return image


def _ros_source(section: CameraSection) -> FrameSource:
    """A `ros2:` camera; rclpy (the `ros` extra) is imported only when one is configured."""
    try:
        from edge_agent.perception.camera_ros import RosImageSource
    except ImportError as exc:
        raise SourceUnavailable(
            f"camera {section.name!r} reads a ROS 2 topic, which needs the `ros` extra: "
            f"pip install 'outpost[ros]' ({exc})"
        ) from exc
    return RosImageSource.from_section(section)


SOURCE_FACTORIES: dict[SourceKind, SourceFactory] = {
    "device": DeviceSource.from_section,
    "file": FileSource.from_section,
    "rtsp": StreamSource.from_section,
    "http": StreamSource.from_section,
    "ros2": _ros_source,
}
"""Each source kind's plugin; a new kind adds its factory here (imports inside it stay lazy)."""


def make_source(section: CameraSection) -> FrameSource:
    """The source plugin for a camera section (not opened yet)."""
    return SOURCE_FACTORIES[section.kind](section)
