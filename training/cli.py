"""`outpost train`, `outpost dataset …`, `outpost drift …`, `outpost capture …`."""

from __future__ import annotations

import typer

dataset_app = typer.Typer(help="Check and convert datasets.", no_args_is_help=True)
drift_app = typer.Typer(help="Drift of live data against a model's baseline.", no_args_is_help=True)
capture_app = typer.Typer(help="Frames captured by agents for retraining.", no_args_is_help=True)
