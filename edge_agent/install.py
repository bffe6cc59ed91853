"""`edge-agent install`: identity, enrollment, configuration and service in one command.

`plan_install` checks everything it can without changing anything (hub URL,
write access, an existing installation, the unit's paths) and returns the steps;
`run_plan` executes them. Re-running on an installed device enrolls nothing
again (the token is not consumed) and only makes sure the service is in place;
pointing an installed device at another hub needs `--force`.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> plan = plan_install(InstallOptions(hub_url="http://hub:8080", token="t", name="amr-7",
    ...     config_path=root / "agent.toml", data_dir=root / "data", systemd=None))
    >>> [step.description.split()[0] for step in plan.steps]
    ['create', 'create', 'enroll', 'write']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent import __version__
from edge_agent.config import (
    AgentSettings,
    DeviceSection,
    default_data_dir,
    load_settings,
    settings_from_dict,
)
from edge_agent.enroll import cleartext_warning, enroll, normalize_hub_url
from edge_agent.errors import AgentError, ConfigError
from edge_agent.files import PRIVATE_DIR_MODE, ensure_private_dir, write_atomic
from edge_agent.identity import (
    load_key,
    load_or_create_key,
    public_key_path,
    public_text,
    record_public_key,
    recorded_public_key,
)
from edge_agent.steps import Action, Plan
from edge_agent.systemd import SERVICE_NAME, Systemd, agent_executable, render_unit
from protocol.enrollment import EnrollResponse

UNIT_MODE = 0o644
_T = TypeVar("_T")
_PLACEHOLDER_KEY = "A" * 43


class InstallError(AgentError):
    """The installation cannot proceed; the message says what to do instead."""


@dataclass(frozen=True)
class InstallOptions:
    """What the technician asked for. `data_dir=None`: the default, or the installed one."""

    hub_url: str
    token: str
    name: str
    config_path: Path
    data_dir: Path | None = None
    systemd: Systemd | None = None
    force: bool = False
    timeout: float = 10.0
    transport: httpx.BaseTransport | None = None


@dataclass
class InstallPlan(Plan):
    """The install steps, and what they learn as they run."""

    device_id: str | None = None
    already_installed: bool = False
    key: Ed25519PrivateKey | None = field(default=None, repr=False)
    enrolled: EnrollResponse | None = field(default=None, repr=False)


def plan_install(options: InstallOptions) -> InstallPlan:
    """Check the host and build the steps; changes nothing."""
    hub = normalize_hub_url(options.hub_url)
    existing = _existing_install(options, hub)
    config_path = options.config_path.absolute()
    plan = InstallPlan()
    warning = cleartext_warning(hub)
    if warning:
        plan.intro.append(warning)
    if existing is None:
        data_dir = (
            options.data_dir or _installed_data_dir(options) or default_data_dir()
        ).absolute()
        _preflight(config_path, data_dir)
        _plan_enrollment(plan, options, hub, data_dir)
    else:
        data_dir = existing.device.data_dir
        plan.device_id = existing.device.id
        plan.already_installed = True
        plan.intro.append(
            f"already installed as {existing.device.id} (hub {hub}, config {config_path}); "
            "not enrolling again"
        )
    if options.systemd is not None:
        _plan_service(plan, options.systemd, config_path, data_dir)
    return plan


def key_path_in(data_dir: Path) -> Path:
    """Where the device key lives in `data_dir` (as the agent's settings say)."""
    return DeviceSection(id="pending", data_dir=data_dir).key_path


# --- an existing installation ------------------------------------------------------------


def _existing_install(options: InstallOptions, hub: str) -> AgentSettings | None:
    """The installed settings when this device is already enrolled at `hub`, else None."""
    if options.force or not options.config_path.exists():
        return None
    try:
        settings = load_settings(options.config_path)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}\nthe existing configuration is not valid: fix it, or pass --force to "
            "enroll again and overwrite it (needs a new token)"
        ) from None
    problem = _mismatch(settings, options, hub)
    if problem is None:
        return settings
    raise InstallError(
        f"{problem}; run `edge-agent uninstall` first, or pass --force to enroll again"
    )


def _installed_data_dir(options: InstallOptions) -> Path | None:
    """The data directory of a (forced-over) earlier install, so its outbox is kept."""
    try:
        return load_settings(options.config_path).device.data_dir
    except ConfigError:
        return None


def _mismatch(settings: AgentSettings, options: InstallOptions, hub: str) -> str | None:
    """Why the installation on disk is not the one asked for, or None if it is."""
    device = settings.device
    where = f"already installed as {device.id} ({options.config_path})"
    if settings.hub.url.rstrip("/") != hub:
        return f"{where} for the hub {settings.hub.url or '(none)'}, not {hub}"
    if options.data_dir is not None and options.data_dir.absolute() != device.data_dir:
        return f"{where} with data directory {device.data_dir}, not {options.data_dir}"
    return _key_mismatch(settings)


def _key_mismatch(settings: AgentSettings) -> str | None:
    """Why the device key on disk is not the enrolled one, or None if it is."""
    key_path = settings.device.key_path
    enrolled = recorded_public_key(key_path)
    if not key_path.exists():
        return f"the device key {key_path} is missing"
    if enrolled is None:
        return f"{public_key_path(key_path)} is missing: cannot tell that {key_path} is enrolled"
    if enrolled != public_text(load_key(key_path)):
        return f"the device key {key_path} is not the key enrolled as {settings.device.id}"
    return None


# --- checks before anything changes ------------------------------------------------------


