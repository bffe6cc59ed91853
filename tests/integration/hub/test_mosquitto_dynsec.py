"""Device logins in a real Mosquitto, kept by the hub through the dynamic-security plugin.

Device B can neither publish nor subscribe under device A's topics (0 of N attempts
accepted, judged by what a hub-side subscriber and B actually receive), and a
removed device is disconnected and refused at its next connect, both through the
provisioner directly and through enrollment and removal on a running hub.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest

from hub.broker.dynsec import DynsecProvisioner, ProvisioningError
from protocol import DOWNLINK_CHANNELS, UPLINK_CHANNELS, Channel, topic
from tests.integration.harness import EDGE_AGENT, PrivateBroker, free_port
from tests.integration.hub.embedded import PASSWORD, run
from tests.integration.hubrig import OUTPOST, HubProcess

pytestmark = pytest.mark.integration

HUB_USER, HUB_PASSWORD = "outpost-hub", "hub-admin-password"
ATTEMPTS = 10


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    running = PrivateBroker(tmp_path / "mosquitto", dynsec_admin=(HUB_USER, HUB_PASSWORD))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def provisioner(broker: PrivateBroker) -> DynsecProvisioner:
    return DynsecProvisioner(broker.url, username=HUB_USER, password=HUB_PASSWORD)


def client(broker: PrivateBroker, user: str, password: str, name: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1", broker.port, username=user, password=password, identifier=name, timeout=5
    )


async def drain(messages: asyncio.Queue[aiomqtt.Message], seconds: float) -> list[str]:
    await asyncio.sleep(seconds)
    seen = []
    while not messages.empty():
        seen.append(str(messages.get_nowait().topic))
    return seen


async def collect(mqtt: aiomqtt.Client, into: asyncio.Queue[aiomqtt.Message]) -> None:
    async for message in mqtt.messages:
        into.put_nowait(message)


async def test_device_b_cannot_touch_device_a_topics(broker: PrivateBroker) -> None:
    admin = provisioner(broker)
    await admin.bootstrap()
    await admin.bootstrap()  # idempotent
    await admin.add_device("amr-a", "pw-a")
    await admin.add_device("amr-b", "pw-b")
    hub_seen: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
    b_seen: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
    async with (
        client(broker, HUB_USER, HUB_PASSWORD, "hub") as hub,
        client(broker, "amr-a", "pw-a", "amr-a") as a,
        client(broker, "amr-b", "pw-b", "amr-b") as b,
        asyncio.TaskGroup() as tg,
    ):
        await hub.subscribe("outpost/v1/#", qos=1)
        hub_task = tg.create_task(collect(hub, hub_seen))
        b_task = tg.create_task(collect(b, b_seen))
        # Control: A's own uplink reaches the hub, so a silent broker cannot pass the test.
        await a.publish(topic("amr-a", Channel.TELEMETRY), b"{}", qos=1)
        assert await drain(hub_seen, 0.5) == ["outpost/v1/amr-a/telemetry"]

        accepted = 0
        for _ in range(ATTEMPTS):
            for channel in sorted(UPLINK_CHANNELS | DOWNLINK_CHANNELS):
                # Forging A's telemetry, or A's commands, as B.
                await b.publish(topic("amr-a", Channel(channel)), b"{}", qos=1)
        forged = await drain(hub_seen, 0.5)
        accepted += len(forged)
        for channel in sorted(DOWNLINK_CHANNELS | UPLINK_CHANNELS):
            await b.subscribe(topic("amr-a", Channel(channel)), qos=1)
        for pattern in ("outpost/v1/amr-a/#", "outpost/v1/+/cmd", "#"):
            await b.subscribe(pattern, qos=1)
        for _ in range(ATTEMPTS):
            for channel in sorted(DOWNLINK_CHANNELS):
                await hub.publish(topic("amr-a", Channel(channel)), b"{}", qos=1)
        leaked = await drain(b_seen, 0.5)
        accepted += len(leaked)
        assert accepted == 0, (forged, leaked)
        # B still works under its own prefix.
        await b.publish(topic("amr-b", Channel.EVENTS), b"{}", qos=1)
        assert "outpost/v1/amr-b/events" in await drain(hub_seen, 0.5)
        hub_task.cancel()
        b_task.cancel()


async def test_removed_device_is_disconnected_and_refused(broker: PrivateBroker) -> None:
    admin = provisioner(broker)
    await admin.bootstrap()
    await admin.add_device("amr-a", "pw-a")
    async with client(broker, "amr-a", "pw-a", "amr-a") as a:
        await admin.remove_device("amr-a")
        with pytest.raises(aiomqtt.MqttError):  # kicked: the connection is gone
            await asyncio.wait_for(_read_until_closed(a), 5)
    with pytest.raises(aiomqtt.MqttCodeError):
        async with client(broker, "amr-a", "pw-a", "amr-a-again"):
            pass
    await admin.remove_device("amr-a")  # removing twice is not an error


async def _read_until_closed(mqtt: aiomqtt.Client) -> None:
    async for _ in mqtt.messages:
        pass


async def test_wrong_admin_password_is_a_clear_error(broker: PrivateBroker) -> None:
    wrong = DynsecProvisioner(broker.url, username=HUB_USER, password="nope", timeout_s=2)
    with pytest.raises(ProvisioningError, match="cannot reach Mosquitto"):
        await wrong.add_device("amr-a", "pw-a")


def test_enroll_and_remove_through_a_hub(broker: PrivateBroker, tmp_path: Path) -> None:
    api_port = free_port()
    config = tmp_path / "hub.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "hub-data"}"\nport = {api_port}\n'
        f'[broker]\nkind = "external"\nurl = "{broker.url}"\nusername = "{HUB_USER}"\n'
        f'password = "{HUB_PASSWORD}"\nprovisioning = "dynsec"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    hub = HubProcess(tmp_path / "hub.log", config=config, env=env)
    hub.start()
    try:
        hub.wait_healthy(api_port)
        url = f"http://127.0.0.1:{api_port}"
        cfg = ("--config", str(config))
        run(OUTPOST, "hub", "init", *cfg, "--username", "root", "--password-stdin",
            env=env, stdin=PASSWORD)  # fmt: skip
        run(OUTPOST, "hub", "site", "add", "plant-a", *cfg, env=env)
        created = run(
            OUTPOST, "hub", "token", "create", "--site", "plant-a", "--hub", url, *cfg, env=env
        ).stdout
        token = re.search(r"--token (\S+)", created)
        assert token, created
        installed = tmp_path / "agent.toml"
        run(EDGE_AGENT, "install", "--hub", url, "--token", token[1], "--name", "AMR 7",
            "--config", str(installed), "--data-dir", str(tmp_path / "agent-data"),
            "--no-service", env=env)  # fmt: skip
        text = installed.read_text()
        user = re.search(r'username = "([^"]+)"', text)
        password = re.search(r'password = "([^"]+)"', text)
        assert user, text
        assert password, text
        asyncio.run(_uses_login(broker, user[1], password[1]))

        with httpx.Client(base_url=url, timeout=10) as api:
            login = api.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            removed = api.delete(f"/api/v1/devices/{user[1]}", headers=headers)
            assert removed.status_code == 204, removed.text
        with pytest.raises(aiomqtt.MqttCodeError):
            asyncio.run(_uses_login(broker, user[1], password[1]))
    except BaseException:
        print(hub.tail())
        raise
    finally:
        hub.stop()


async def _uses_login(broker: PrivateBroker, user: str, password: str) -> None:
    async with client(broker, user, password, f"{user}-probe") as device:
        await device.publish(topic(user, Channel.EVENTS), b"{}", qos=1)


def test_mosquitto_ctrl_is_installed() -> None:
    """The dynamic-security tools come with the Debian package that `make test` installs."""
    done = subprocess.run(["mosquitto_ctrl", "--help"], capture_output=True, text=True)
    assert "dynsec" in done.stdout + done.stderr
