"""The `outpost-agent` systemd service: the unit file and the `systemctl` calls.

Everything that touches the host is injectable so tests run it in temporary
directories with a recording `systemctl`: the unit directory
(`OUTPOST_AGENT_UNIT_DIR`), the `systemctl` command (`OUTPOST_SYSTEMCTL`) and the
directory whose presence means "systemd is running" (`OUTPOST_SYSTEMD_RUNTIME_DIR`,
`/run/systemd/system` as `sd_booted()` checks).

Example:
    >>> from pathlib import Path
    >>> unit = render_unit(executable=Path("/usr/bin/edge-agent"),
    ...     config=Path("/etc/outpost/agent.toml"), data_dir=Path("/var/lib/outpost"))
    >>> [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    ['ExecStart=/usr/bin/edge-agent run --config /etc/outpost/agent.toml']
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edge_agent.errors import AgentError

SERVICE_NAME = "outpost-agent"
UNIT_NAME = f"{SERVICE_NAME}.service"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
SYSTEMD_RUNTIME_DIR = Path("/run/systemd/system")
UNIT_DIR_ENV = "OUTPOST_AGENT_UNIT_DIR"
SYSTEMCTL_ENV = "OUTPOST_SYSTEMCTL"
RUNTIME_DIR_ENV = "OUTPOST_SYSTEMD_RUNTIME_DIR"
HOME_ROOTS = (Path("/home"), Path("/root"), Path("/run/user"))
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./@+:-]*$")


class ServiceError(AgentError):
    """The service could not be installed, started, stopped or removed."""


@dataclass(frozen=True)
class Systemd:
    """Where the unit goes, which `systemctl` runs, and how to tell systemd is running."""

    unit_dir: Path = DEFAULT_UNIT_DIR
    systemctl: str = "systemctl"
    runtime_dir: Path = SYSTEMD_RUNTIME_DIR
    timeout_s: float = 90.0

    @classmethod
    def from_env(
        cls, unit_dir: Path | None = None, env: Mapping[str, str] | None = None
    ) -> Systemd:
        """Defaults overridden by the `OUTPOST_*` variables above; `unit_dir` wins over env."""
        env = os.environ if env is None else env
        return cls(
            unit_dir=unit_dir or Path(env.get(UNIT_DIR_ENV) or DEFAULT_UNIT_DIR),
            systemctl=env.get(SYSTEMCTL_ENV) or "systemctl",
            runtime_dir=Path(env.get(RUNTIME_DIR_ENV) or SYSTEMD_RUNTIME_DIR),
        )

    @property
    def unit_path(self) -> Path:
        """The installed unit file."""
        return self.unit_dir / UNIT_NAME

    def running(self) -> bool:
        """True when systemd is the init system here (what `sd_booted()` checks)."""
        return self.runtime_dir.is_dir()

    def command(self, *args: str) -> list[str]:
        """The argument list of one `systemctl` call."""
        return [self.systemctl, *args]

    def run(self, *args: str) -> None:
        """Run `systemctl ARGS`; `ServiceError` with its output if it fails."""
        argv = self.command(*args)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"`{' '.join(argv)}` could not run: {exc}") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()[:500]
            raise ServiceError(f"`{' '.join(argv)}` failed (exit {done.returncode}): {output}")


def unit_template() -> str:
    """The canonical unit file shipped with the package, placeholders included."""
    return (resources.files("edge_agent") / "service" / UNIT_NAME).read_text(encoding="utf-8")


def render_unit(*, executable: Path, config: Path, data_dir: Path) -> str:
    """The unit file for this install: absolute paths filled in, home protection chosen."""
    values = {
        "@EDGE_AGENT@": _unit_path(executable),
        "@CONFIG@": _unit_path(config),
        "@DATA_DIR@": _unit_path(data_dir),
        "@PROTECT_HOME@": _protect_home(executable, config, data_dir),
    }
    lines = unit_template().splitlines(keepends=True)
    return "".join(line if line.startswith("#") else _fill(line, values) for line in lines)


def _fill(line: str, values: Mapping[str, str]) -> str:
    for placeholder, value in values.items():
        line = line.replace(placeholder, value)
    return line


def agent_executable() -> Path:
    """Absolute path of the `edge-agent` command of this installation."""
    sibling = Path(sys.executable).parent / "edge-agent"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return sibling.absolute()
    found = shutil.which("edge-agent")
    if found:
        return Path(found).absolute()
    raise ServiceError(
        "cannot find the `edge-agent` command to put in the service unit; "
        "install Outpost with pip so that it is on PATH"
    )


def _unit_path(path: Path) -> str:
    """An absolute path that a unit file can name without quoting or escaping."""
    text = str(path)
    if not _SAFE_PATH.fullmatch(text):
        raise ServiceError(
            f"{text!r}: the service unit can only name absolute paths made of letters, digits "
            "and _ . / @ + : - (no spaces); choose another path"
        )
    return text


def _protect_home(*paths: Path) -> str:
    """`yes` hides home directories from the agent; `read-only` when it runs from one."""
    in_home = any(path.is_relative_to(root) for path in paths for root in HOME_ROOTS)
    return "read-only" if in_home else "yes"
