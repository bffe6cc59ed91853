"""`outpost train` and `outpost dataset …` (`drift` and `capture` live in their own modules)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from training.card import CpuLatency, HeldOut, Metrics
from training.check import KINDS, CheckReport, check_dataset
from training.dataset import DatasetError, load_dataset
from training.errors import TrainingError
from training.holdout import add_to_card, assess, check_holdout
from training.train import TrainRequest, TrainRequestError, TrainResult
from training.train import train as run_training
from training.ultralytics_env import MissingTrainExtra

dataset_app = typer.Typer(help="Check and convert datasets.", no_args_is_help=True)

USAGE_EXIT = 2
PROBLEMS_EXIT = 1
SHOWN_PER_KIND = 10
_out = Console()
_err = Console(stderr=True)


def _fail(message: str, code: int = USAGE_EXIT) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# --- outpost train -------------------------------------------------------------------------


class RichProgress:
    """Training progress drawn with rich: one bar over every batch of every epoch."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def stage(self, text: str) -> None:
        """Print the stage that begins (training is over if it had started)."""
        self.bar.stop()
        self.console.print(f"[cyan]•[/] {text}", highlight=False)

    def batch(self, epoch: int, epochs: int, batch: int, batches: int, loss: float) -> None:
        """Advance the bar by one batch."""
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("train", total=epochs * batches, detail="")
        self.bar.update(
            self.task,
            completed=(epoch - 1) * batches + batch,
            description=f"epoch {epoch}/{epochs}",
            detail=f"loss {loss:.3f}",
        )

    def epoch(self, epoch: int, epochs: int, metrics: Mapping[str, float]) -> None:
        """Show the epoch's validation mAP when it was validated."""
        map50 = metrics.get("metrics/mAP50(B)")
        if self.task is not None and map50 is not None:
            self.bar.update(self.task, detail=f"mAP50 {map50:.3f}")


def train(
    data: Annotated[
        Path, typer.Option("--data", help="data.yaml of a YOLO dataset (or its folder).")
    ],
    model: Annotated[
        str,
        typer.Option(
            help="Model yaml shipped with ultralytics (from scratch) or a local .pt (fine-tune)."
        ),
    ] = "yolov8n.yaml",
    epochs: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    imgsz: Annotated[int, typer.Option(min=32, max=8192, help="Square input size.")] = 640,
    batch: Annotated[int, typer.Option(min=1, max=4096)] = 16,
    device: Annotated[str, typer.Option(help="auto (cuda when available), cpu or cuda.")] = "auto",
    name: Annotated[
        str | None, typer.Option(help="Model name (default: the dataset folder's).")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Model version (default: a UTC timestamp).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default runs/train/NAME-VERSION).")
    ] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option(
            "--arg", help="Ultralytics training argument KEY=VALUE (repeatable), e.g. lr0=0.002."
        ),
    ] = None,
    holdout: Annotated[
        Path | None,
        typer.Option(
            help="A dataset never trained on: the ONNX file's metrics on its val split and "
            "its CPU latency go into the card."
        ),
    ] = None,
) -> None:
    """Train, evaluate and export a YOLO detector to ONNX, with its model card."""
    request = TrainRequest(
        data=data,
        model=model,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        name=name,
        version=version,
        out=out,
        args=tuple(arg or ()),
    )
    progress = RichProgress(_err)
    try:
        if holdout is not None:
            check_holdout(holdout, data)  # before hours of training, not after
        result = run_training(request, progress)
        if holdout is not None:
            assessment = assess(result.onnx, holdout, progress=progress)
            result = replace(result, card=add_to_card(result.card_path, assessment))
    except (DatasetError, TrainRequestError, MissingTrainExtra) as exc:
        _fail(str(exc))
    except TrainingError as exc:
        _fail(str(exc), 1)
    _print_result(result)


