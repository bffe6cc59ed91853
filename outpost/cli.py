"""`outpost`: one command for the hub, the simulator, training and benchmarks."""

from __future__ import annotations

import typer

import bench.cli
import hub.cli
import sim.cli
import training.capture
import training.cli
import training.drift_report
from outpost import __version__, demo, stubs

app = typer.Typer(
    name="outpost",
    help="Outpost: edge-first fleet platform for robots and industrial gateways.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

GROUPS: dict[str, typer.Typer] = {
    "": app,
    "hub": hub.cli.app,
    "hub user": hub.cli.user_app,
    "hub audit": hub.cli.audit_app,
    "model": hub.cli.model_app,
    "model rollout": hub.cli.rollout_app,
    "sim": sim.cli.app,
    "dataset": training.cli.dataset_app,
    "drift": training.drift_report.drift_app,
    "capture": training.capture.capture_app,
    "bench": bench.cli.app,
}

for _path in ("hub", "model", "sim", "dataset", "drift", "capture", "bench"):
    app.add_typer(GROUPS[_path], name=_path)
app.command("train")(training.cli.train)
hub.cli.model_app.command("evaluate")(training.cli.evaluate_model)
app.command("demo")(demo.demo)
stubs.register(GROUPS)


@app.command()
def version() -> None:
    """Print the Outpost version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    app()
