"""Mosquitto round trip: a protocol envelope published at QoS 1 comes back unchanged."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiomqtt
import pytest

from protocol import (
    Channel,
    Envelope,
    TelemetryBatch,
    TelemetryPoint,
    decode_envelope,
    encode,
    topic,
)

TIMEOUT_S = 10


def _client(mqtt_url: str, identifier: str) -> aiomqtt.Client:
    parts = urlsplit(mqtt_url)
    return aiomqtt.Client(
        parts.hostname or "127.0.0.1",
        parts.port or 1883,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=TIMEOUT_S,
    )


@pytest.mark.timeout(60)
async def test_envelope_round_trip_at_qos1(mqtt_url: str, run_id: str) -> None:
    device = f"smoke-{run_id}"
    now = datetime.now(tz=UTC)
    envelope = Envelope(
        device=device,
        stream=f"stream-{run_id}",
        seq=1,
        ts=now,
        kind=Channel.TELEMETRY,
        body=TelemetryBatch(points=[TelemetryPoint(ts=now, metric="cpu", value=0.5, tags={})]),
    )
    payload = encode(envelope)
    telemetry_topic = topic(device, Channel.TELEMETRY)

    async with (
        asyncio.timeout(TIMEOUT_S),
        _client(mqtt_url, f"smoke-sub-{run_id}") as subscriber,
        _client(mqtt_url, f"smoke-pub-{run_id}") as publisher,
    ):
        await subscriber.subscribe(telemetry_topic, qos=1)
        await publisher.publish(telemetry_topic, payload, qos=1)
        message = await anext(aiter(subscriber.messages))

    assert str(message.topic) == telemetry_topic
    assert message.qos == 1
    assert message.payload == payload
    assert isinstance(message.payload, bytes)
    assert decode_envelope(message.payload) == envelope
