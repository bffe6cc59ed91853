"""`edge-agent uninstall`: stop and remove the service, configuration, identity and data.

The reverse of `edge-agent install`, as a plan of steps so `--dry-run` shows it.
`--keep-data` keeps the data directory (the outbox with anything not yet sent)
but still removes the device key: the device must be enrolled again to come back.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> plan = plan_uninstall(UninstallOptions(config_path=root / "agent.toml",
    ...     systemd=Systemd(unit_dir=root / "units")))
    >>> plan.steps, plan.intro[0].startswith("nothing to uninstall")
    ([], True)
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import load_settings
from edge_agent.errors import AgentError, ConfigError
from edge_agent.identity import public_key_path
from edge_agent.install import key_path_in
from edge_agent.steps import Action, Plan
from edge_agent.systemd import SERVICE_NAME, Systemd


class UninstallError(AgentError):
    """The uninstall cannot proceed safely; the message says what to do instead."""


@dataclass(frozen=True)
class UninstallOptions:
    """What to remove; `systemd=None` leaves the service alone."""

    config_path: Path
    systemd: Systemd | None = None
    keep_data: bool = False


def plan_uninstall(options: UninstallOptions) -> Plan:
    """Check what is installed and build the steps that remove it; changes nothing."""
    plan = Plan()
    if options.systemd is not None:
        _plan_service_removal(plan, options.systemd)
    config_path = options.config_path.absolute()
    if config_path.exists():
        data_dir = _installed_data_dir(config_path)
        plan.add(f"remove config {config_path}", _remove_file(config_path))
        _plan_identity_removal(plan, data_dir, keep_data=options.keep_data)
    if not plan.steps:
        plan.intro.append(f"nothing to uninstall: no config at {config_path} and no service unit")
    return plan


def _installed_data_dir(config_path: Path) -> Path:
    try:
        return load_settings(config_path).device.data_dir
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}\ncannot tell from the configuration what to remove: fix it, or remove the "
            "files by hand (see docs/field-technician.md, Uninstall)"
        ) from None


def _plan_service_removal(plan: Plan, systemd: Systemd) -> None:
    unit = systemd.unit_path
    if not unit.exists():
        return
    running = systemd.running()
    if running:
        _add_systemctl(plan, systemd, "disable", "--now", SERVICE_NAME)
    plan.add(f"remove systemd unit {unit}", _remove_file(unit))
    if running:
        _add_systemctl(plan, systemd, "daemon-reload")


def _plan_identity_removal(plan: Plan, data_dir: Path, *, keep_data: bool) -> None:
    key = key_path_in(data_dir)
    for path in (key, public_key_path(key)):
        if path.exists():
            plan.add(f"remove {path}", _remove_file(path))
    if keep_data or not data_dir.exists():
        return
    _check_removable(data_dir)
    plan.add(f"remove data directory {data_dir} and everything in it", _remove_tree(data_dir))


def _check_removable(path: Path) -> None:
    """Refuse to delete a directory that looks like a system or home directory."""
    if len(path.parts) < 3 or path in (Path.home(), Path.home().parent):
        raise UninstallError(
            f"refusing to remove {path}: it looks like a system or home directory; "
            "remove the Outpost files in it by hand, or pass --keep-data"
        )


def _add_systemctl(plan: Plan, systemd: Systemd, *args: str) -> None:
    def action() -> None:
        systemd.run(*args)

    plan.add(f"run `{' '.join(systemd.command(*args))}`", action)


def _remove_file(path: Path) -> Action:
    def action() -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    return action


def _remove_tree(path: Path) -> Action:
    def action() -> None:
        shutil.rmtree(path, ignore_errors=False)

    return action
