"""`outpost hub init`, `outpost hub user add|passwd|list`, `outpost hub audit verify`.

They work on the hub's database directly (the settings' `[database]`, as `outpost
hub device add` does) and act as `system` in the audit log. Exit status: 0 done,
1 refused (users exist, no such user, chain broken), 2 bad input.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub.audit.chain import SYSTEM
from hub.audit.log import AuditLog, Verdict
from hub.auth.errors import ApiError, InvalidInput
from hub.auth.policy import check_password, check_sites, check_username
from hub.auth.principal import Role
from hub.auth.users import UserService
from hub.cli import ConfigOption, _settings, _with_sessions, app, audit_app, user_app
from hub.errors import HubError
from hub.storage.repositories.users import UserRecord

if TYPE_CHECKING:
    from hub.cli import Sessions

T = TypeVar("T")
_err = Console(stderr=True)

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def _fail(message: str, code: int) -> NoReturn:
    _err.print(f"[bold red]{escape(message)}[/]", highlight=False)
    raise typer.Exit(code)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return check_password(password)
    except InvalidInput as exc:
        _fail(exc.message, 2)


def _checked(check: Callable[[T], T], value: T) -> T:
    try:
        return check(value)
    except InvalidInput as exc:
        _fail(exc.message, 2)


def _run(config: ConfigOption, work: Callable[[Sessions], Awaitable[T]]) -> T:
    """`work` against the hub's database; refusals exit 1, bad input 2."""
    settings = _settings(config)
    try:
        return _with_sessions(settings, work)
    except InvalidInput as exc:
        _fail(exc.message, 2)
    except (ApiError, HubError) as exc:
        _fail(str(exc), 1)


def _users(sessions: Sessions) -> UserService:
    return UserService(sessions, AuditLog(sessions))


@app.command("init")
def init_command(
    config: ConfigOption = None,
    username: Annotated[str, typer.Option(help="The first admin's username.")] = "admin",
    password_stdin: PasswordStdin = False,
) -> None:
    """Create the first admin user (refused once any user exists)."""
    name = _checked(check_username, username)
    password = _password(password_stdin)

    async def work(sessions: Sessions) -> UserRecord:
        return await _users(sessions).init_admin(username=name, password=password)

    user = _run(config, work)
    cfg = f" --config {config}" if config else ""
    typer.echo(
        f"created admin {user.username!r} (user {user.id})\n"
        "next:\n"
        f"  outpost hub serve{cfg}\n"
        f"  curl -s -X POST http://HUB:8080/api/v1/auth/login -d username={user.username} "
        "--data-urlencode password@-   # access + refresh token\n"
        f"  outpost hub user add NAME --role operator --site SITE{cfg}"
    )


@user_app.command("add")
def user_add_command(
    username: Annotated[str, typer.Argument(help="Lowercase letters, digits, . _ @ -")],
    role: Annotated[Role, typer.Option(help="viewer, operator or admin.")],
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="Limit the user to this site (repeatable); none: all."),
    ] = None,
    config: ConfigOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a hub user with a role, optionally limited to sites."""
    name, sites = _checked(check_username, username), _checked(check_sites, site or None)
    password = _password(password_stdin)

    async def work(sessions: Sessions) -> UserRecord:
        return await _users(sessions).create(
            SYSTEM, username=name, password=password, role=role, sites=sites
        )

    user = _run(config, work)
    scope = ", ".join(user.sites) if user.sites is not None else "every site"
    typer.echo(f"added {user.username!r} (user {user.id}): {user.role}, {scope}")


@user_app.command("passwd")
def user_passwd_command(
    username: Annotated[str, typer.Argument(help="Whose password to set.")],
    config: ConfigOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a user's password; their sessions end."""
    name = _checked(check_username, username)
    password = _password(password_stdin)

    async def work(sessions: Sessions) -> UserRecord:
        return await _users(sessions).set_password(SYSTEM, username=name, password=password)

    user = _run(config, work)
    typer.echo(f"password of {user.username!r} changed; their sessions have ended")


@user_app.command("list")
def user_list_command(config: ConfigOption = None) -> None:
    """Users, roles, site scopes and state."""

    async def work(sessions: Sessions) -> list[UserRecord]:
        return await _users(sessions).all()

    table = Table("id", "username", "role", "sites", "state", "created")
    for user in _run(config, work):
        table.add_row(
            str(user.id),
            escape(user.username),
            user.role,
            "all" if user.sites is None else escape(", ".join(user.sites)),
            "disabled" if user.disabled else "active",
            f"{user.created_at:%Y-%m-%d %H:%M}",
        )
    Console().print(table)


def _anchor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    row_id, _, digest = value.partition(":")
    if not row_id.isdigit() or len(digest) != 64:
        _fail("--anchor takes ID:HASH as printed by an earlier `audit verify`", 2)
    return int(row_id), digest.lower()


@audit_app.command("verify")
def audit_verify_command(
    config: ConfigOption = None,
    anchor: Annotated[
        str | None,
        typer.Option(help="ID:HASH of a head recorded earlier; it must still be there."),
    ] = None,
) -> None:
    """Walk the audit log's hash chain; name the first edited, inserted or deleted row."""
    pinned = _anchor(anchor)

    async def work(sessions: Sessions) -> Verdict:
        return await AuditLog(sessions).verify(anchor=pinned)

    verdict = _run(config, work)
    if verdict.problem is not None:
        _fail(f"audit chain broken after {verdict.rows} good rows: {verdict.problem.message}", 1)
    head = f"; head {verdict.head[0]}:{verdict.head[1]}" if verdict.head else ""
    typer.echo(f"{verdict.rows} rows, chain intact{head}")
