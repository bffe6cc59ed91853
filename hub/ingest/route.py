"""Where one uplink message goes: its bus topic, the dead-letter topic, or nowhere.

Pure functions: no I/O, so every rule is tested without a broker.

Example:
    >>> route("outpost/v1/amr-7/telemetry", b"x" * 2048, max_bytes=1024).reason
    'oversized: 2048 bytes > 1024'
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from hub.bus.topics import DEADLETTER, TOPIC_BY_CHANNEL
from protocol import (
    DOWNLINK_CHANNELS,
    Channel,
    DecodeError,
    TopicError,
    decode_envelope,
    parse_topic,
)
from protocol.fast import decode_telemetry
from protocol.models import Frame, FramePurpose

DEADLETTER_PAYLOAD_BYTES = 64 << 10


@dataclass(frozen=True)
class Routed:
    """A valid message: produce `value` to `topic` keyed by device.

    `inference_frame`: a frame a thin device sent for a gateway agent to detect on,
    subject to the per-device frame rate limit.
    """

    topic: str
    key: bytes
    value: bytes
    inference_frame: bool = False


@dataclass(frozen=True)
class Rejected:
    """An invalid message: counted and dead-lettered with the reason, never fatal."""

    reason: str
    device: str | None = None


@dataclass(frozen=True)
class Ignored:
    """Downlink traffic (commands, watermarks, models) that the hub itself published."""


def route(topic: str, payload: bytes, *, max_bytes: int) -> Routed | Rejected | Ignored:
    """Decide what happens to one message received on `topic`."""
    try:
        target = parse_topic(topic)
    except TopicError as exc:
        return Rejected(f"bad topic: {exc}")
    if target.channel in DOWNLINK_CHANNELS:
        return Ignored()
    if len(payload) > max_bytes:
        return Rejected(f"oversized: {len(payload)} bytes > {max_bytes}", target.device)
    if target.channel is Channel.TELEMETRY and (fast := decode_telemetry(payload)) is not None:
        if fast.device != target.device:  # the bulk of the traffic, validated in C
            return _mismatch(fast.device, target.device)
        return Routed(TOPIC_BY_CHANNEL[target.channel], target.device.encode(), payload)
    try:
        envelope = decode_envelope(payload)
    except DecodeError as exc:
        return Rejected(f"invalid payload: {exc}", target.device)
    if envelope.device != target.device:
        return _mismatch(envelope.device, target.device)
    if envelope.kind != target.channel:
        return Rejected(
            f"kind mismatch: {envelope.kind.value} envelope on the {target.channel.value} topic",
            target.device,
        )
    inference = isinstance(envelope.body, Frame) and envelope.body.purpose is FramePurpose.INFERENCE
    return Routed(TOPIC_BY_CHANNEL[target.channel], target.device.encode(), payload, inference)


def _mismatch(sender: str, owner: str) -> Rejected:
    return Rejected(f"device mismatch: envelope of {sender} published under {owner}'s topic", owner)


def deadletter(topic: str, payload: bytes, rejected: Rejected) -> Routed:
    """The dead-letter record for a rejected message (payload kept, truncated, base64)."""
    kept = payload[:DEADLETTER_PAYLOAD_BYTES]
    value = orjson.dumps(
        {
            "source": topic[:256],
            "device": rejected.device,
            "reason": rejected.reason[:1000],
            "received_at": datetime.now(UTC).isoformat(),
            "size": len(payload),
            "truncated": len(kept) < len(payload),
            "payload_b64": base64.b64encode(kept).decode("ascii"),
        }
    )
    return Routed(DEADLETTER, (rejected.device or "unknown").encode(), value)
