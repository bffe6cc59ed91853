"""The embedded hub: `outpost hub serve` with no flags and no external service.

One process holds the MQTT broker (amqtt, device login and topic ACL), the
in-process bus and SQLite. Configured only through `OUTPOST_HUB_*` variables
(ports, so tests don't collide), never flags; the dev services are not used.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from protocol import Channel, Envelope, encode, topic
from protocol.models import TelemetryBatch, TelemetryPoint
from tests.integration.edge.test_delivery import data_depth
from tests.integration.harness import AgentProcess, agent_config, free_port, wait_for
from tests.integration.hubrig import OUTPOST, HubProcess

AGENTS = 3
RATE_HZ = 200
POINTS = 3000  # per agent: 15 s at 200 points/s


@dataclass
class EmbeddedHub:
    """A no-flags hub and how to reach it."""

    process: HubProcess
    env: dict[str, str]
    api_port: int
    mqtt_url: str
    database: Path

    def issue(self, device: str) -> str:
        """`outpost hub device add DEVICE`; the password it printed."""
        out = subprocess.run(
            [OUTPOST, "hub", "device", "add", device],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        match = re.search(r'^password = "([^"]+)"$', out, re.MULTILINE)
        assert match, out
        assert 'protocol = "3.1.1"' in out
        return match.group(1)

    def counter_values(self, device: str) -> list[float]:
        """Stored `synthetic.counter` values of a device, ascending."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10) as conn:
            rows = conn.execute(
                "SELECT value FROM telemetry WHERE device = ? AND metric = 'synthetic.counter' "
                "ORDER BY value",
                (device,),
            ).fetchall()
        return [r[0] for r in rows]


@pytest.fixture
def embedded_hub(tmp_path: Path) -> Iterator[EmbeddedHub]:
    data_dir = tmp_path / "hub-data"
    api_port, mqtt_port = free_port(), free_port()
    env = {
        **os.environ,
        "OUTPOST_HUB_DATA_DIR": str(data_dir),
        "OUTPOST_HUB_PORT": str(api_port),
        "OUTPOST_HUB_BROKER__URL": f"mqtt://127.0.0.1:{mqtt_port}",
    }
    env = {k: v for k, v in env.items() if not k.startswith("OUTPOST_TEST_")}
    hub = EmbeddedHub(
        HubProcess(tmp_path / "hub.log", env=env),
        env,
        api_port,
        f"mqtt://127.0.0.1:{mqtt_port}",
        data_dir / "hub.db",
    )
    hub.process.start()
    try:
        hub.process.wait_healthy(api_port)
        yield hub
    finally:
        hub.process.stop()


def _agent(tmp_path: Path, hub: EmbeddedHub, device: str, **sections: dict) -> AgentProcess:
    password = hub.issue(device)
    cfg = agent_config(
        tmp_path / f"{device}.toml",
        device=device,
        data_dir=tmp_path / device,
        mqtt_url=hub.mqtt_url,
        mqtt={"username": device, "password": password, "protocol": "3.1.1"},
        **sections,
    )
    return AgentProcess(cfg, tmp_path / f"{device}.log")


@pytest.mark.timeout(180)
def test_embedded_hub_stores_every_point_exactly_once_across_a_hub_kill(
    tmp_path: Path, embedded_hub: EmbeddedHub
) -> None:
    source = {"type": "synthetic", "rate_hz": RATE_HZ, "limit": POINTS}
    devices = [f"emb-{n}" for n in range(AGENTS)]
    agents = [
        _agent(
            tmp_path,
            embedded_hub,
            device,
            telemetry={"batch_points": 10, "batch_delay_s": 0.1, "sources": [source]},
        )
        for device in devices
    ]
    for agent in agents:
        agent.start()
    try:
        wait_for(
            lambda: all(embedded_hub.counter_values(d) for d in devices), 30, "first points stored"
        )
        time.sleep(3)
        embedded_hub.process.kill()  # broker, bus and writer die together, mid-stream
        time.sleep(3)
        embedded_hub.process.start()
        embedded_hub.process.wait_healthy(embedded_hub.api_port)

        def all_stored() -> bool:
            return all(len(embedded_hub.counter_values(d)) >= POINTS for d in devices)

        wait_for(all_stored, 120, "every point stored")
        for device, agent in zip(devices, agents, strict=True):
            assert embedded_hub.counter_values(device) == [float(i) for i in range(POINTS)]
            wait_for(
                lambda a=agent, d=device: data_depth(tmp_path / d / "outbox.db") == 0,  # type: ignore[misc]
                30,
                f"{device}'s outbox to empty of data through watermarks",
            )
            assert agent.terminate() == 0
    finally:
        for agent in agents:
            agent.ensure_stopped()


async def _publish_as(url: str, user: str, password: str, topic_name: str, payload: bytes) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(
        host, int(port), username=user, password=password, identifier=f"acl-{user}"
    ) as client:
        await client.publish(topic_name, payload, qos=1)


def _point_envelope(device: str, seq: int) -> bytes:
    now = datetime.now(UTC)
    body = TelemetryBatch(points=[TelemetryPoint(ts=now, metric="acl.probe", value=1.0)])
    return encode(
        Envelope(device=device, stream="s-acl", seq=seq, ts=now, kind=Channel.TELEMETRY, body=body)
    )


def test_embedded_broker_admits_enrolled_devices_to_their_own_topics_only(
    embedded_hub: EmbeddedHub,
) -> None:
    mallory = embedded_hub.issue("mallory")
    embedded_hub.issue("victim")
    url = embedded_hub.mqtt_url

    with pytest.raises(aiomqtt.MqttCodeError):  # wrong password
        asyncio.run(_publish_as(url, "mallory", "guess", "outpost/v1/mallory/telemetry", b"{}"))
    with pytest.raises(aiomqtt.MqttCodeError):  # unknown device
        asyncio.run(_publish_as(url, "nobody", mallory, "outpost/v1/nobody/telemetry", b"{}"))

    # Published under the victim's topic, with the victim's id inside: the ACL drops it.
    forged = _point_envelope("victim", 1)
    asyncio.run(_publish_as(url, "mallory", mallory, topic("victim", Channel.TELEMETRY), forged))
    # Its own topic: stored.
    own = _point_envelope("mallory", 1)
    asyncio.run(_publish_as(url, "mallory", mallory, topic("mallory", Channel.TELEMETRY), own))

    def probes(device: str) -> int:
        with sqlite3.connect(f"file:{embedded_hub.database}?mode=ro", uri=True) as conn:
            return int(
                conn.execute(
                    "SELECT count(*) FROM telemetry WHERE device = ? AND metric = 'acl.probe'",
                    (device,),
                ).fetchone()[0]
            )

    wait_for(lambda: probes("mallory") == 1, 20, "mallory's own point stored")
    assert probes("victim") == 0
    assert "denied publish outpost/v1/victim/telemetry to 'mallory'" in embedded_hub.process.tail()

    # Revoked: refused at the next login, though the same login was just verified.
    subprocess.run(
        [OUTPOST, "hub", "device", "revoke", "mallory"], env=embedded_hub.env, check=True
    )
    with pytest.raises(aiomqtt.MqttCodeError):
        asyncio.run(_publish_as(url, "mallory", mallory, "outpost/v1/mallory/telemetry", b"{}"))
