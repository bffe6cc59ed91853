"""`edge-agent bench detect`: frames/s and per-stage timings of the model on this device.

For sizing hardware in the field: it runs the configured model (or `--model`) on
frames from the configured camera (or `--frames`, or synthetic scenes), through
the agent's own per-frame path, for each onnxruntime thread setting of a sweep,
and prints which setting is fastest and the `[perception.detector]` keys to set.

Example:
    edge-agent bench detect --config /etc/outpost/agent.toml
    edge-agent bench detect --model detector.onnx --frames clip.mp4 --seconds 5 --json
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.bar import Bar
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from edge_agent import bench_detect
from edge_agent.bench_detect import BenchError, DetectReport, FrameSet
from edge_agent.cli_runtime import ConfigOption, settings_or_exit
from edge_agent.config import AgentSettings, default_config_path
from edge_agent.perception.detector import ModelError

app = typer.Typer(help="Measure this device.", no_args_is_help=True)
_out = Console()
_err = Console(stderr=True)

BAR_WIDTH = 20
STAGE_NAMES = {
    "preprocess": "preprocess (letterbox, tensor)",
    "infer": "inference (session.run)",
    "postprocess": "postprocess (decode, NMS, boxes)",
    "rules_drift_rest": "zones, rules, drift, capture",
    "handoff": "taking the next frame, posting the result",
}


@contextmanager
def progress_bar(enabled: bool) -> Iterator[bench_detect.Progress]:
    """A rich progress bar on stderr as a `bench_detect.run` progress callback."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
        console=_err,
        disable=not enabled,
        transient=True,
    )
    task = bar.add_task("loading the model", total=None)

    def update(done: int, total: int, what: str) -> None:
        bar.update(task, completed=done, total=total, description=what)

    with bar:
        yield update


@app.command("detect")
def detect(
    config: ConfigOption = None,
    model: Annotated[
        Path | None,
        typer.Option(help="ONNX detector to measure (default: the config's perception model)."),
    ] = None,
    frames: Annotated[
        Path | None,
        typer.Option(
            help="A folder of images or a video file (default: the first configured camera, "
            "else synthetic scenes)."
        ),
    ] = None,
    seconds: Annotated[
        float, typer.Option(min=0.1, max=600, help="Seconds per side and thread setting.")
    ] = 2.0,
    rounds: Annotated[
        int, typer.Option(min=1, max=20, help="Slices per side, alternating; the best is kept.")
    ] = bench_detect.ROUNDS,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Per-stage detection timings and frames/s on this device, per onnxruntime thread setting."""
    settings = _settings(config)
    path = _model_path(model, settings, config)
    try:
        shots = _frames(frames, settings)
        with progress_bar(not as_json) as progress:
            report = bench_detect.run(
                path,
                shots,
                settings.perception if settings else None,
                camera=settings.cameras[0] if settings and settings.cameras else None,
                seconds=seconds,
                rounds=rounds,
                progress=progress,
            )
    except (BenchError, ModelError) as exc:
        _err.print(
            f"[bold red]bench detect cannot run:[/] {escape(str(exc))}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        show(report, _out, camera_fps=_camera_fps(settings))


def _settings(config: Path | None) -> AgentSettings | None:
    """The settings; with no `--config` and no default file, None (the bench needs none)."""
    if config is None and not default_config_path().is_file():
        return None
    return settings_or_exit(config)


def _model_path(model: Path | None, settings: AgentSettings | None, config: Path | None) -> Path:
    path = model or (settings.perception.model if settings else None)
    if path is None:
        where = escape(f"[perception] model in {config or default_config_path()}")
        _err.print(
            f"[bold red]no model to measure:[/] pass --model PATH (a YOLO ONNX export) "
            f"or set {where}; nothing is downloaded.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    return path


def _frames(frames: Path | None, settings: AgentSettings | None) -> FrameSet:
    if frames is not None:
        return bench_detect.read_frames(frames)
    if settings and settings.cameras:
        return bench_detect.camera_frames(settings.cameras[0])
    return bench_detect.synthetic_frames()


def _camera_fps(settings: AgentSettings | None) -> float:
    if not settings or not settings.cameras:
        return 0.0
    return sum(camera.fps for camera in settings.cameras)


def show(report: DetectReport, console: Console, *, camera_fps: float = 0.0) -> None:
    """The report for a person: the sweep with a bar per setting, the winner's stages."""
    h, w = report.input_size
    console.print(
        f"model [bold]{escape(str(report.model))}[/] (input {w}x{h}, {report.classes} classes), "
        f"{len(report.frames.images)} frames from {escape(report.frames.source)} "
        f"({', '.join(report.frames.sizes)})",
        highlight=False,
    )
    console.print(_sweep_table(report))
    console.print(_stage_table(report))
    _verdict(report, console, camera_fps)


def _sweep_table(report: DetectReport) -> Table:
    best = report.best
    top = max(max(r.raw_fps, r.pipeline_fps) for r in report.results)
    configured = any(r.configured for r in report.results)
    table = Table(
        title="frames/s per onnxruntime thread setting",
        title_justify="left",
        caption="* the configured setting" if configured else None,
        caption_justify="left",
    )
    table.add_column("threads", no_wrap=True)
    table.add_column("raw fps", justify="right")
    table.add_column("agent fps", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("agent fps", width=BAR_WIDTH)
    for result in report.results:
        name = result.label + (" *" if result.configured else "")
        colour = "green" if result is best else "cyan"
        table.add_row(
            f"[bold green]{name}[/]" if result is best else name,
            f"{result.raw_fps:.1f}",
            f"{result.pipeline_fps:.1f}",
            f"{result.ratio:.2f}",
            Bar(size=top, begin=0, end=result.pipeline_fps, width=BAR_WIDTH, color=colour),
        )
    return table


def _stage_table(report: DetectReport) -> Table:
    best = report.best
    total = sum(stats.mean_ms for stats in best.stages.values()) or 1.0
    table = Table(title=f"per frame, {best.label}", title_justify="left")
    table.add_column("stage")
    table.add_column("mean ms", justify="right")
    table.add_column("p95 ms", justify="right")
    table.add_column("share", justify="right")
    for key, stats in best.stages.items():
        share = stats.mean_ms / total
        table.add_row(
            STAGE_NAMES.get(key, key), f"{stats.mean_ms:.2f}", f"{stats.p95_ms:.2f}", f"{share:.0%}"
        )
    table.add_row("[bold]total[/]", f"[bold]{total:.2f}[/]", "", "")
    return table


def _verdict(report: DetectReport, console: Console, camera_fps: float) -> None:
    best = report.best
    mark = "[green]meets[/]" if report.ratio >= bench_detect.TARGET else "[yellow]is below[/]"
    console.print(
        f"fastest: [bold]{best.label}[/], {best.pipeline_fps:.1f} frames/s through the agent, "
        f"{best.raw_fps:.1f} for the model alone: ratio {report.ratio:.2f}, "
        f"which {mark} the {bench_detect.TARGET} target.",
        highlight=False,
    )
    if camera_fps:
        room = best.pipeline_fps / camera_fps
        colour = "green" if room >= 1.5 else "yellow" if room >= 1 else "red"
        console.print(
            f"the configured cameras ask for {camera_fps:g} frames/s in all; "
            f"the agent manages [{colour}]{room:.1f}x[/] that.",
            highlight=False,
        )
    console.print("set these in the agent's config to run at this speed:")
    console.print(escape(report.config_snippet()), highlight=False)
