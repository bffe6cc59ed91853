"""`outpost hub …` and `outpost model …`: run and administer the hub, manage models."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hub.errors import HubConfigError, HubError
from hub.settings import HubSettings, load_hub_settings

app = typer.Typer(help="Run and administer the hub.", no_args_is_help=True)
user_app = typer.Typer(help="Hub users and roles.", no_args_is_help=True)
token_app = typer.Typer(help="Enrollment tokens for new devices.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")

model_app = typer.Typer(help="Push models and roll them out to the fleet.", no_args_is_help=True)
rollout_app = typer.Typer(help="Canary rollouts: status, promote, roll back.", no_args_is_help=True)
model_app.add_typer(rollout_app, name="rollout")


_err = Console(stderr=True)
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Hub settings file (TOML).")
]


def _settings(config: Path | None) -> HubSettings:
    try:
        return load_hub_settings(config)
    except HubConfigError as exc:
        _err.print(f"[bold red]invalid configuration[/]\n{exc}", highlight=False)
        raise typer.Exit(2) from None


@app.command("serve")
def serve_command(
    config: ConfigOption = None,
    role: Annotated[
        str, typer.Option(help="all (embedded default), api, ingest or worker.")
    ] = "all",
    host: Annotated[str | None, typer.Option(help="API address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="API port (default 8080).")] = None,
) -> None:
    """Run the hub: everything in one process, or one role of a scaled deployment."""
    from hub.runtime import ROLES, serve

    if role not in ROLES:
        _err.print(f"[bold red]--role {role!r} is not one of {', '.join(ROLES)}[/]")
        raise typer.Exit(2)
    settings = _settings(config)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(settings, role))
    except KeyboardInterrupt:
        pass
    except HubError as exc:
        _err.print(f"[bold red]hub stopped:[/] {exc}", highlight=False)
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
