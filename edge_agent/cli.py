"""`edge-agent`: the command a field technician runs on a robot or gateway."""

from __future__ import annotations

import typer

from edge_agent import __version__, cli_bench, cli_model, cli_runtime
from edge_agent.cli_install import config_validate, install, uninstall

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
bench_app = cli_bench.app
app.add_typer(config_app, name="config")
app.add_typer(buffer_app, name="buffer")
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")

app.command()(install)
app.command()(uninstall)
config_app.command("validate")(config_validate)
cli_runtime.register(app, buffer_app)

cli_model.register(model_app)


@app.command()
def version() -> None:
    """Print the agent version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    app()
