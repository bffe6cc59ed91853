"""The agent's systemd unit, as `edge-agent install` renders it, is valid and hardened.

Checked offline with the real `systemd-analyze`: `verify` must print nothing and exit
0, and `security --offline=yes` must rate the unit's exposure "OK" or better (the
template with no hardening rated 8.9, "EXPOSED").
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_agent.systemd import SERVICE_NAME, render_unit

MAX_EXPOSURE = 3.0


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: apt-get install systemd"
    executable = tmp_path / "bin" / "edge-agent"
    executable.parent.mkdir()
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    text = render_unit(
        executable=executable,
        config=Path("/etc/outpost/agent.toml"),
        data_dir=Path("/var/lib/outpost-agent"),
    )
    path = tmp_path / f"{SERVICE_NAME}.service"
    path.write_text(text)
    return path


def test_the_rendered_unit_verifies(unit: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""


def test_the_unit_is_hardened(unit: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    overall = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", done.stdout)
    assert overall, done.stdout + done.stderr
    assert float(overall[1]) <= MAX_EXPOSURE, done.stdout


def test_a_broken_unit_does_not_verify(unit: Path) -> None:
    """The check can fail: systemd ignores bad lines with exit status 0 but reports them."""
    broken = unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=perhaps\nOops=1")
    unit.write_text(broken)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    report = done.stdout + done.stderr
    assert "perhaps" in report
    assert "Unknown key 'Oops'" in report
