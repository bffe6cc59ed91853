"""Ingest routing: every invalid message is dead-lettered with its reason; nothing raises."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.bus.topics import DEADLETTER, TOPIC_BY_CHANNEL
from hub.ingest.route import Ignored, Rejected, Routed, deadletter, route
from protocol import (
    Ack,
    AckStatus,
    Channel,
    Envelope,
    TelemetryBatch,
    TelemetryPoint,
    encode,
    topic,
)

NOW = datetime(2026, 11, 27, tzinfo=UTC)
LIMIT = 1 << 20


def telemetry(device: str = "amr-7") -> bytes:
    body = TelemetryBatch(points=[TelemetryPoint(ts=NOW, metric="battery", value=80.0)])
    return encode(
        Envelope(device=device, stream="s1", seq=1, ts=NOW, kind=Channel.TELEMETRY, body=body)
    )


def test_a_valid_message_goes_to_its_topic_keyed_by_device() -> None:
    payload = telemetry()
    verdict = route(topic("amr-7", Channel.TELEMETRY), payload, max_bytes=LIMIT)
    assert verdict == Routed(TOPIC_BY_CHANNEL[Channel.TELEMETRY], b"amr-7", payload)


def test_acks_go_to_the_acks_topic() -> None:
    body = Ack(cmd_id="c1", status=AckStatus.DONE, at=NOW)
    payload = encode(
        Envelope(device="amr-7", stream="s", seq=2, ts=NOW, kind=Channel.ACKS, body=body)
    )
    verdict = route(topic("amr-7", Channel.ACKS), payload, max_bytes=LIMIT)
    assert isinstance(verdict, Routed)
    assert verdict.topic == "command.acks"


@pytest.mark.parametrize("channel", [Channel.CMD, Channel.INGESTED, Channel.MODEL])
def test_our_own_downlink_is_ignored(channel: Channel) -> None:
    assert route(topic("amr-7", channel), b"anything", max_bytes=LIMIT) == Ignored()


@pytest.mark.parametrize(
    ("topic_", "payload", "reason"),
    [
        ("outpost/v1/AMR/telemetry", b"{}", "bad topic"),
        ("outpost/v1/amr-7/telemetry", b"x" * 2000, "oversized"),
        ("outpost/v1/amr-7/telemetry", b"{not json", "invalid payload"),
        ("outpost/v1/amr-8/telemetry", telemetry("amr-7"), "device mismatch"),
        ("outpost/v1/amr-7/events", telemetry("amr-7"), "kind mismatch"),
    ],
)
def test_invalid_messages_are_rejected_with_the_reason(
    topic_: str, payload: bytes, reason: str
) -> None:
    verdict = route(topic_, payload, max_bytes=1024)
    assert isinstance(verdict, Rejected)
    assert verdict.reason.startswith(reason)


@given(st.text(max_size=80), st.binary(max_size=300))
def test_route_never_raises(topic_: str, payload: bytes) -> None:
    assert isinstance(route(topic_, payload, max_bytes=LIMIT), Routed | Rejected | Ignored)


def test_deadletter_record_keeps_the_payload_truncated() -> None:
    payload = b"\x00" * (100 << 10)
    record = deadletter("outpost/v1/amr-7/telemetry", payload, Rejected("oversized: big", "amr-7"))
    assert record.topic == DEADLETTER
    assert record.key == b"amr-7"
    data = orjson.loads(record.value)
    assert data["truncated"] is True
    assert data["size"] == len(payload)
    assert len(base64.b64decode(data["payload_b64"])) == 64 << 10
    assert data["reason"] == "oversized: big"
