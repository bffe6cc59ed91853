"""`outpost hub …` and `outpost model …`: run and administer the hub, manage models."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from hub.errors import HubConfigError, HubError
from hub.settings import HubSettings, load_hub_settings
from protocol.logs import LOG_FORMAT_ENV, LogFormatError, configure_logging, resolve_log_format

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    Sessions = async_sessionmaker[AsyncSession]

T = TypeVar("T")

app = typer.Typer(help="Run and administer the hub.", no_args_is_help=True)
user_app = typer.Typer(help="Hub users and roles.", no_args_is_help=True)
token_app = typer.Typer(help="Enrollment tokens for new devices.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
device_app = typer.Typer(
    help="Device MQTT credentials for the embedded broker.", no_args_is_help=True
)
app.add_typer(user_app, name="user")
app.add_typer(device_app, name="device")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")

model_app = typer.Typer(help="Push models and roll them out to the fleet.", no_args_is_help=True)
rollout_app = typer.Typer(help="Canary rollouts: status, promote, roll back.", no_args_is_help=True)
model_app.add_typer(rollout_app, name="rollout")


_err = Console(stderr=True)
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Hub settings file (TOML).")
]
LogFormatOption = Annotated[
    str | None,
    typer.Option(help=f"Log lines as text or json (default: ${LOG_FORMAT_ENV}, else text)."),
]


def _settings(config: Path | None) -> HubSettings:
    try:
        return load_hub_settings(config)
    except HubConfigError as exc:
        _err.print(f"[bold red]invalid configuration[/]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


@app.command("serve")
def serve_command(
    config: ConfigOption = None,
    role: Annotated[
        str, typer.Option(help="all (embedded default), api, ingest or worker.")
    ] = "all",
    host: Annotated[str | None, typer.Option(help="API address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="API port (default 8080).")] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run the hub: everything in one process, or one role of a scaled deployment."""
    from hub.runtime import ROLES, serve

    if role not in ROLES:
        _err.print(f"[bold red]--role {role!r} is not one of {', '.join(ROLES)}[/]")
        raise typer.Exit(2)
    try:
        fmt = resolve_log_format(log_format)
    except LogFormatError as exc:
        _err.print(f"[bold red]{escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from None
    settings = _settings(config)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    configure_logging(logging.INFO, fmt, role=f"hub-{role}")
    try:
        asyncio.run(serve(settings, role))
    except KeyboardInterrupt:
        pass
    except HubConfigError as exc:
        _err.print(f"[bold red]invalid configuration:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except HubError as exc:
        _err.print(f"[bold red]hub stopped:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


@app.command("migrate")
def migrate_command(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema (run once per upgrade in a scaled deployment)."""
    from hub.storage.db import create_engine
    from hub.storage.migrate import migrate

    settings = _settings(config)

    async def run() -> None:
        engine = create_engine(settings.database.url, schema=settings.database.schema_name or None)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo(f"database at {settings.database.url.split('@')[-1]} is up to date")


DeviceArg = Annotated[str, typer.Argument(help="Device id, e.g. amr-7.")]


def _with_sessions(settings: HubSettings, work: Callable[[Sessions], Awaitable[T]]) -> T:
    """Run `work` against the hub's (migrated) database."""
    from hub.storage.db import create_engine, session_factory
    from hub.storage.migrate import migrate

    async def run() -> T:
        engine = create_engine(settings.database.url, schema=settings.database.schema_name or None)
        try:
            await migrate(engine)
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


@device_app.command("add")
def device_add_command(device: DeviceArg, config: ConfigOption = None) -> None:
    """Issue (or re-issue) a device's MQTT password and print the agent's [mqtt] section.

    The password is shown once; only its hash is kept. Re-issuing replaces it.
    """
    from hub.broker.embedded import device_url
    from hub.storage.db import transaction
    from hub.storage.repositories import issue_credentials, new_password
    from protocol import is_device_id

    settings = _settings(config)
    if not is_device_id(device):
        _err.print(
            f"[bold red]{escape(repr(device))} is not a device id[/] "
            + escape("(lowercase letters, digits and '-', at most 63, e.g. amr-7)")
        )
        raise typer.Exit(2)
    if device == settings.broker.username:
        _err.print(f"[bold red]{device!r} is the hub's own broker login; pick another id[/]")
        raise typer.Exit(2)
    password = new_password()

    async def work(sessions: Sessions) -> None:
        async with transaction(sessions) as session:
            await issue_credentials(session, device=device, password=password)

    _with_sessions(settings, work)
    typer.echo(
        f"# [mqtt] section for {device}'s agent config (the password is shown only now)\n"
        f"[mqtt]\n"
        f'url = "{device_url(settings.broker.url)}"\n'
        f'username = "{device}"\n'
        f'password = "{password}"\n'
        'protocol = "3.1.1"'
    )


@device_app.command("revoke")
def device_revoke_command(device: DeviceArg, config: ConfigOption = None) -> None:
    """Refuse a device's logins from now on (within a minute for a connected device)."""
    from hub.storage.db import transaction
    from hub.storage.repositories import revoke_credentials

    async def work(sessions: Sessions) -> bool:
        async with transaction(sessions) as session:
            return await revoke_credentials(session, device=device)

    if not _with_sessions(_settings(config), work):
        _err.print(f"[bold red]{device!r} has no credentials[/]")
        raise typer.Exit(1)
    typer.echo(f"revoked {device}")


@device_app.command("list")
def device_list_command(config: ConfigOption = None) -> None:
    """Devices with credentials, when they were issued, and whether they are revoked."""
    from rich.table import Table

    from hub.storage.db import transaction
    from hub.storage.repositories import CredentialView, list_credentials

    async def work(sessions: Sessions) -> list[CredentialView]:
        async with transaction(sessions) as session:
            return await list_credentials(session)

    table = Table("device", "issued", "state")
    for view in _with_sessions(_settings(config), work):
        state = f"revoked {view.revoked_at:%Y-%m-%d %H:%M}" if view.revoked_at else "active"
        table.add_row(view.device, f"{view.created_at:%Y-%m-%d %H:%M}", state)
    Console().print(table)


# Registers `hub init`, `hub user …`, `hub audit verify`, `hub site …`, `hub token create`,
# and `model push`, `model rollout …`.
from hub import cli_assets as _cli_assets  # noqa: E402, F401
from hub import cli_models as _cli_models  # noqa: E402, F401
from hub import cli_users as _cli_users  # noqa: E402, F401
