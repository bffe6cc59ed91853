"""`outpost bench NAME [--json]`: run one benchmark and print its ratio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bench import codec
from bench import outbox as outbox_bench
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


@app.command("outbox")
def outbox_command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    seconds: float = typer.Option(0.5, min=0.05, help="Minimum seconds per measured round."),
    rows: int = typer.Option(20_000, min=100, help="Rows per timed burst."),
    rounds: int = typer.Option(3, min=1, help="Rounds per side; the best is kept."),
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where the database files go (default: the temp dir); "
            "the agent's data dir measures its disk.",
        ),
    ] = None,
) -> None:
    """Agent enqueue rate (Outbox.put) against bare SQLite executemany, NORMAL and FULL."""
    result = outbox_bench.run(seconds=seconds, rows=rows, rounds=rounds, directory=directory)
    emit(result, as_json=as_json)


def _default_mqtt_url() -> str:
    """The dev broker's address from `.dev/services.env`, for running benches in a checkout."""
    env = Path(".dev/services.env")
    if env.is_file():
        for line in env.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "OUTPOST_TEST_MQTT_URL":
                return value.strip()
    return "mqtt://127.0.0.1:1883"


@app.command("drain")
def drain_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    mqtt_url: Annotated[
        str | None,
        typer.Option(help="Broker to drain through (default: the dev services' Mosquitto)."),
    ] = None,
    rows: Annotated[int, typer.Option(min=100, help="Backlog rows after the outage.")] = 20_000,
) -> None:
    """Backlog drain after an outage against min(bare SQLite read, bare MQTT publish)."""
    from bench import drain

    emit(drain.run(mqtt_url=mqtt_url or _default_mqtt_url(), rows=rows), as_json=as_json)
