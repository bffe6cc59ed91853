"""Commands that are planned but not built yet: each says so plainly and exits non-zero.

A line leaves `PLANNED` when its command is built in its own package.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

NOT_BUILT_EXIT = 3
_err = Console(stderr=True)
_LENIENT = {"allow_extra_args": True, "ignore_unknown_options": True}

# (group path, command, issue that builds it, help)
PLANNED: tuple[tuple[str, str, int, str], ...] = ()


def not_built(command: str, issue: int) -> NoReturn:
    """Say plainly that a command is not built yet and exit non-zero."""
    _err.print(f"[bold red]outpost {command} is not built yet[/] (planned in issue #{issue}).")
    raise typer.Exit(NOT_BUILT_EXIT)


def register(groups: dict[str, typer.Typer]) -> None:
    """Add every planned command to its group (`""` is the top level)."""
    for path, name, issue, help_text in PLANNED:
        full = f"{path} {name}".strip()

        def command(ctx: typer.Context, _full: str = full, _issue: int = issue) -> None:
            not_built(_full, _issue)

        command.__doc__ = f"{help_text} (not built yet)."
        groups[path].command(name, context_settings=_LENIENT)(command)
