"""Pydantic models for every message on the wire (DESIGN.md "Wire contract").

Uplink messages are `Envelope`s whose `body` type follows `kind`; downlink
messages (`Command`, `Watermark`, `ModelAssignment`) stand alone and carry `v`
themselves. All models are immutable, reject NaN and infinity, and ignore
unknown fields so that a reader of version 1.x accepts messages written by any
1.y (see `protocol.version`).

Example:
    >>> from datetime import UTC, datetime
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> env = Envelope(device="amr-7", stream="s1", seq=1, ts=now, kind=Channel.TELEMETRY,
    ...     body=TelemetryBatch(points=[TelemetryPoint(ts=now, metric="cpu", value=0.5)]))
    >>> env.body.points[0].metric
    'cpu'
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from protocol.topics import DEVICE_ID_PATTERN, Channel
from protocol.version import PROTOCOL_VERSION, check_version

# Limits: generous for real fleets, small enough that one message cannot exhaust a reader.
MAX_MESSAGE_BYTES = 1 << 20
MAX_FRAME_JPEG_BYTES = 512 << 10
MAX_BATCH_POINTS = 5000
MAX_BATCH_FRAMES = 500
MAX_OBJECTS_PER_FRAME = 1000
MAX_TAGS = 32
MAX_WAYPOINTS = 1000
MAX_DETAIL_KEYS = 64

DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MetricName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,127}$")]
StreamId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Signature = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{0,128}$")]
ShortText = Annotated[str, StringConstraints(max_length=1024)]
Seq = Annotated[int, Field(ge=0, lt=1 << 63)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]
Version = Annotated[str, StringConstraints(pattern=r"^\d{1,4}\.\d{1,4}$")]
JsonScalar = str | int | float | bool | None
Detail = Annotated[dict[Name, JsonScalar | list[JsonScalar]], Field(max_length=MAX_DETAIL_KEYS)]


def _from_base64(value: object) -> object:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("must be standard base64") from exc
    return value


Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    PlainSerializer(lambda raw: base64.b64encode(raw).decode("ascii"), when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]
"""Bytes that travel as standard base64 text in JSON."""


def _nested(model: type[WireModel], value: Any, field: str) -> WireModel:
    """Validate a field whose type another field chooses, keeping the field in error paths."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in (field, *first["loc"]))
        raise ValueError(f"{where}: {first['msg']} ({model.__name__})") from None


class WireModel(BaseModel):
    """Base of every wire model: immutable, finite floats, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class Versioned(WireModel):
    """A top-level message: carries the protocol version `v`."""

    v: Version = PROTOCOL_VERSION

    @field_validator("v")
    @classmethod
    def _speakable(cls, value: str) -> str:
        check_version(value)
        return value


# --- telemetry ---------------------------------------------------------------------------


class TelemetryPoint(WireModel):
    """One sample: `{ts, metric, value, tags}`."""

    ts: AwareDatetime
    metric: MetricName
    value: float
    tags: Annotated[dict[Name, Name], Field(max_length=MAX_TAGS)] = Field(default_factory=dict)


class TelemetryBatch(WireModel):
    """Body of `telemetry`: a batch of points."""

    points: Annotated[list[TelemetryPoint], Field(min_length=1, max_length=MAX_BATCH_POINTS)]


# --- detections --------------------------------------------------------------------------


class Box(WireModel):
    """Axis-aligned box in the original frame, normalised to 0..1 (x1, y1 top-left)."""

    x1: Unit
    y1: Unit
    x2: Unit
    y2: Unit

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError("box corners must satisfy x1 <= x2 and y1 <= y2")
        return self


class DetectedObject(WireModel):
    """One object: class name, confidence, box."""

    cls: Name
    conf: Unit
    box: Box


class ModelRef(WireModel):
    """Which model produced a result, or which one is active."""

    name: Name
    version: Name
    sha256: Sha256


class FrameResult(WireModel):
    """One processed frame. `zones` maps a zone name to the indices of the objects inside it."""

    ts: AwareDatetime
    frame_id: Name
    camera: Name = "default"
    model: ModelRef
    objects: Annotated[list[DetectedObject], Field(max_length=MAX_OBJECTS_PER_FRAME)]
    latency_ms: Annotated[float, Field(ge=0.0, le=3_600_000.0)]
    zones: Annotated[dict[Name, list[Seq]], Field(max_length=MAX_TAGS)] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _zone_indices(self) -> Self:
        for zone, indices in self.zones.items():
            if any(i >= len(self.objects) for i in indices):
                raise ValueError(f"zone {zone!r} names an object index out of range")
        return self


class DetectionBatch(WireModel):
    """Body of `detections`: a batch of frame results."""

    frames: Annotated[list[FrameResult], Field(min_length=1, max_length=MAX_BATCH_FRAMES)]


# --- events ------------------------------------------------------------------------------


class Severity(StrEnum):
    """How urgently a person should look at an event."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class KnownEvent(StrEnum):
    """Event types this version defines; later minor versions may add more."""

    ESTOP_ENGAGED = "estop_engaged"
    ESTOP_RELEASED = "estop_released"
    LINK_LOST = "link_lost"
    LINK_RESTORED = "link_restored"
    MODEL_ACTIVATED = "model_activated"
    MODEL_REJECTED = "model_rejected"
    BUFFER_OVERFLOW = "buffer_overflow"
    RULE_FIRED = "rule_fired"
    CAMERA_LOST = "camera_lost"
    CAMERA_RESTORED = "camera_restored"
    WATCHDOG_STOP = "watchdog_stop"
    DEADLINE_STOP = "deadline_stop"
    COMMAND_REJECTED = "command_rejected"
    ROBOT_FAULT = "robot_fault"


