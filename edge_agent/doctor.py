"""`edge-agent doctor`: one OK/FAIL line per check, each failure with its fix."""

from __future__ import annotations

import asyncio
import shutil
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiomqtt
import httpx

from edge_agent.config import AgentSettings
from protocol import SignatureError, private_key_from_pem, public_key_from_text

MAX_CLOCK_SKEW_S = 2.0
MIN_FREE_BYTES = 500 << 20


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(settings: AgentSettings) -> list[Check]:
    """Every check, in the order a technician would fix them."""
    checks: list[Callable[[AgentSettings], Check]] = [
        check_key,
        check_hub_key,
        check_broker_reachable,
        check_broker_auth,
        check_clock,
        check_disk,
    ]
    return [check(settings) for check in checks]


def check_key(settings: AgentSettings) -> Check:
    """The device key exists, is private (0600) and is Ed25519."""
    path = settings.device.key_path
    fix = "re-run `edge-agent install` to create the device identity"
    if not path.is_file():
        return Check("device key", False, f"{path} is missing", fix)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Check("device key", False, f"{path} has mode {mode:o}", f"chmod 600 {path}")
    try:
        private_key_from_pem(path.read_bytes())
    except SignatureError as exc:
        return Check("device key", False, str(exc), fix)
    return Check("device key", True, f"{path} (Ed25519, mode 600)")


def check_hub_key(settings: AgentSettings) -> Check:
    """The hub's command-signing key is pinned."""
    fix = "re-run `edge-agent install` to pin the hub's key"
    if not settings.hub.public_key:
        return Check("hub key", False, "no hub public key pinned: commands cannot be verified", fix)
    try:
        public_key_from_text(settings.hub.public_key)
    except SignatureError as exc:
        return Check("hub key", False, str(exc), fix)
    return Check("hub key", True, "pinned")


def _broker(settings: AgentSettings) -> tuple[str, int]:
    url = urlsplit(settings.mqtt.url)
    return url.hostname or "127.0.0.1", url.port or (8883 if url.scheme == "mqtts" else 1883)


def check_broker_reachable(settings: AgentSettings) -> Check:
    """A TCP connection to the broker opens."""
    host, port = _broker(settings)
    try:
        with socket.create_connection((host, port), timeout=3):
            return Check("broker reachable", True, f"{host}:{port}")
    except OSError as exc:
        return Check(
            "broker reachable",
            False,
            f"{host}:{port}: {exc}",
            "check the network, the broker's address in [mqtt] url, and the firewall",
        )


def check_broker_auth(settings: AgentSettings) -> Check:
    """The broker accepts the device's MQTT credentials."""
    host, port = _broker(settings)

    async def attempt() -> None:
        async with aiomqtt.Client(
            host,
            port,
            username=settings.mqtt.username or None,
            password=settings.mqtt.password or None,
            identifier=f"doctor-{settings.device.id}",
            timeout=5,
            tls_params=settings.mqtt.tls(),
        ):
            pass

    try:
        asyncio.run(asyncio.wait_for(attempt(), 8))
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        return Check(
            "broker login",
            False,
            str(exc)[:200],
            "the broker refused or did not answer: check [mqtt] username/password, or re-enroll",
        )
    return Check("broker login", True, f"accepted as {settings.mqtt.username or '(anonymous)'}")


def check_clock(settings: AgentSettings) -> Check:
    """This machine's clock agrees with the hub's within `MAX_CLOCK_SKEW_S`."""
    fix = "enable NTP (timedatectl set-ntp true) and check the hub address"
    if not settings.hub.url:
        return Check("clock", False, "no hub URL configured", fix)
    try:
        response = httpx.get(f"{settings.hub.url.rstrip('/')}/api/v1/health", timeout=5)
        hub_time = parsedate_to_datetime(response.headers["date"])
    except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
        return Check("clock", False, f"cannot read the hub's time: {exc}"[:200], fix)
    skew = (datetime.now(UTC) - hub_time).total_seconds()
    ok = abs(skew) <= MAX_CLOCK_SKEW_S
    return Check("clock", ok, f"{skew:+.1f} s against the hub", "" if ok else fix)


def check_disk(settings: AgentSettings) -> Check:
    """The data directory has room for the outbox to grow to its cap."""
    path = settings.device.data_dir
    probe = path if path.exists() else path.parent
    free = shutil.disk_usage(probe).free
    need = max(MIN_FREE_BYTES, int(settings.outbox.cap_mb * (1 << 20)))
    ok = free >= need
    detail = (
        f"{free / (1 << 30):.1f} GiB free under {probe} (outbox cap {settings.outbox.cap_mb} MB)"
    )
    fix = "" if ok else "free disk space or lower [outbox] cap_mb"
    return Check("disk", ok, detail, fix)
