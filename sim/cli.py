"""`outpost sim …`: run simulated robots against a hub, generate datasets."""

from __future__ import annotations

import typer

app = typer.Typer(help="Simulated robots, people and cameras.", no_args_is_help=True)