class Event(WireModel):
    """Body of `events`: `{ts, type, severity, detail}`."""

    ts: AwareDatetime
    type: EventType
    severity: Severity = Severity.INFO
    detail: Detail = Field(default_factory=dict)


# --- state -------------------------------------------------------------------------------


class StopSource(StrEnum):
    """Who or what engaged the protective stop."""

    HUB = "hub"
    RULE = "rule"
    LOCAL = "local"
    HARDWARE = "hardware"
    WATCHDOG = "watchdog"
    DEADLINE = "deadline"


class EstopStatus(WireModel):
    """The latched protective stop as the agent's safety supervisor sees it."""

    engaged: bool
    source: StopSource | None = None
    reason: ShortText | None = None
    since: AwareDatetime | None = None


class Mode(StrEnum):
    """What is driving the robot now."""

    IDLE = "idle"
    AUTONOMOUS = "autonomous"
    OVERRIDE = "override"
    PATH = "path"
    STOPPED = "stopped"
    GATEWAY = "gateway"


class PriorityClass(StrEnum):
    """Outbox priority classes, highest first; `safety` is never dropped."""

    SAFETY = "safety"
    DETECTIONS = "detections"
    TELEMETRY = "telemetry"


class BufferStatus(WireModel):
    """The agent's outbox: depth, size, oldest row, drops per priority class."""

    depth: Seq = 0
    bytes: Seq = 0
    oldest_ts: AwareDatetime | None = None
    dropped: dict[PriorityClass, Seq] = Field(default_factory=dict)


class DeviceState(WireModel):
    """Body of `state` (retained). The last will carries just `online: false`."""

    online: bool
    agent_version: Name | None = None
    model: ModelRef | None = None
    estop: EstopStatus | None = None
    mode: Mode | None = None
    buffer: BufferStatus | None = None


# --- acks --------------------------------------------------------------------------------


class AckStatus(StrEnum):
    """Command lifecycle as reported by the device."""

    RECEIVED = "received"
    EXECUTING = "executing"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Ack(WireModel):
    """Body of `acks`: `{cmd_id, status, at, detail}`; `reason` is set when rejected."""

    cmd_id: Name
    status: AckStatus
    at: AwareDatetime
    detail: ShortText | None = None
    reason: Name | None = None


# --- frames (thin devices) ---------------------------------------------------------------


class FramePurpose(StrEnum):
    """Why a frame was sent: the hub keeps snapshots and captures, and only routes the rest."""

    SNAPSHOT = "snapshot"
    """An annotated JPEG of a rule hit, for the dashboard."""
    CAPTURE = "capture"
    """A frame the model was unsure about, uploaded for labelling and retraining."""
    INFERENCE = "inference"
    """A frame from a device that runs no model, for a gateway agent to detect on."""