def _preflight(config_path: Path, data_dir: Path) -> None:
    """Fail before enrolling (the token is single-use) when a later step cannot succeed."""
    for path in (config_path.parent, data_dir):
        _check_writable(path)
    sample = _config_document(
        device_id="preflight",
        name="preflight",
        data_dir=data_dir,
        hub_url="http://hub",
        hub_key=_PLACEHOLDER_KEY,
        mqtt={"url": "mqtt://broker:1883", "username": "u", "password": "p", "protocol": "5"},
    )
    settings_from_dict(sample, source=f"{config_path} (as it would be written)")


def _check_writable(path: Path) -> None:
    """`InstallError` unless `path`, or the closest existing parent, is writable by us."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InstallError(
            f"cannot write {path} (no write access to {existing}); run the install as root: "
            "`sudo edge-agent install ...`"
        )


# --- enrollment steps --------------------------------------------------------------------


def _plan_enrollment(plan: InstallPlan, options: InstallOptions, hub: str, data_dir: Path) -> None:
    config_path = options.config_path.absolute()
    key_path = key_path_in(data_dir)
    verb = "secure" if data_dir.exists() else "create"
    plan.add(f"{verb} data directory {data_dir} (mode 0700)", lambda: _make_dir(data_dir))
    if not config_path.parent.exists():
        plan.add(
            f"create config directory {config_path.parent} (mode 0700)",
            lambda: _make_dir(config_path.parent),
        )
    if key_path.exists():
        key_words = f"use the existing device key {key_path}"
    else:
        key_words = f"create device key {key_path} (Ed25519, mode 0600)"
    plan.add(key_words, lambda: _key_step(plan, key_path))
    plan.add(
        f"enroll at {hub} as {options.name!r} (uses the single-use token)",
        lambda: _enroll_step(plan, options, hub, key_path),
    )
    plan.add(
        f"write config {config_path} (mode 0600: it holds the MQTT password)",
        lambda: _config_step(plan, options.name, hub, config_path, data_dir),
    )


def _make_dir(path: Path) -> str | None:
    return (
        None if ensure_private_dir(path) else f"already there; mode set to {PRIVATE_DIR_MODE:04o}"
    )


def _key_step(plan: InstallPlan, key_path: Path) -> str:
    plan.key, created = load_or_create_key(key_path)
    return f"{'new' if created else 'existing'} public key {public_text(plan.key)}"


def _enroll_step(plan: InstallPlan, options: InstallOptions, hub: str, key_path: Path) -> str:
    key = _required(plan.key, "the device key")
    plan.enrolled = enroll(
        hub,
        options.token,
        name=options.name,
        public_key=public_text(key),
        timeout=options.timeout,
        transport=options.transport,
    )
    record_public_key(key_path, key)
    plan.device_id = plan.enrolled.device_id
    return f"enrolled as {plan.device_id}"


def _config_step(plan: InstallPlan, name: str, hub: str, config_path: Path, data_dir: Path) -> str:
    answer = _required(plan.enrolled, "the enrollment answer")
    document = _config_document(
        device_id=answer.device_id,
        name=name,
        data_dir=data_dir,
        hub_url=hub,
        hub_key=answer.hub_public_key,
        mqtt=answer.mqtt.model_dump(),
    )
    settings_from_dict(document, source=str(config_path))
    header = (
        f"# Written by `edge-agent install` ({__version__}) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.\n"
        "# Holds this device's MQTT password: keep it mode 0600.\n"
        "# Every key is described in docs/field-technician.md.\n\n"
    )
    write_atomic(config_path, (header + tomli_w.dumps(document)).encode("utf-8"))
    return f"broker {answer.mqtt.url} as {answer.mqtt.username}"


def _config_document(
    *,
    device_id: str,
    name: str,
    data_dir: Path,
    hub_url: str,
    hub_key: str,
    mqtt: dict[str, Any],
) -> dict[str, Any]:
    """The config file's content: what enrollment decided; everything else keeps its default."""
    return {
        "device": {"id": device_id, "name": name, "data_dir": str(data_dir)},
        "hub": {"url": hub_url, "public_key": hub_key},
        "mqtt": {key: mqtt[key] for key in ("url", "username", "password", "protocol")},
    }


def _required(value: _T | None, what: str) -> _T:
    if value is None:
        raise InstallError(f"internal error: {what} is not known yet")
    return value


# --- service steps -----------------------------------------------------------------------


def _plan_service(plan: InstallPlan, systemd: Systemd, config_path: Path, data_dir: Path) -> None:
    unit = render_unit(executable=agent_executable(), config=config_path, data_dir=data_dir)
    _check_writable(systemd.unit_dir)
    plan.add(f"write systemd unit {systemd.unit_path}", lambda: _write_unit(systemd, unit))
    if not systemd.running():
        plan.outro.append(
            f"systemd is not running here: unit written to {systemd.unit_path}; "
            f"start the agent with `edge-agent run --config {config_path}`"
        )
        return
    for args in (("daemon-reload",), ("enable", "--now", SERVICE_NAME)):
        plan.add(f"run `{' '.join(systemd.command(*args))}`", _systemctl(systemd, args))


def _write_unit(systemd: Systemd, unit: str) -> str | None:
    path = systemd.unit_path
    if path.is_file() and path.read_text(encoding="utf-8") == unit:
        return "unchanged"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, unit.encode("utf-8"), mode=UNIT_MODE)
    return None


def _systemctl(systemd: Systemd, args: tuple[str, ...]) -> Action:
    def action() -> None:
        systemd.run(*args)

    return action
