"""MQTT topic grammar: `outpost/v1/{device_id}/{channel}`.

Builders never produce a topic outside the grammar, and `parse_topic` refuses
anything else (wildcards, traversal, empty or over-long ids, unknown channels),
so a device id taken from a topic is always safe to use as a key or a path part.

Example:
    >>> topic("amr-7", Channel.TELEMETRY)
    'outpost/v1/amr-7/telemetry'
    >>> parse_topic("outpost/v1/amr-7/cmd")
    Topic(device='amr-7', channel=<Channel.CMD: 'cmd'>)
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NamedTuple

from protocol.errors import TopicError

TOPIC_ROOT = "outpost"
TOPIC_VERSION = "v1"
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
MAX_TOPIC_LENGTH = 128


class Channel(StrEnum):
    """The last topic segment; uplink channels are also the envelope `kind`."""

    TELEMETRY = "telemetry"
    DETECTIONS = "detections"
    EVENTS = "events"
    STATE = "state"
    ACKS = "acks"
    FRAMES = "frames"
    CMD = "cmd"
    INGESTED = "ingested"
    MODEL = "model"


UPLINK_CHANNELS = frozenset(
    {
        Channel.TELEMETRY,
        Channel.DETECTIONS,
        Channel.EVENTS,
        Channel.STATE,
        Channel.ACKS,
        Channel.FRAMES,
    }
)
DOWNLINK_CHANNELS = frozenset({Channel.CMD, Channel.INGESTED, Channel.MODEL})

UPLINK_FILTER = f"{TOPIC_ROOT}/{TOPIC_VERSION}/+/+"
"""Every uplink and downlink topic of every device (the hub filters by channel)."""

SHARED_INGEST_FILTER = f"$share/outpost-ingest/{UPLINK_FILTER}"
"""MQTT 5 shared subscription that spreads the fleet across ingest processes."""


def channel_filter(channel: Channel) -> str:
    """Every device's topic of one channel: `outpost/v1/+/<channel>`."""
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/+/{channel.value}"


BUS_TOPIC_BY_CHANNEL: dict[Channel, str] = {
    Channel.TELEMETRY: "telemetry.raw",
    Channel.DETECTIONS: "inference.detections",
    Channel.EVENTS: "system.events",
    Channel.STATE: "device.state",
    Channel.ACKS: "command.acks",
    Channel.FRAMES: "inference.frames",
}
"""The Kafka topic (before a deployment's topic prefix) of each uplink channel's envelopes,
keyed by device id: the hub's ingest produces there, and so do gateway agents, which
detect on the `inference.frames` of devices with no model."""

DETECT_REQUESTS_TOPIC = "inference.requests"
"""Synchronous detections the hub routes to gateway agents (`protocol.DetectRequest`)."""
DETECT_REPLIES_TOPIC = "inference.replies"
"""Gateway agents' answers to them (`protocol.DetectReply`), keyed by request id."""

GATEWAY_STREAM_PREFIX = "gw-"
"""Streams a gateway agent writes for the devices it detects for. Their seqs follow the
device's frames (stale frames are dropped on purpose), so they have no watermark; agents'
own outbox streams are hex and never start with it."""


def is_gateway_stream(stream: str) -> bool:
    """Whether `stream` was written by a gateway agent (it has no `ingested` watermark)."""
    return stream.startswith(GATEWAY_STREAM_PREFIX)


class Topic(NamedTuple):
    """A parsed topic."""

    device: str
    channel: Channel


def is_device_id(value: object) -> bool:
    """Whether `value` is a device id in the grammar `[a-z0-9][a-z0-9-]{0,62}`."""
    return isinstance(value, str) and _DEVICE_ID_RE.fullmatch(value) is not None


def check_device_id(value: object) -> str:
    """Return `value` if it is a valid device id, else raise `TopicError`."""
    if not is_device_id(value):
        raise TopicError(f"invalid device id {_preview(value)}: must match {DEVICE_ID_PATTERN}")
    assert isinstance(value, str)  # noqa: S101 - narrowed by is_device_id
    return value


def topic(device_id: str, channel: Channel) -> str:
    """The topic of one device's channel."""
    return f"{device_prefix(device_id)}/{Channel(channel).value}"


def device_prefix(device_id: str) -> str:
    """`outpost/v1/{device_id}`: everything a device may publish lies under it."""
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{check_device_id(device_id)}"


def device_filter(device_id: str) -> str:
    """Subscription filter for all of one device's channels."""
    return f"{device_prefix(device_id)}/+"


def parse_topic(value: object) -> Topic:
    """Parse a concrete topic; raise `TopicError` for anything outside the grammar."""
    if not isinstance(value, str):
        raise TopicError(f"topic must be a string, got {type(value).__name__}")
    if not value or len(value) > MAX_TOPIC_LENGTH:
        raise TopicError(f"topic length {len(value)} outside 1..{MAX_TOPIC_LENGTH}")
    if any(ch in value for ch in "+#\x00") or ".." in value:
        raise TopicError(f"topic {_preview(value)} contains a wildcard, NUL or '..'")
    parts = value.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[1] != TOPIC_VERSION:
        raise TopicError(
            f"topic {_preview(value)} is not {TOPIC_ROOT}/{TOPIC_VERSION}/{{device_id}}/{{channel}}"
        )
    device = check_device_id(parts[2])
    try:
        channel = Channel(parts[3])
    except ValueError:
        allowed = ", ".join(c.value for c in Channel)
        raise TopicError(f"unknown channel {_preview(parts[3])}; allowed: {allowed}") from None
    return Topic(device, channel)


def _preview(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
