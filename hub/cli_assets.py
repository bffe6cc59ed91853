"""`outpost hub site add|list|layout` and `outpost hub token create`.

Like `outpost hub user …`, they work on the hub's database directly and act as
`system` in the audit log. Exit status: 0 done, 1 refused, 2 bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub.api.schemas.assets import SiteLayout
from hub.assets.enrollment import EnrollmentTokens, NewToken
from hub.assets.rules import check_name, check_site_id, parse_ttl
from hub.assets.service import AssetService
from hub.audit.chain import SYSTEM
from hub.audit.log import AuditLog
from hub.auth.errors import InvalidInput
from hub.auth.principal import Principal, Role
from hub.cli import ConfigOption, _settings, app, token_app
from hub.cli_users import _checked, _fail, _run
from hub.settings import HubSettings
from hub.storage.repositories.assets import SiteRecord
from protocol.settings import describe_settings_error

if TYPE_CHECKING:
    from hub.cli import Sessions

site_app = typer.Typer(help="Sites that devices belong to.", no_args_is_help=True)
app.add_typer(site_app, name="site")

LAYOUT_DOCS = "docs/platform-engineer.md"

# The CLI runs on the hub's host with its database: it may see and change everything.
_SYSTEM = Principal(user_id=0, username=SYSTEM.name, role=Role.ADMIN, sites=None, via="jwt")


def hub_url(settings: HubSettings) -> str:
    """The API address to print for devices: the listen address, or a placeholder.

    Example:
        >>> hub_url(HubSettings(host="0.0.0.0", port=8080))
        'http://HUB-ADDRESS:8080'
    """
    host = "HUB-ADDRESS" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


@site_app.command("add")
def site_add_command(
    site_id: Annotated[
        str, typer.Argument(help="Lowercase letters, digits and '-', e.g. plant-a.")
    ],
    name: Annotated[str | None, typer.Option(help="Display name (default: the id).")] = None,
    config: ConfigOption = None,
) -> None:
    """Add a site."""
    checked_id = _checked(check_site_id, site_id)
    display = _checked(check_name, name or site_id)

    async def work(sessions: Sessions) -> SiteRecord:
        service = AssetService(sessions, AuditLog(sessions))
        return await service.create_site(_SYSTEM, site_id=checked_id, name=display)

    site = _run(config, work)
    typer.echo(f"added site {site.id} ({site.name})")


@site_app.command("list")
def site_list_command(config: ConfigOption = None) -> None:
    """Every site."""

    async def work(sessions: Sessions) -> list[SiteRecord]:
        return await AssetService(sessions, AuditLog(sessions)).sites(_SYSTEM)

    table = Table("id", "name", "created")
    for site in _run(config, work):
        table.add_row(site.id, escape(site.name), f"{site.created_at:%Y-%m-%d %H:%M}")
    Console().print(table)


@site_app.command("layout")
def site_layout_command(
    site_id: Annotated[str, typer.Argument(help="The site, e.g. plant-a.")],
    file: Annotated[
        Path, typer.Argument(help="Its floor plan as JSON: width_m, height_m, zones, spots.")
    ],
    config: ConfigOption = None,
) -> None:
    """Set a site's floor plan (zones, shelves, docks), drawn on the dashboard's map."""
    layout = read_layout(file)

    async def work(sessions: Sessions) -> SiteRecord:
        return await AssetService(sessions, AuditLog(sessions)).set_site_layout(
            _SYSTEM, site_id, layout
        )

    site = _run(config, work)
    typer.echo(
        f"site {site.id}: layout {layout.width_m:g} x {layout.height_m:g} m, "
        f"{len(layout.zones)} zone(s), {len(layout.spots)} spot(s)"
    )


def read_layout(file: Path) -> SiteLayout:
    """The layout in `file`; a bad file exits 2 with one line per problem, naming the file."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"{file}: cannot read it: {exc.strerror or exc}", 2)
    except ValueError as exc:  # not UTF-8, or not JSON
        _fail(f"{file}: not JSON: {exc}", 2)
    try:
        return SiteLayout.model_validate(data)
    except ValidationError as exc:
        _fail(describe_settings_error(exc, str(file), docs=LAYOUT_DOCS), 2)


@token_app.command("create")
def token_create_command(
    site: Annotated[str, typer.Option(help="The site the new device joins.")],
    group: Annotated[str | None, typer.Option(help="A group of that site, by name.")] = None,
    ttl: Annotated[str, typer.Option(help="Lifetime: 30m, 1h (default), 2d; at most 7d.")] = "1h",
    name_prefix: Annotated[
        str | None, typer.Option(help="Device ids start with this (amr + name 7 → amr-7).")
    ] = None,
    hub: Annotated[
        str | None, typer.Option("--hub", help="The hub URL devices use (for the printed line).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a single-use enrollment token and print it (only now) with the install line."""
    try:
        ttl_s = parse_ttl(ttl)
    except InvalidInput as exc:
        _fail(exc.message, 2)

    async def work(sessions: Sessions) -> NewToken:
        tokens = EnrollmentTokens(sessions, AuditLog(sessions))
        return await tokens.create(
            SYSTEM, None, site_id=site, group=group, ttl_s=ttl_s, name_prefix=name_prefix
        )

    new = _run(config, work)
    url = (hub or hub_url(_settings(config))).rstrip("/")
    typer.echo(
        f"enrollment token for site {new.record.site_id} "
        f"(single use, expires {new.record.expires_at:%Y-%m-%d %H:%M} UTC; shown only now):\n"
        f"{new.token}\n"
        "on the device, run:\n"
        f"  edge-agent install --hub {url} --token {new.token}"
    )
