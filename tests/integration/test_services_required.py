"""A test that needs a dev service it cannot reach fails, naming the service and the fix.

Each case runs pytest in a subprocess on a generated test that only requests one fixture,
with the service's address pointed at a port where nothing listens.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else gets it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def run_generated_test(tmp_path: Path, fixture: str, env: dict[str, str]) -> tuple[int, str]:
    """Run a one-test session that requests `fixture` from our conftest; return (rc, output)."""
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n", encoding="utf-8"
    )
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            import importlib.util
            import sys

            _name = "outpost_integration_conftest"
            _spec = importlib.util.spec_from_file_location(_name, {str(CONFTEST)!r})
            _conftest = sys.modules[_name] = importlib.util.module_from_spec(_spec)
            _spec.loader.exec_module(_conftest)
            {fixture} = _conftest.{fixture}
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "test_generated.py").write_text(
        f"def test_needs_service({fixture}):\n    pass\n", encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_generated.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


SERVICES = [
    pytest.param(
        "mqtt_url",
        "OUTPOST_TEST_MQTT_URL",
        "mqtt://127.0.0.1:{port}",
        "Mosquitto",
        "mosquitto",
        id="mosquitto",
    ),
    pytest.param(
        "kafka_bootstrap",
        "OUTPOST_TEST_KAFKA_BOOTSTRAP",
        "127.0.0.1:{port}",
        "Kafka",
        "kafka",
        id="kafka",
    ),
    pytest.param(
        "pg_dsn",
        "OUTPOST_TEST_PG_DSN",
        "postgresql://outpost@127.0.0.1:{port}/outpost",
        "PostgreSQL",
        "postgres",
        id="postgres",
    ),
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("fixture", "env_var", "address", "title", "script_name"), SERVICES)
def test_unreachable_service_fails_the_test(
    tmp_path: Path,
    closed_port: int,
    fixture: str,
    env_var: str,
    address: str,
    title: str,
    script_name: str,
) -> None:
    env = {**os.environ, env_var: address.format(port=closed_port)}
    rc, output = run_generated_test(tmp_path, fixture, env)

    assert rc == 1, output  # pytest's "tests failed or errored", not "skipped" (0)
    assert f"{title} is not reachable at 127.0.0.1:{closed_port}" in output, output
    assert f"deploy/dev/services start {script_name}" in output, output
    assert "1 error" in output, output


@pytest.mark.timeout(90)
def test_missing_env_file_fails_the_test(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OUTPOST_TEST_MQTT_URL"}
    env["OUTPOST_DEV_DIR"] = str(tmp_path / "no-dev-dir")
    rc, output = run_generated_test(tmp_path, "mqtt_url", env)

    assert rc == 1, output
    assert "Mosquitto is not reachable: no address" in output, output
    assert "services.env" in output, output
    assert "deploy/dev/services start mosquitto" in output, output
