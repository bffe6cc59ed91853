"""Model assignments on a real Mosquitto (MQTT 5): retained for a device that subscribes
later (an agent that was offline), and gone once the hub clears the topic."""

from __future__ import annotations

import asyncio
import contextlib

import aiomqtt

from hub.control.publisher import MqttCommandPublisher
from hub.settings import HubSettings
from protocol import Channel, topic


def _settings(url: str) -> HubSettings:
    return HubSettings.model_validate({"broker": {"kind": "external", "url": url, "username": ""}})


async def _retained(mqtt_url: str, name: str) -> bytes | None:
    """What a client subscribing now receives on `name` within a second (None: nothing)."""
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port), protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(name, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                message = await anext(aiter(client.messages))
                assert message.retain
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                return bytes(payload)
    return None


async def test_an_assignment_is_retained_until_cleared(mqtt_url: str, run_id: str) -> None:
    device = f"mdl-{run_id}".lower()[:60]
    name = topic(device, Channel.MODEL)
    async with MqttCommandPublisher(_settings(mqtt_url)) as publisher:
        await publisher.publish_retained(name, b'{"manifest": "v1"}')
        assert await _retained(mqtt_url, name) == b'{"manifest": "v1"}'
        await publisher.publish_retained(name, b"")
        assert await _retained(mqtt_url, name) is None
