"""An embedded `outpost hub serve` with a site, and a real agent enrolled into it by token.

Shared by the end-to-end tests of enrollment and control.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import tomli_w

from protocol import Channel, Envelope, decode, encode, topic
from protocol.models import Watermark
from tests.integration.harness import EDGE_AGENT, free_port
from tests.integration.hubrig import OUTPOST, HubProcess

PASSWORD = "correct horse battery"


def run(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run a command; fail the test with its output unless it exits 0."""
    done = subprocess.run(args, env=env, input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{args[:3]}: {done.stdout}\n{done.stderr}"
    return done


def run_config(installed: Path, target: Path) -> Path:
    """The installed config (credentials, pinned key untouched) plus a telemetry source."""
    document = tomllib.loads(installed.read_text(encoding="utf-8"))
    document["mqtt"]["connect_timeout_s"] = 3
    document["uplink"] = {"backoff_initial_s": 0.1, "backoff_max_s": 1, "state_interval_s": 1}
    document["metrics"] = {"port": 0}
    document["telemetry"] = {
        "batch_points": 5,
        "batch_delay_s": 0.1,
        "sources": [{"type": "synthetic", "rate_hz": 20}],
    }
    target.write_text(tomli_w.dumps(document), encoding="utf-8")
    return target


@dataclass
class EmbeddedHub:
    """A started embedded hub: its process, environment and addresses."""

    hub: HubProcess
    env: dict[str, str]
    data_dir: Path
    api_port: int
    mqtt_port: int

    @property
    def url(self) -> str:
        """The API's base URL."""
        return f"http://127.0.0.1:{self.api_port}"


def start_embedded_hub(tmp_path: Path, **settings: str) -> EmbeddedHub:
    """`outpost hub serve` on free ports with a private data dir, healthy; stop it yourself.

    `settings` are more `OUTPOST_HUB_*` variables, e.g. `METRICS__PORT="9100"`.
    """
    data_dir, api_port, mqtt_port = tmp_path / "hub-data", free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")},
        "OUTPOST_HUB_DATA_DIR": str(data_dir),
        "OUTPOST_HUB_PORT": str(api_port),
        "OUTPOST_HUB_BROKER__URL": f"mqtt://127.0.0.1:{mqtt_port}",
        **{f"OUTPOST_HUB_{k}": v for k, v in settings.items()},
    }
    hub = HubProcess(tmp_path / "hub.log", env=env)
    hub.start()
    try:
        hub.wait_healthy(api_port)
    except BaseException:
        hub.stop()
        raise
    return EmbeddedHub(hub, env, data_dir, api_port, mqtt_port)


def init_site(running: EmbeddedHub, site: str = "plant-a") -> None:
    """The first admin (`root`, PASSWORD) and a site."""
    run(
        OUTPOST,
        "hub",
        "init",
        "--username",
        "root",
        "--password-stdin",
        env=running.env,
        stdin=PASSWORD,
    )
    run(OUTPOST, "hub", "site", "add", site, env=running.env)


def install_agent(
    running: EmbeddedHub, tmp_path: Path, site: str = "plant-a", *, name: str = "AMR 7"
) -> Path:
    """`outpost hub token create`, then `edge-agent install --token`; the installed config."""
    created = run(
        OUTPOST, "hub", "token", "create", "--site", site, "--hub", running.url, env=running.env
    ).stdout
    line = re.search(r"^\s*(edge-agent install .+)$", created, re.MULTILINE)
    assert line, created
    token = line[1].split("--token ")[1]
    installed, agent_data = tmp_path / "agent.toml", tmp_path / "agent-data"
    run(
        EDGE_AGENT,
        "install",
        "--hub",
        running.url,
        "--token",
        token,
        "--name",
        name,
        "--config",
        str(installed),
        "--data-dir",
        str(agent_data),
        "--no-service",
        env=running.env,
    )
    return installed


async def publish_as_device(
    running: EmbeddedHub, device: str, password: str, envelopes: list[Envelope]
) -> int:
    """Publish envelopes as an enrolled device would (its own login and topics, QoS 1);
    returns the watermark the hub sent back for their stream once it covers the last one."""
    stream, last = envelopes[-1].stream, envelopes[-1].seq
    async with aiomqtt.Client(
        "127.0.0.1",
        running.mqtt_port,
        username=device,
        password=password,
        identifier=f"{device}-test",
        protocol=aiomqtt.ProtocolVersion.V311,
    ) as mqtt:
        await mqtt.subscribe(topic(device, Channel.INGESTED), qos=1)
        for envelope in envelopes:
            await mqtt.publish(topic(device, envelope.kind), encode(envelope), qos=1)
        async with asyncio.timeout(20):
            async for message in mqtt.messages:
                mark = decode(message.payload, Watermark)  # type: ignore[arg-type]
                if mark.stream == stream and mark.seq >= last:
                    return mark.seq
    raise AssertionError("no watermark")
