"""CLI commands that set a device up: `install`, `uninstall`, `config validate`.

Each prints one ✓ or ✗ line per step. Every `AgentError` is one red message and
exit status 1; a `ConfigError` exits with 2.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from edge_agent.config import default_config_path, load_settings
from edge_agent.errors import AgentError, ConfigError
from edge_agent.install import InstallOptions, plan_install
from edge_agent.steps import Plan, StepResult, run_plan
from edge_agent.systemd import Systemd
from edge_agent.uninstall import UninstallOptions, plan_uninstall

TOKEN_ENV = "OUTPOST_ENROLL_TOKEN"  # noqa: S105 - a variable name, not a secret
"""The token may come from this variable instead of `--token` (keeps it out of shell history)."""

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Agent config file (default: /etc/outpost/agent.toml as root)."
    ),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")
]
UnitDirOption = Annotated[
    Path | None,
    typer.Option("--unit-dir", hidden=True, help="systemd unit directory (tests)."),
]


def _out() -> Console:
    return Console(soft_wrap=True, highlight=False)


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


@contextmanager
def plain_errors() -> Iterator[None]:
    """Turn our errors into one red message: exit 2 for a bad config, 1 for anything else."""
    try:
        yield
    except ConfigError as exc:
        _err().print(Text(str(exc), style="red"))
        raise typer.Exit(2) from None
    except AgentError as exc:
        _err().print(Text(str(exc), style="bold red"))
        raise typer.Exit(1) from None


def install(
    hub: Annotated[str, typer.Option("--hub", help="The hub's address, e.g. https://hub:8443.")],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar=TOKEN_ENV,
            help="Single-use enrollment token from `outpost hub token create`.",
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="Name shown in the dashboard (default: host name).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Key, outbox and models (default: /var/lib/outpost as root)."),
    ] = None,
    config: ConfigOption = None,
    service: Annotated[
        bool, typer.Option("--service/--no-service", help="Install and start the systemd unit.")
    ] = True,
    force: Annotated[
        bool,
        typer.Option("--force", help="Enroll again even if already installed (needs a new token)."),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the hub.")] = 10.0,
    dry_run: DryRunOption = False,
    unit_dir: UnitDirOption = None,
) -> None:
    """Create the device identity, enroll at the hub, write the config, install the service."""
    options = InstallOptions(
        hub_url=hub,
        token=token,
        name=name or socket.gethostname(),
        config_path=config or default_config_path(),
        data_dir=data_dir,
        systemd=Systemd.from_env(unit_dir) if service else None,
        force=force,
        timeout=timeout,
    )
    with plain_errors():
        plan = plan_install(options)
        _execute(plan, "install", dry_run=dry_run)
    if not dry_run and not plan.already_installed:
        _out().print(
            Text(f"Installed as {plan.device_id}. Check it with `edge-agent status`.", "bold")
        )


def uninstall(
    config: ConfigOption = None,
    keep_data: Annotated[
        bool, typer.Option("--keep-data", help="Keep the data directory (outbox, models).")
    ] = False,
    dry_run: DryRunOption = False,
    unit_dir: UnitDirOption = None,
) -> None:
    """Stop and remove the service, the config and the device key (and data, unless kept)."""
    options = UninstallOptions(
        config_path=config or default_config_path(),
        systemd=Systemd.from_env(unit_dir),
        keep_data=keep_data,
    )
    with plain_errors():
        plan = plan_uninstall(options)
        _execute(plan, "uninstall", dry_run=dry_run)


def config_validate(config: ConfigOption = None) -> None:
    """Validate the configuration file (and `OUTPOST_AGENT_*` overrides)."""
    path = config or default_config_path()
    with plain_errors():
        settings = load_settings(path)
    _out().print(f"OK: {path} (device {settings.device.id}, broker {settings.mqtt.url})")


def _execute(plan: Plan, command: str, *, dry_run: bool) -> None:
    """Print the plan (dry run) or run it with a ✓/✗ line per step."""
    out = _out()
    for note in plan.intro:
        out.print(_note(note))
    if dry_run:
        _print_dry_run(plan, command)
    else:
        run_plan(plan, _report)
    for note in plan.outro:
        out.print(_note(note))


def _print_dry_run(plan: Plan, command: str) -> None:
    out = _out()
    if not plan.steps:
        out.print(f"Dry run: `edge-agent {command}` has nothing to do.")
        return
    out.print(f"Dry run: nothing was changed. `edge-agent {command}` would:")
    for number, step in enumerate(plan.steps, start=1):
        out.print(f"  {number}. {step.description}")


def _report(result: StepResult) -> None:
    mark = Text("✓ ", style="bold green") if result.ok else Text("✗ ", style="bold red")
    line = mark + Text(result.step.description)
    if result.ok and result.detail:
        line += Text(f" — {result.detail}", style="dim")
    _out().print(line)


def _note(note: str) -> Text:
    return Text(note, style="yellow" if note.startswith("warning") else "")
