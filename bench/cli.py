"""`outpost bench NAME [--json]`: run one benchmark and print its ratio."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from bench import codec
from bench.report import BenchResult

app = typer.Typer(
    help="Benchmarks, each a ratio against a same-machine limit.", no_args_is_help=True
)
_out = Console()


def emit(result: BenchResult, *, as_json: bool) -> None:
    """Print the result as the one-line JSON object or as a table; exit 1 below target."""
    data = result.to_json()
    if as_json:
        typer.echo(json.dumps(data))
    else:
        table = Table(title=f"bench {result.name}", show_header=False)
        table.add_row("ratio", f"{data['ratio']} (target {data['target']})")
        for side in ("numerator", "denominator"):
            measure = data[side]
            table.add_row(side, f"{measure['value']:.1f} {measure['unit']}: {measure['what']}")
        for key, value in result.details.items():
            table.add_row(key, str(value))
        _out.print(table)
    if not result.passed:
        raise typer.Exit(1)


@app.command("codec")
def codec_command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    seconds: float = typer.Option(0.5, min=0.05, help="Minimum seconds per measured round."),
) -> None:
    """orjson against msgpack, whole protocol path (is msgpack worth offering?)."""
    emit(codec.run(seconds=seconds), as_json=as_json)