def _print_result(result: TrainResult) -> None:
    card = result.card
    table = Table(title=f"{card.name} {card.version}", show_header=False)
    metrics, training = card.metrics, card.training
    for key, value in (
        ("mAP50 / mAP50-95 (val)", f"{metrics.map50:.3f} / {metrics.map50_95:.3f}"),
        ("precision / recall", f"{metrics.precision:.3f} / {metrics.recall:.3f}"),
        ("classes", ", ".join(card.classes)),
        ("device", f"{training.device} ({training.device_name})"),
        ("duration", f"{training.duration_s:.1f} s, {training.epochs} epoch(s)"),
    ):
        table.add_row(key, value)
    _out.print(table, _per_class(metrics, "per class (val)"))
    if card.held_out is not None and card.cpu_latency is not None:
        _print_assessment(card.held_out, card.cpu_latency)
    for what, path in (
        ("model", result.onnx),
        ("card", result.card_path),
        ("weights", result.best_pt),
    ):
        _out.print(f"{what:>8}: {path}", highlight=False, soft_wrap=True)


def _per_class(metrics: Metrics, title: str) -> Table:
    table = Table("class", "AP50", "AP50-95", "instances", title=title)
    for cls, ap in metrics.per_class_ap.items():
        table.add_row(cls, _ap(ap.ap50), _ap(ap.ap50_95), str(ap.instances))
    return table


def _print_assessment(held_out: HeldOut, latency: list[CpuLatency]) -> None:
    metrics = held_out.metrics
    table = Table(title=f"held out: {held_out.dataset.path}", show_header=False)
    table.add_row("mAP50 / mAP50-95", f"{metrics.map50:.3f} / {metrics.map50_95:.3f}")
    table.add_row("precision / recall", f"{metrics.precision:.3f} / {metrics.recall:.3f}")
    for entry in latency:
        table.add_row(
            f"CPU latency, {entry.threads} thread(s)",
            f"p50 {entry.p50_ms:.1f} ms, p95 {entry.p95_ms:.1f} ms ({entry.cpu})",
        )
    _out.print(table, _per_class(metrics, "per class (held out)"))


def evaluate_model(
    model: Annotated[Path, typer.Option("--model", help="The ONNX detector file.")],
    data: Annotated[
        Path, typer.Option("--data", help="data.yaml of a dataset the model never saw.")
    ],
    card: Annotated[
        Path | None,
        typer.Option(help="The model's card.json: record the result in it as held_out."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Evaluate an ONNX detector on a held-out dataset's val split and time it on this CPU."""
    if card is not None and not card.is_file():
        _fail(f"--card {card}: no such file")
    try:
        assessment = assess(model, data, progress=None if as_json else RichProgress(_err))
        if card is not None:
            add_to_card(card, assessment)
    except (DatasetError, MissingTrainExtra) as exc:
        _fail(str(exc))
    except TrainingError as exc:
        _fail(str(exc))
    if as_json:
        document = {
            "held_out": assessment.held_out.model_dump(mode="json"),
            "cpu_latency": [entry.model_dump(mode="json") for entry in assessment.latency],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_assessment(assessment.held_out, assessment.latency)


def _ap(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# --- outpost dataset check -----------------------------------------------------------------


@dataset_app.command("check")
def check(
    data: Annotated[Path, typer.Argument(help="data.yaml, or the folder holding it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    decode: Annotated[
        bool, typer.Option(help="Decode every image to find unreadable ones.")
    ] = True,
) -> None:
    """Report label errors: boxes out of range, bad lines, unknown classes, missing files.

    Exit status 0 when the dataset is clean, 1 when it has problems, 2 when unusable.
    """
    try:
        report = check_dataset(load_dataset(data), decode_images=decode)
    except DatasetError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(report.model_dump(), indent=2))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(PROBLEMS_EXIT)


def _print_report(report: CheckReport) -> None:
    splits = Table("split", "images", "labelled", "boxes", title=report.data)
    for name, split in report.splits.items():
        splits.add_row(name, str(split.images), str(split.labelled), str(split.boxes))
    _out.print(splits)
    if report.ok:
        _out.print(f"[green]no problems[/] ({len(report.names)} classes)")
        return
    counts = report.counts()
    summary = Table("problem", "count", "meaning", title="problems")
    for kind, count in counts.items():
        summary.add_row(kind, str(count), KINDS[kind])
    _out.print(summary)
    for kind, count in counts.items():
        shown = [p for p in report.problems if p.kind == kind][:SHOWN_PER_KIND]
        for problem in shown:
            where = problem.file + (f":{problem.line}" if problem.line else "")
            _out.print(f"[red]{kind}[/] {where}: {problem.detail}", highlight=False, soft_wrap=True)
        if count > len(shown):
            _out.print(f"  … and {count - len(shown)} more {kind} (--json lists all)")