class Frame(WireModel):
    """Body of `frames`: one JPEG (base64 on the wire), and why it was sent."""

    ts: AwareDatetime
    frame_id: Name
    camera: Name = "default"
    purpose: FramePurpose = FramePurpose.SNAPSHOT
    width: Annotated[int, Field(gt=0, le=16384)]
    height: Annotated[int, Field(gt=0, le=16384)]
    jpeg: Annotated[Base64Bytes, Field(min_length=4, max_length=MAX_FRAME_JPEG_BYTES)]

    @field_validator("jpeg")
    @classmethod
    def _is_jpeg(cls, value: bytes) -> bytes:
        if not value.startswith(b"\xff\xd8"):
            raise ValueError("jpeg must start with the JPEG SOI marker FFD8")
        return value


# --- the uplink envelope -----------------------------------------------------------------

Body = TelemetryBatch | DetectionBatch | Event | DeviceState | Ack | Frame
_CHANNEL_VALUES = frozenset(c.value for c in Channel)
BODY_BY_KIND: dict[Channel, type[WireModel]] = {
    Channel.TELEMETRY: TelemetryBatch,
    Channel.DETECTIONS: DetectionBatch,
    Channel.EVENTS: Event,
    Channel.STATE: DeviceState,
    Channel.ACKS: Ack,
    Channel.FRAMES: Frame,
}


class Envelope(Versioned):
    """Every uplink message: `{v, device, stream, seq, ts, kind, body}`.

    `(device, stream, seq)` is the idempotency key everywhere downstream: `stream`
    names one incarnation of the agent's outbox, `seq` increases within it.
    """

    device: DeviceId
    stream: StreamId
    seq: Seq
    ts: AwareDatetime
    kind: Channel
    body: Body

    @model_validator(mode="before")
    @classmethod
    def _body_by_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("body"), dict):
            kind = data.get("kind")
            if isinstance(kind, str) and kind in _CHANNEL_VALUES:
                body_type = BODY_BY_KIND.get(Channel(kind))
                if body_type is not None:
                    return {**data, "body": _nested(body_type, data["body"], "body")}
        return data

    @model_validator(mode="after")
    def _body_matches_kind(self) -> Self:
        expected = BODY_BY_KIND.get(self.kind)
        if expected is None:
            raise ValueError(f"kind {self.kind.value!r} is not an uplink channel")
        if type(self.body) is not expected:
            raise ValueError(f"kind {self.kind!r} needs a {expected.__name__} body")
        return self


# --- commands (downlink) -----------------------------------------------------------------


class CommandType(StrEnum):
    """What the hub asks a device to do."""

    ESTOP = "estop"
    RELEASE = "release"
    OVERRIDE = "override"
    PATH_PLAN = "path_plan"
    CONFIG = "config"
    CAPTURE = "capture"


_COMMAND_TYPE_VALUES = frozenset(t.value for t in CommandType)
MOTION_COMMANDS = frozenset({CommandType.OVERRIDE, CommandType.PATH_PLAN})


class EstopParams(WireModel):
    """Engage the latched protective stop."""

    reason: ShortText = ""


class ReleaseParams(WireModel):
    """Release the stop; an operator must say why."""

    reason: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class OverrideParams(WireModel):
    """Drive at these velocities for `duration_s` (a dead-man: it lapses by itself)."""

    linear: Annotated[float, Field(ge=-10.0, le=10.0)]
    angular: Annotated[float, Field(ge=-10.0, le=10.0)]
    duration_s: Annotated[float, Field(gt=0.0, le=10.0)]


class Waypoint(WireModel):
    """A point in the site frame (metres, radians)."""

    x: Annotated[float, Field(ge=-1e6, le=1e6)]
    y: Annotated[float, Field(ge=-1e6, le=1e6)]
    theta: Annotated[float, Field(ge=-10.0, le=10.0)] | None = None


class PathPlanParams(WireModel):
    """Follow these waypoints at `speed`; stop if not done within `timeout_s`."""

    waypoints: Annotated[list[Waypoint], Field(min_length=1, max_length=MAX_WAYPOINTS)]
    speed: Annotated[float, Field(gt=0.0, le=10.0)]
    timeout_s: Annotated[float, Field(gt=0.0, le=3600.0)]
    frame: Literal["site"] = "site"


