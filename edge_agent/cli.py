"""`edge-agent`: the command a field technician runs on a robot or gateway."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from edge_agent import __version__, cli_runtime
from edge_agent.cli_install import config_validate, install, uninstall

NOT_BUILT_EXIT = 3
"""Exit status of a command that is planned but not built yet."""

app = typer.Typer(
    name="edge-agent",
    help="Outpost edge agent: detect, buffer and forward, obey commands under a safety supervisor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(
    help="Inspect and validate the agent's configuration.", no_args_is_help=True
)
buffer_app = typer.Typer(
    help="Inspect and export the store-and-forward outbox.", no_args_is_help=True
)
model_app = typer.Typer(help="List, activate and roll back detection models.", no_args_is_help=True)
bench_app = typer.Typer(help="Measure this device.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(buffer_app, name="buffer")
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")

app.command()(install)
app.command()(uninstall)
config_app.command("validate")(config_validate)
cli_runtime.register(app, buffer_app)

_err = Console(stderr=True)
_STUB = {"allow_extra_args": True, "ignore_unknown_options": True}


def not_built(command: str, issue: int) -> NoReturn:
    """Say plainly that a command is not built yet and exit non-zero."""
    _err.print(f"[bold red]edge-agent {command} is not built yet[/] (planned in issue #{issue}).")
    raise typer.Exit(NOT_BUILT_EXIT)


def _stub(group: typer.Typer, prefix: str, name: str, issue: int, help_text: str) -> None:
    def command(ctx: typer.Context) -> None:
        not_built(f"{prefix}{name}", issue)

    command.__doc__ = f"{help_text} (not built yet)."
    group.command(name, context_settings=_STUB)(command)


for _group, _prefix, _name, _issue, _help in (
    (model_app, "model ", "list", 6, "Installed model versions"),
    (model_app, "model ", "activate", 6, "Activate an installed model version"),
    (model_app, "model ", "rollback", 6, "Go back to the previous model version"),
    (bench_app, "bench ", "detect", 6, "Per-stage detection timings and FPS on this device"),
):
    _stub(_group, _prefix, _name, _issue, _help)


@app.command()
def version() -> None:
    """Print the agent version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    app()
