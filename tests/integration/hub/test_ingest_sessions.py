"""Ingest's persistent per-channel sessions against a real Mosquitto: a successor resumes
what its predecessor left unacknowledged, in order, and a session resumed by another
connection is let go instead of fought over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from hub.bus.base import BusError, ProducerRecord
from hub.bus.memory import InMemoryBus
from hub.ingest.service import SESSION_TAKEN_OVER, Ingest
from hub.settings import HubSettings
from protocol import Channel, Envelope, TelemetryBatch, TelemetryPoint, encode, topic
from tests.integration.harness import until

NOW = datetime(2026, 11, 28, tzinfo=UTC)
MESSAGES = 40


class DownBus(InMemoryBus):
    """A bus that never takes anything: ingest holds every message unacknowledged."""

    async def produce_many(self, records: Sequence[ProducerRecord]) -> None:
        raise BusError("down on purpose")


def settings(tmp_path: Path, mqtt_url: str, group: str) -> HubSettings:
    return HubSettings.model_validate(
        {
            "data_dir": str(tmp_path),
            "broker": {"kind": "external", "url": mqtt_url, "username": ""},
            "ingest": {"shared_group": group, "session_expiry_s": 60},
        }
    )


def telemetry(device: str, seq: int) -> bytes:
    body = TelemetryBatch(points=[TelemetryPoint(ts=NOW, metric="n", value=seq)])
    return encode(
        Envelope(device=device, stream="s1", seq=seq, ts=NOW, kind=Channel.TELEMETRY, body=body)
    )


def publisher(mqtt_url: str) -> mqtt.Client:
    """A connected MQTT 5 client."""
    url = urlsplit(mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    return client


async def running(ingest: Ingest) -> asyncio.Task[None]:
    task = asyncio.create_task(ingest.run())
    await asyncio.wait_for(ingest.connected(), 15)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def seqs_on_bus(bus: InMemoryBus, device: str, want: int) -> list[int]:
    seqs: list[int] = []
    async with bus.consumer(["telemetry.raw"], group="check") as consumer:
        async with asyncio.timeout(20):
            while len(seqs) < want:
                for record in await consumer.poll(timeout_s=0.5):
                    envelope = orjson.loads(record.value)
                    if envelope["device"] == device:
                        seqs.append(envelope["seq"])
    return seqs


@pytest.mark.timeout(90)
async def test_a_successor_gets_what_its_predecessor_left_unacknowledged_in_order(
    tmp_path: Path, mqtt_url: str, run_id: str
) -> None:
    group, device = f"ingest-succ-{run_id}", f"succ-{run_id}"
    config = settings(tmp_path, mqtt_url, group)
    down = DownBus()
    await down.start()
    first = Ingest(config, down)
    first_task = await running(first)
    assert first.serving == ["acks", "detections", "events", "frames", "state", "telemetry"]

    client = publisher(mqtt_url)
    for seq in range(1, MESSAGES + 1):
        client.publish(topic(device, Channel.TELEMETRY), telemetry(device, seq), qos=1)
    # It has them and cannot pass them on:
    await until(lambda: first.counters.bus_retries >= 2, 15, "the first ingest to hold them")
    await stop(first_task)  # nothing acknowledged: the broker keeps them for the session
    for seq in range(MESSAGES + 1, 2 * MESSAGES + 1):  # queued while nobody serves it
        client.publish(topic(device, Channel.TELEMETRY), telemetry(device, seq), qos=1)
    client.loop_stop()
    client.disconnect()

    bus = InMemoryBus()
    await bus.start()
    second = Ingest(config, bus)
    second_task = await running(second)
    try:
        seqs = await seqs_on_bus(bus, device, 2 * MESSAGES)
    finally:
        await stop(second_task)
        await bus.stop()
        await down.stop()
    assert seqs == list(range(1, 2 * MESSAGES + 1))


@pytest.mark.timeout(60)
async def test_a_session_the_broker_says_was_taken_over_is_let_go(
    tmp_path: Path, mqtt_url: str, run_id: str
) -> None:
    """MQTT 5 brokers that say so (DISCONNECT 142) end the session at once; Mosquitto 2.0
    only closes the socket, which the bus's revocation covers at the next heartbeat."""
    bus = InMemoryBus()
    await bus.start()
    ingest = Ingest(settings(tmp_path, mqtt_url, f"ingest-take-{run_id}"), bus)
    task = await running(ingest)
    try:
        session = next(s for s in ingest._sessions.values() if s.spec.name == "telemetry")
        said = ReasonCode(PacketTypes.DISCONNECT, identifier=SESSION_TAKEN_OVER)
        flags = DisconnectFlags(is_disconnect_packet_from_server=True)
        on_disconnect: Any = session.client.on_disconnect  # as paho's thread calls it
        on_disconnect(session.client, None, flags, said, None)
        await until(lambda: "telemetry" not in ingest.serving, 10, "the session let go")
        await asyncio.sleep(1)
        assert not session.client.is_connected(), "it must not reconnect and take it back"
        assert ingest.counters.takeovers == 1
        assert "events" in ingest.serving  # the other sessions are untouched
    finally:
        await stop(task)
        await bus.stop()
