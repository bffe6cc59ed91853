"""A camera's settings and the grammar of its `source` string.

One string says where frames come from; its form picks the source kind:

| form                                                 | kind     |
|------------------------------------------------------|----------|
| `0`, `device:0`, `device:/dev/video2`, `/dev/video2` | `device` |
| `file:PATH` or a plain path                          | `file`   |
| `rtsp://…`, `rtsps://…`                              | `rtsp`   |
| `http://…`, `https://…` (MJPEG)                      | `http`   |
| `ros2:TOPIC` (a `sensor_msgs/Image` topic)            | `ros2`   |

Adding a kind (the ROS 2 image topic, say): its name in `SourceKind`, its form in
`parse_source` (a URL scheme is one row in `_SCHEMES`), and its factory in
`edge_agent.perception.camera_sources.SOURCE_FACTORIES`; a test checks that every
kind has a factory.

Example:
    >>> s = CameraSection(source="rtsp://admin:secret@10.0.0.5:554/live?token=x")
    >>> s.kind, s.display_source
    ('rtsp', 'rtsp://10.0.0.5:554/live')
    >>> CameraSection(source="device:1").target
    '1'
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from edge_agent.sections import PositiveSeconds, Section

SourceKind = Literal["device", "file", "rtsp", "http", "ros2"]

CAMERA_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"

ALLOWED_SOURCES = (
    "a device index (`0` or `device:0`, or `device:/dev/video0`), "
    "a video file (`file:PATH` or a plain path), "
    "an RTSP URL (`rtsp://HOST[:PORT]/PATH`), an MJPEG URL (`http(s)://HOST[:PORT]/PATH`) "
    "or a ROS 2 image topic (`ros2:/camera/image_raw`)"
)

# URL scheme -> kind. A scheme outside this table is an error, not a file name.
_SCHEMES: dict[str, SourceKind] = {
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "http": "http",
    "https": "http",
}
_DEVICE_INDEX = re.compile(r"^\d{1,3}$")
_DEVICE_PATH = re.compile(r"^/dev/video\d{1,3}$")


class SourceSpec(NamedTuple):
    """A parsed source string: its kind and what to open (index, path or URL)."""

    kind: SourceKind
    target: str


def parse_source(text: str) -> SourceSpec:
    """The kind and target of a source string; `ValueError` naming the allowed forms.

    Example:
        >>> parse_source("file:/data/clip.avi")
        SourceSpec(kind='file', target='/data/clip.avi')
        >>> parse_source("2")
        SourceSpec(kind='device', target='2')
    """
    text = text.strip()
    if not text:
        raise ValueError(f"source is empty; use {ALLOWED_SOURCES}")
    if _DEVICE_INDEX.match(text) or _DEVICE_PATH.match(text):
        return SourceSpec("device", text)
    if text.startswith("device:"):
        return _device(text.removeprefix("device:"))
    if text.startswith("ros2:"):
        return _ros_topic(text.removeprefix("ros2:"))
    if text.startswith("file:"):
        path = text.removeprefix("file:").removeprefix("//")
        if not path:
            raise ValueError(f"source {text!r} names no file; use `file:PATH`")
        return SourceSpec("file", path)
    if "://" in text:
        return _url(text)
    return SourceSpec("file", text)


def _device(target: str) -> SourceSpec:
    if _DEVICE_INDEX.match(target) or _DEVICE_PATH.match(target):
        return SourceSpec("device", target)
    raise ValueError(
        f"device {target!r} is neither an index (0-999) nor /dev/videoN; "
        "use `device:0` or `device:/dev/video0`"
    )


def _ros_topic(topic: str) -> SourceSpec:
    if re.fullmatch(r"/?[A-Za-z~][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*", topic):
        return SourceSpec("ros2", topic)
    raise ValueError(
        f"ROS 2 topic {topic!r} is not a valid topic name; use `ros2:/camera/image_raw`"
    )


def _url(text: str) -> SourceSpec:
    scheme = text.split("://", 1)[0].lower()
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise ValueError(f"source scheme {scheme!r}:// is not supported; use {ALLOWED_SOURCES}")
    try:
        host = urlsplit(text).hostname
    except ValueError as exc:
        raise ValueError(f"source URL {redact_url(text)!r} is malformed: {exc}") from None
    if not host:
        raise ValueError(f"source URL {redact_url(text)!r} names no host; use {scheme}://HOST/PATH")
    return SourceSpec(kind, text)


def redact_url(url: str) -> str:
    """The URL without user, password, query or fragment: safe for logs and events.

    Example:
        >>> redact_url("http://user:pw@cam.local:8080/video.mjpg?auth=abc")
        'http://cam.local:8080/video.mjpg'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url.split("://", 1)[0] + "://?"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class CameraSection(Section):
    """One camera: where its frames come from and how often the pipeline takes one."""

    name: Annotated[str, StringConstraints(pattern=CAMERA_NAME_PATTERN)] = "default"
    """Names the camera in frames, detections and events (letters, digits, `_.-`)."""
    source: str
    """Device index, file, `rtsp://` or `http(s)://` MJPEG URL (see the module table)."""
    loop: bool = True
    """Files only: start again at the end (False: the stream ends with the file)."""
    fps: Annotated[float, Field(ge=0, le=240)] = 10.0
    """Most frames per second handed to the pipeline (0: as fast as the source gives)."""
    width: Annotated[int, Field(gt=0, le=16384)] | None = None
    """Devices only: ask the driver for this frame width."""
    height: Annotated[int, Field(gt=0, le=16384)] | None = None
    """Devices only: ask the driver for this frame height."""
    open_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    """Network streams: give up opening after this long."""
    read_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    """Network streams: no frame for this long counts as a lost camera."""
    reconnect_initial_s: PositiveSeconds = 0.5
    """First delay before reopening a lost source; doubles up to `reconnect_max_s`."""
    reconnect_max_s: PositiveSeconds = 30.0
    ros_domain_id: Annotated[int, Field(ge=0, le=232)] | None = None
    """`ros2:` sources only: the ROS domain (None: the environment's ROS_DOMAIN_ID)."""

    @field_validator("source")
    @classmethod
    def _source_parses(cls, value: str) -> str:
        parse_source(value)
        return value.strip()

    @model_validator(mode="after")
    def _options_fit_kind(self) -> CameraSection:
        if (self.width is not None or self.height is not None) and self.kind != "device":
            raise ValueError(
                f"width/height apply to device sources only, not to {self.kind} "
                f"{self.display_source!r}; remove them"
            )
        if self.ros_domain_id is not None and self.kind != "ros2":
            raise ValueError(f"ros_domain_id applies to ros2: sources only, not to {self.kind}")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(
                f"reconnect_max_s ({self.reconnect_max_s}) is below reconnect_initial_s "
                f"({self.reconnect_initial_s}); make it at least as large"
            )
        return self

    @property
    def spec(self) -> SourceSpec:
        """The parsed source."""
        return parse_source(self.source)

    @property
    def kind(self) -> SourceKind:
        """`device`, `file`, `rtsp`, `http` or `ros2`."""
        return self.spec.kind

    @property
    def target(self) -> str:
        """What the source opens: a device index or path, a file path or a URL."""
        return self.spec.target

    @property
    def display_source(self) -> str:
        """The source without credentials, for logs and events."""
        spec = self.spec
        return redact_url(spec.target) if spec.kind in ("rtsp", "http") else spec.target


def _unique_names(cameras: list[CameraSection]) -> list[CameraSection]:
    seen: set[str] = set()
    for camera in cameras:
        if camera.name in seen:
            raise ValueError(f"camera name {camera.name!r} is used twice; give each its own name")
        seen.add(camera.name)
    return cameras


CameraList = Annotated[list[CameraSection], Field(max_length=16), AfterValidator(_unique_names)]
"""Several cameras (`[[cameras]]` in the settings file), each with its own name."""
