"""Kafka topic names (plain; each bus adds its `topic_prefix`) and the MQTT channel map.

The partition key of every device-originated record is the device id, so one
device's records keep their order.

Example:
    >>> from protocol.topics import Channel
    >>> TOPIC_BY_CHANNEL[Channel.TELEMETRY]
    'telemetry.raw'
    >>> prefixed("t1a2b.", EVENTS)
    't1a2b.system.events'
"""

from __future__ import annotations

from typing import Final

from protocol.topics import (
    BUS_TOPIC_BY_CHANNEL,
    DETECT_REPLIES_TOPIC,
    DETECT_REQUESTS_TOPIC,
    Channel,
)

TELEMETRY_RAW: Final = BUS_TOPIC_BY_CHANNEL[Channel.TELEMETRY]
TELEMETRY_AGGREGATED: Final = "telemetry.aggregated"
DETECTIONS: Final = BUS_TOPIC_BY_CHANNEL[Channel.DETECTIONS]
FRAMES: Final = BUS_TOPIC_BY_CHANNEL[Channel.FRAMES]
EVENTS: Final = BUS_TOPIC_BY_CHANNEL[Channel.EVENTS]
COMMANDS: Final = "commands"
COMMAND_SENT: Final = "command.sent"
ASSET_UPDATED: Final = "asset.updated"
DEVICE_STATE: Final = BUS_TOPIC_BY_CHANNEL[Channel.STATE]
COMMAND_ACKS: Final = BUS_TOPIC_BY_CHANNEL[Channel.ACKS]
DEADLETTER: Final = "ingest.deadletter"
DETECT_REQUESTS: Final = DETECT_REQUESTS_TOPIC
DETECT_REPLIES: Final = DETECT_REPLIES_TOPIC
ALERTS: Final = "alerts"
"""Alerts as raised, acknowledged and resolved (the API's `Alert` JSON, keyed by device)."""

ALL_TOPICS: Final[tuple[str, ...]] = (
    TELEMETRY_RAW,
    TELEMETRY_AGGREGATED,
    DETECTIONS,
    FRAMES,
    EVENTS,
    COMMANDS,
    COMMAND_SENT,
    ASSET_UPDATED,
    DEVICE_STATE,
    COMMAND_ACKS,
    DEADLETTER,
    ALERTS,
    DETECT_REQUESTS,
    DETECT_REPLIES,
)
"""Every topic the hub uses; `KafkaBus.start` creates the missing ones."""

TOPIC_BY_CHANNEL: Final[dict[Channel, str]] = BUS_TOPIC_BY_CHANNEL
"""Where ingest puts each uplink MQTT channel."""


def prefixed(prefix: str, topic: str) -> str:
    """The broker-side name of `topic` under `prefix` (`""` leaves it unchanged)."""
    return f"{prefix}{topic}"


def unprefixed(prefix: str, name: str) -> str:
    """The plain name of broker-side topic `name`; names outside `prefix` come back unchanged."""
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name
