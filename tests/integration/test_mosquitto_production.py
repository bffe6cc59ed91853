"""deploy/mosquitto/production.conf, run by the real Mosquitto.

Devices reach it over TLS only, with a login the hub created through the
dynamic-security plugin; anonymous clients, plain MQTT on the TLS port and clients
that do not trust the CA are refused; retained state survives a broker restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_agent.config import MqttSection
from hub.broker.dynsec import DynsecProvisioner
from protocol import Channel, topic
from tests.integration.harness import (
    DYNSEC_PLUGIN,
    MOSQUITTO,
    MOSQUITTO_CTRL,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "mosquitto" / "production.conf"
HUB_USER, HUB_PASSWORD = "outpost-hub", "hub-admin-password"


@dataclass
class Broker:
    tls_port: int
    port: int
    ca: Path
    conf: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL)
        wait_for(lambda: _accepts(self.port), 10, "production mosquitto")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _certificates(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 / localhost, as an operator would make."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Outpost test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(ca.public_bytes(pem))
    (folder / "server.crt").write_bytes(server.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    state, tls = tmp_path / "state", tmp_path / "tls"
    state.mkdir()
    tls.mkdir()
    _certificates(tls)
    subprocess.run(
        [MOSQUITTO_CTRL, "dynsec", "init", str(state / "dynamic-security.json"), HUB_USER,
         HUB_PASSWORD], check=True, capture_output=True,
    )  # fmt: skip
    tls_port, port = free_port(), free_port()
    text = (
        TEMPLATE.read_text()
        .replace("@STATE_DIR@", str(state))
        .replace("@TLS_DIR@", str(tls))
        .replace("@INTERNAL_BIND@", "127.0.0.1")
        .replace("@PLUGIN@", DYNSEC_PLUGIN)
        .replace("listener 8883", f"listener {tls_port}")
        .replace("listener 1883", f"listener {port}")
    )
    assert "@" not in text.replace("@obsolete", "")
    if os.geteuid() == 0:
        text += "user root\n"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    running = Broker(tls_port, port, tls / "ca.crt", conf)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def device_client(broker: Broker, user: str, password: str, ca: Path | None) -> aiomqtt.Client:
    """A client set up exactly as the agent sets up its uplink (`MqttSection.tls`)."""
    section = MqttSection(url=f"mqtts://127.0.0.1:{broker.tls_port}", ca_file=str(ca) if ca else "")
    return aiomqtt.Client(
        "127.0.0.1",
        broker.tls_port,
        username=user,
        password=password,
        identifier=f"{user}-{os.getpid()}",
        tls_params=section.tls(),
        timeout=5,
    )


async def test_devices_connect_over_tls_with_their_hub_made_login(broker: Broker) -> None:
    hub_url = f"mqtt://127.0.0.1:{broker.port}"
    admin = DynsecProvisioner(hub_url, username=HUB_USER, password=HUB_PASSWORD)
    await admin.bootstrap()
    await admin.add_device("amr-7", "device-pw")
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username=HUB_USER, password=HUB_PASSWORD, identifier="hub"
    ) as hub:
        await hub.subscribe("outpost/v1/+/telemetry", qos=1)
        async with device_client(broker, "amr-7", "device-pw", broker.ca) as device:
            await device.publish(topic("amr-7", Channel.TELEMETRY), b"{}", qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(hub.messages))
        assert str(message.topic) == "outpost/v1/amr-7/telemetry"
        # Retained state (a model assignment) survives a broker restart (persistence).
        await hub.publish(topic("amr-7", Channel.MODEL), b'{"m": 1}', qos=1, retain=True)
    broker.stop()
    broker.start()
    async with device_client(broker, "amr-7", "device-pw", broker.ca) as device:
        await device.subscribe(topic("amr-7", Channel.MODEL), qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(device.messages))
        assert message.payload == b'{"m": 1}'


# paho leaves the socket of a refused TLS handshake for the garbage collector to close.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_refusals(broker: Broker) -> None:
    admin = DynsecProvisioner(
        f"mqtt://127.0.0.1:{broker.port}", username=HUB_USER, password=HUB_PASSWORD
    )
    await admin.add_device("amr-7", "device-pw")
    with pytest.raises(aiomqtt.MqttCodeError):  # anonymous
        async with device_client(broker, "", "", broker.ca):
            pass
    with pytest.raises(aiomqtt.MqttCodeError):  # wrong password
        async with device_client(broker, "amr-7", "wrong", broker.ca):
            pass
    with pytest.raises((aiomqtt.MqttError, ssl.SSLError)):  # does not trust the private CA
        async with device_client(broker, "amr-7", "device-pw", None):
            pass
    with pytest.raises(aiomqtt.MqttError):  # plain MQTT on the TLS port
        async with aiomqtt.Client(
            "127.0.0.1", broker.tls_port, username="amr-7", password="device-pw", timeout=3
        ):
            pass


def test_agent_config_refuses_a_missing_ca_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        MqttSection(url="mqtts://b:8883", ca_file=str(tmp_path / "nope.pem"))
