"""Fixtures for tests against the real dev services (`deploy/dev/services start`).

Addresses come from `.dev/services.env` (written by the script), overridden by the
`OUTPOST_TEST_*` environment variables. A service that cannot be reached fails the
test with the service, the address and the command that fixes it; it never skips.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:  # imported where used: test_services_required loads this file standalone
    from tests.integration.hubrig import HubStack

REPO_ROOT = Path(__file__).resolve().parents[2]
CONNECT_TIMEOUT_S = 1.0
INTEGRATION_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Service:
    """One dev service: how to find its address and how to start it."""

    title: str
    script_name: str
    env_var: str


MOSQUITTO = Service("Mosquitto", "mosquitto", "OUTPOST_TEST_MQTT_URL")
KAFKA = Service("Kafka", "kafka", "OUTPOST_TEST_KAFKA_BOOTSTRAP")
POSTGRES = Service("PostgreSQL", "postgres", "OUTPOST_TEST_PG_DSN")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker here too, so the folder works under any ini file."""
    config.addinivalue_line("markers", "integration: needs the real dev services")
    config.addinivalue_line("markers", "serial: runs alone, after the rest")


SERIAL = {
    "hub/test_scale.py": "fleets that saturate the CPU; one stops the shared Kafka",
    "edge/test_delivery.py": "live-data latency during a drain; kill -9 throughput",
    "edge/test_mqtt_robot.py": "watchdog and override timing",
    "edge/test_ros_robot.py": "watchdog and override timing",
    "edge/test_websocket_robot.py": "watchdog and override timing",
    "edge/test_gateway.py": "frames lost only inside the kill window",
    "sim/test_sim_perception.py": "stopping distance depends on detection latency",
    "sim/test_sim_run.py": "a stop relayed to the robot within one control period",
}
"""Files whose tests run alone, after the rest (`deploy/dev/run-tests`), and why."""


@pytest.hookimpl(tryfirst=True)  # before `-m` selection runs on the same hook
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder `integration`, and those of SERIAL `serial`."""
    for item in items:
        path = item.path.resolve()
        if INTEGRATION_DIR in path.parents:
            item.add_marker(pytest.mark.integration)
            if path.relative_to(INTEGRATION_DIR).as_posix() in SERIAL:
                item.add_marker(pytest.mark.serial)


def env_file_path() -> Path:
    """Where `deploy/dev/services start` writes the addresses."""
    dev_dir = Path(os.environ.get("OUTPOST_DEV_DIR", REPO_ROOT / ".dev"))
    return (dev_dir if dev_dir.is_absolute() else REPO_ROOT / dev_dir) / "services.env"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse `KEY=VALUE` lines; blank lines and `#` comments are ignored."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def _fix(service: Service) -> str:
    return f"start it with: deploy/dev/services start {service.script_name}"


def service_address(service: Service) -> str:
    """The configured address of `service`, or fail the test saying how to get one."""
    value = os.environ.get(service.env_var)
    if value:
        return value
    path = env_file_path()
    if path.is_file():
        value = read_env_file(path).get(service.env_var)
        if value:
            return value
    pytest.fail(
        f"{service.title} is not reachable: no address ({service.env_var} is unset and "
        f"{path} does not name it) — {_fix(service)}",
        pytrace=False,
    )


def require_reachable(service: Service, host: str, port: int) -> None:
    """Fail the test unless a TCP connection to `host:port` opens within a second."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return
    except OSError:
        pass
    pytest.fail(
        f"{service.title} is not reachable at {host}:{port} — {_fix(service)}",
        pytrace=False,
    )


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"//{url}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """`mqtt://host:port` of a reachable MQTT broker."""
    url = service_address(MOSQUITTO)
    require_reachable(MOSQUITTO, *_host_port(url, 1883))
    return url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """`host:port` of a reachable Kafka broker."""
    bootstrap = service_address(KAFKA)
    require_reachable(KAFKA, *_host_port(bootstrap.split(",")[0], 9092))
    return bootstrap


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """`postgresql://user@host:port/db` of a reachable PostgreSQL server."""
    dsn = service_address(POSTGRES)
    require_reachable(POSTGRES, *_host_port(dsn, 5432))
    return dsn


@pytest.fixture(scope="session")
def run_id() -> str:
    """Short random hex that keeps this run's topics, schemas and devices apart from others."""
    return secrets.token_hex(4)


@pytest.fixture
def real_hub(
    tmp_path: Path, kafka_bootstrap: str, pg_dsn: str
) -> Iterator[Callable[[str], HubStack]]:
    """Start real hub roles on a broker URL (the dev Mosquitto or a test's private one)."""
    from tests.integration.hubrig import HubStack

    stacks: list[HubStack] = []

    def start(mqtt_url: str) -> HubStack:
        stack = HubStack(
            tmp_path / f"hub-{len(stacks)}", mqtt_url=mqtt_url, kafka=kafka_bootstrap, pg_dsn=pg_dsn
        )
        stacks.append(stack)
        return stack

    try:
        yield start
    finally:
        for stack in stacks:
            stack.close()
