"""The API's command connection against a real Mosquitto (MQTT 5): QoS 1 with message
expiry, reconnect-free publishing, and a clear failure when the broker is not there."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import pytest

from hub.control.errors import PublishError
from hub.control.publisher import MqttCommandPublisher
from hub.settings import HubSettings
from protocol import Channel, topic
from tests.integration.harness import free_port


def _settings(url: str, timeout_s: float = 3.0) -> HubSettings:
    return HubSettings.model_validate(
        {
            "broker": {"kind": "external", "url": url, "username": ""},
            "control": {"publish_timeout_s": timeout_s},
        }
    )


async def test_a_command_reaches_a_subscriber_with_its_expiry(mqtt_url: str, run_id: str) -> None:
    device = f"cmd-{run_id}".lower()[:60]
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    async with (
        aiomqtt.Client(host, int(port), protocol=aiomqtt.ProtocolVersion.V5) as device_side,
        MqttCommandPublisher(_settings(mqtt_url)) as publisher,
    ):
        await device_side.subscribe(topic(device, Channel.CMD), qos=1)
        await publisher.publish(topic(device, Channel.CMD), b'{"stop": true}', expiry_s=600)
        async with asyncio.timeout(5):
            message = await anext(aiter(device_side.messages))
        assert message.payload == b'{"stop": true}'
        assert message.qos == 1
        assert 590 <= message.properties.MessageExpiryInterval <= 600  # type: ignore[union-attr]
        assert publisher.connected


@pytest.mark.timeout(20)
async def test_no_broker_fails_within_the_publish_timeout() -> None:
    async with MqttCommandPublisher(_settings(f"mqtt://127.0.0.1:{free_port()}", 0.5)) as publisher:
        started = time.monotonic()
        with pytest.raises(PublishError, match=r"no connection to the broker within 0\.5 s"):
            await publisher.publish("outpost/v1/amr-7/cmd", b"{}", expiry_s=10)
        assert time.monotonic() - started < 1.5
