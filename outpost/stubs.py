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
PLANNED: tuple[tuple[str, str, int, str], ...] = (
    ("model", "push", 7, "Upload a signed ONNX model with its card"),
    ("model rollout", "status", 7, "Show a rollout's canary progress"),
    ("model rollout", "promote", 7, "Promote a canary rollout to its whole target"),
    ("model rollout", "rollback", 7, "Roll a rollout back"),
    ("sim", "run", 8, "Run simulated robots with real agents against a hub"),
    ("sim", "dataset", 8, "Write a YOLO dataset rendered by the simulator"),
    ("", "train", 9, "Train, evaluate and export a signed ONNX detector"),
    ("dataset", "check", 9, "Report label errors in a dataset"),
    ("drift", "report", 9, "Drift of devices against their model's baseline"),
    ("capture", "pull", 9, "Fetch frames captured by agents into a dataset"),
    ("bench", "ws", 7, "WebSocket fan-out against websockets.broadcast"),
    ("bench", "gateway", 12, "Gateway-mode inference rate against raw session.run"),
    ("", "demo", 10, "Embedded hub, simulated fleet and dashboard on this machine"),
)


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
