"""`outpost bench NAME [--json]`: run one benchmark and print its ratio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, TypedDict

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
_err = Console(stderr=True)


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


def _dev_service(key: str, default: str) -> str:
    """`key` from `.dev/services.env` (the dev services' addresses), for benches in a checkout."""
    env = Path(".dev/services.env")
    if env.is_file():
        for line in env.read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition("=")
            if name.strip() == key:
                return value.strip()
    return default


def _default_mqtt_url() -> str:
    return _dev_service("OUTPOST_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def _default_kafka() -> str:
    return _dev_service("OUTPOST_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def _default_pg_dsn() -> str:
    return _dev_service("OUTPOST_TEST_PG_DSN", "postgresql://outpost@127.0.0.1:5432/outpost")


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


class _Services(TypedDict):
    mqtt_url: str
    kafka_bootstrap: str
    pg_dsn: str


def _services(mqtt_url: str | None, kafka: str | None, pg_dsn: str | None) -> _Services:
    """The broker, Kafka and PostgreSQL to measure on: as given, else the dev services'."""
    return {
        "mqtt_url": mqtt_url or _default_mqtt_url(),
        "kafka_bootstrap": kafka or _default_kafka(),
        "pg_dsn": pg_dsn or _default_pg_dsn(),
    }


MqttUrl = Annotated[str | None, typer.Option(help="Broker (default: the dev services' Mosquitto).")]
Kafka = Annotated[
    str | None, typer.Option(help="Kafka bootstrap host:port (default: the dev services').")
]
PgDsn = Annotated[
    str | None, typer.Option(help="postgresql://USER@HOST:PORT/DB (default: the dev services').")
]


@app.command("ingest")
def ingest_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    mqtt_url: MqttUrl = None,
    kafka: Kafka = None,
    pg_dsn: PgDsn = None,
    agents: Annotated[int, typer.Option(min=1, max=64, help="Agent processes.")] = 4,
    points: Annotated[
        int, typer.Option(min=1000, help="Telemetry points in all, over all agents.")
    ] = 200_000,
    per_message: Annotated[
        int, typer.Option(min=1, max=5000, help="Points per telemetry envelope.")
    ] = 100,
) -> None:
    """End-to-end telemetry points/s, agents to PostgreSQL, against the slowest bare stage."""
    from bench import ingest

    try:
        result = ingest.run(
            **_services(mqtt_url, kafka, pg_dsn),
            agents=agents,
            points=points,
            per_message=per_message,
            show_progress=not as_json,
        )
    except ingest.IngestBenchError as exc:
        _err.print(f"[bold red]bench ingest failed:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    emit(result, as_json=as_json)


@app.command("estop")
def estop_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    mqtt_url: Annotated[
        str | None,
        typer.Option(help="Broker for the hub link and the robot (default: the dev Mosquitto)."),
    ] = None,
    trials: Annotated[int, typer.Option(min=5, help="Stops to time.")] = 50,
    round_trips: Annotated[int, typer.Option(min=10, help="Bare round trips to time.")] = 200,
    robot: Annotated[
        str, typer.Option(help="`ros`: a ROS 2 node hears the zero Twist; `mqtt`: an MQTT robot.")
    ] = "ros",
) -> None:
    """p99 signed estop → zero velocity at the robot, under load, against a bare round trip."""
    from bench import estop

    if robot not in ("ros", "mqtt"):
        _err.print(f"[bold red]--robot must be ros or mqtt[/], not {robot!r}", highlight=False)
        raise typer.Exit(2)

    def say(step: str) -> None:
        if not as_json:
            _out.print(f"[dim]{step}[/]")

    try:
        result = estop.run(
            mqtt_url=mqtt_url or _default_mqtt_url(),
            robot="ros" if robot == "ros" else "mqtt",
            trials=trials,
            round_trips=round_trips,
            progress=say,
        )
    except estop.EstopBenchError as exc:
        Console(stderr=True).print(f"[bold red]bench estop could not run:[/] {exc}")
        raise typer.Exit(2) from None
    emit(result, as_json=as_json)


@app.command("detect")
def detect_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    model: Annotated[
        Path | None,
        typer.Option(help="YOLO ONNX detector (default: the shipped models/outpost-sim-detector)."),
    ] = None,
    seconds: Annotated[
        float, typer.Option(min=0.1, max=600, help="Seconds per side and thread setting.")
    ] = 2.0,
    rounds: Annotated[
        int, typer.Option(min=1, max=20, help="Slices per side, alternating; the best is kept.")
    ] = 6,  # edge_agent.bench_detect.ROUNDS, not imported before the command runs
) -> None:
    """Agent detection pipeline FPS against raw session.run, same frames and threads."""
    from rich.markup import escape

    from bench import detect
    from edge_agent.bench_detect import BenchError
    from edge_agent.cli_bench import progress_bar
    from edge_agent.perception.detector import ModelError

    path = model or detect.default_model()
    if path is None:
        _err.print(
            "[bold red]bench detect needs a model:[/] pass --model PATH, a YOLO ONNX export "
            f"(Ultralytics YOLOv5/v8/11); this checkout has no {detect.DEFAULT_MODEL}. "
            "Nothing is downloaded.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    try:
        with progress_bar(not as_json) as progress:
            result = detect.run(model=path, seconds=seconds, rounds=rounds, progress=progress)
    except (BenchError, ModelError) as exc:
        _err.print(
            f"[bold red]bench detect could not run:[/] {escape(str(exc))}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    emit(result, as_json=as_json)


@app.command("gateway")
def gateway_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    mqtt_url: MqttUrl = None,
    kafka: Kafka = None,
    pg_dsn: PgDsn = None,
    model: Annotated[
        Path | None,
        typer.Option(help="YOLO ONNX detector (default: the shipped models/outpost-sim-detector)."),
    ] = None,
    frames: Annotated[int, typer.Option(min=50, max=100_000, help="Frames in all.")] = 600,
    cameras: Annotated[int, typer.Option(min=1, max=64, help="Camera-only devices.")] = 4,
) -> None:
    """Gateway-mode frames/s, thin cameras to detections in PostgreSQL, against raw
    session.run with the same model, frames and threads."""
    from bench import detect, gateway
    from bench.ingest import IngestBenchError

    path = model or detect.default_model()
    if path is None:
        _err.print(
            "[bold red]bench gateway needs a model:[/] pass --model PATH (a YOLO ONNX export)",
            highlight=False,
        )
        raise typer.Exit(2)
    try:
        result = gateway.run(
            **_services(mqtt_url, kafka, pg_dsn),
            model=path,
            frames=frames,
            cameras=cameras,
            show_progress=not as_json,
        )
    except IngestBenchError as exc:  # the gateway bench's errors included
        _err.print(f"[bold red]bench gateway failed:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    emit(result, as_json=as_json)


@app.command("ws")
def ws_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    clients: Annotated[int, typer.Option(min=1, max=1000, help="Dashboard sockets.")] = 100,
    messages: Annotated[int, typer.Option(min=100, help="Messages per measured round.")] = 2000,
    window: Annotated[
        int, typer.Option(min=1, max=800, help="Most messages in flight past the slowest socket.")
    ] = 400,
    batch: Annotated[int, typer.Option(min=1, help="Messages the driver publishes at once.")] = 50,
    rounds: Annotated[int, typer.Option(min=1, max=20, help="Rounds per side; best kept.")] = 3,
) -> None:
    """Hub /api/v1/ws fan-out to 100 sockets against websockets.broadcast of the same texts."""
    from bench import ws

    try:
        result = ws.run(
            clients=clients, messages=messages, window=window, batch=batch, rounds=rounds
        )
    except ws.WsBenchError as exc:
        _err.print(f"[bold red]bench ws could not run:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    emit(result, as_json=as_json)