class ConfigParams(WireModel):
    """Change agent settings at run time."""

    values: Detail


class CaptureParams(WireModel):
    """Upload captured frames for retraining."""

    max_frames: Annotated[int, Field(gt=0, le=10_000)] = 100


CommandParams = (
    EstopParams | ReleaseParams | OverrideParams | PathPlanParams | ConfigParams | CaptureParams
)

PARAMS_BY_TYPE: dict[CommandType, type[WireModel]] = {
    CommandType.ESTOP: EstopParams,
    CommandType.RELEASE: ReleaseParams,
    CommandType.OVERRIDE: OverrideParams,
    CommandType.PATH_PLAN: PathPlanParams,
    CommandType.CONFIG: ConfigParams,
    CommandType.CAPTURE: CaptureParams,
}


class Command(Versioned):
    """A signed command: `{v, cmd_id, device, type, params, issued_by, issued_at, expires_at, sig}`.

    `sig` is the hub's Ed25519 signature over the canonical JSON of every other
    field (see `protocol.signing`); an unsigned command has `sig == ""`.
    """

    cmd_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
    device: DeviceId
    type: CommandType
    params: CommandParams
    issued_by: Name
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    sig: Signature = ""

    @model_validator(mode="before")
    @classmethod
    def _params_by_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("params"), dict):
            type_ = data.get("type")
            if not isinstance(type_, str) or type_ not in _COMMAND_TYPE_VALUES:
                return data
            params_type = PARAMS_BY_TYPE[CommandType(type_)]
            return {**data, "params": _nested(params_type, data["params"], "params")}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if type(self.params) is not PARAMS_BY_TYPE[self.type]:
            raise ValueError(f"type {self.type.value!r} needs {PARAMS_BY_TYPE[self.type].__name__}")
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self


# --- other downlink ----------------------------------------------------------------------


class Watermark(Versioned):
    """Body of `ingested`: the highest contiguous `seq` of `stream` the hub stored durably."""

    device: DeviceId
    stream: StreamId
    seq: Seq
    at: AwareDatetime


MAX_DETECT_IMAGE_BYTES = 900_000
"""Largest image a hub-routed detect request carries (under Kafka's default 1 MB record)."""


class DetectRequest(Versioned):
    """A synchronous detection the hub routes to gateway agents (topic `inference.requests`).

    `image` and `content_type` are the caller's request body and its type, as the agent's
    own `POST /v1/detect` takes them; past `deadline` the caller has given up.
    """

    id: Name
    content_type: Annotated[str, StringConstraints(max_length=256)]
    image: Annotated[Base64Bytes, Field(max_length=MAX_DETECT_IMAGE_BYTES)]
    deadline: AwareDatetime


class DetectReply(Versioned):
    """A gateway agent's answer to a `DetectRequest` (topic `inference.replies`, keyed by id):
    the HTTP status and JSON body its own `POST /v1/detect` would give."""

    id: Name
    gateway: DeviceId
    status: Annotated[int, Field(ge=100, le=599)]
    body: dict[str, Any]


class ModelManifest(Versioned):
    """A model artifact as the registry describes it, signed by the hub.

    `baseline` holds the training set's statistics (class, confidence and
    brightness histograms) that drift is measured against.
    """

    name: Name
    version: Name
    sha256: Sha256
    size: Annotated[int, Field(gt=0, le=4 << 30)]
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    input_size: tuple[Annotated[int, Field(gt=0, le=8192)], Annotated[int, Field(gt=0, le=8192)]]
    classes: Annotated[list[Name], Field(min_length=1, max_length=1000)]
    baseline: dict[Name, list[Annotated[float, Field(ge=0.0)]]] = Field(default_factory=dict)
    created_at: AwareDatetime
    sig: Signature = ""


class ModelAssignment(Versioned):
    """Body of `model` (retained): which signed manifest a device should run."""

    device: DeviceId
    manifest: ModelManifest
    assigned_at: AwareDatetime
    sig: Signature = ""


DOWNLINK_TYPES: dict[Channel, type[Versioned]] = {
    Channel.CMD: Command,
    Channel.INGESTED: Watermark,
    Channel.MODEL: ModelAssignment,
}
