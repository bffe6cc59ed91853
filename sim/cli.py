"""`outpost sim …`: run simulated robots against a hub, generate datasets.

Heavy imports (OpenCV, numpy) happen inside the commands, so `outpost --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from sim.scenario import Scenario

app = typer.Typer(help="Simulated robots, people and cameras.", no_args_is_help=True)

BAD_USAGE_EXIT = 2


@app.command("dataset")
def dataset(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the dataset into.")],
    images: Annotated[int, typer.Option("--images", min=1, help="How many images.")],
    val: Annotated[
        float, typer.Option("--val", min=0.0, max=0.9, help="Fraction kept for validation.")
    ] = 0.2,
    imgsz: Annotated[
        int, typer.Option("--imgsz", min=32, max=4096, help="Image width (height is 3/4).")
    ] = 320,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same dataset.")] = 0,
    min_box: Annotated[
        int | None,
        typer.Option(
            "--min-box",
            min=1,
            max=256,
            help="Smallest labelled box side in pixels; smaller objects are left unlabelled "
            "(default: 3, every object the renderer can box).",
        ),
    ] = None,
    scenario: Annotated[
        Path | None, typer.Option("--scenario", help="Scenario YAML (default: the warehouse).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a dataset already in --out.")
    ] = False,
) -> None:
    """Write a YOLO dataset (images, labels, data.yaml) rendered by the simulator."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from sim.dataset import MIN_BOX_PX, check_out, generate_dataset
    from sim.errors import SimError
    from sim.scenario import load_scenario

    console, err = Console(), Console(stderr=True)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    try:
        chosen = load_scenario(scenario) if scenario is not None else None
        check_out(out, force=force)
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("rendering", total=images)
            summary = generate_dataset(
                out,
                images,
                val_fraction=val,
                imgsz=imgsz,
                seed=seed,
                min_box=MIN_BOX_PX if min_box is None else min_box,
                scenario=chosen,
                force=force,
                on_image=lambda _i: progress.advance(task),
            )
    except SimError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(BAD_USAGE_EXIT) from None
    boxes = ", ".join(f"{n} {name}" for name, n in summary.boxes.items())
    console.print(
        f"wrote {summary.train} train + {summary.val} val images to {summary.out} "
        f"({summary.images_per_s:.1f} images/s); boxes: {boxes}",
        highlight=False,
    )
    console.print(f"train with: yolo detect train data={summary.data_yaml}", highlight=False)


@app.command("run")
def run(
    hub: Annotated[str, typer.Option("--hub", help="The hub's URL, e.g. http://127.0.0.1:8080.")],
    robots: Annotated[
        int, typer.Option("--robots", min=1, max=36, help="How many simulated robots.")
    ] = 3,
    scenario: Annotated[
        Path | None, typer.Option("--scenario", help="Scenario YAML (default: the warehouse).")
    ] = None,
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Agents' configs, data and logs (reused next run).")
    ] = Path("sim-fleet"),
    token: Annotated[
        list[str] | None, typer.Option("--token", help="An enrollment token; one per robot.")
    ] = None,
    site: Annotated[
        str, typer.Option("--site", help="Site to enroll into (with --api-key: tokens made here).")
    ] = "",
    api_key: Annotated[
        str,
        typer.Option(
            "--api-key", envvar="OUTPOST_API_KEY", help="An operator's API key, to create tokens."
        ),
    ] = "",
    control_port: Annotated[
        int, typer.Option("--control-port", help="Local port of the fault/control endpoint.")
    ] = 8765,
    camera_fps: Annotated[
        float, typer.Option("--camera-fps", min=0.0, max=30.0, help="Robot camera rate; 0: none.")
    ] = 2.0,
    model: Annotated[
        Path | None, typer.Option("--model", help="ONNX detector for the agents' perception.")
    ] = None,
    danger_m: Annotated[
        float,
        typer.Option(
            "--danger-m",
            min=0.0,
            max=20.0,
            help="With --model: a person this close ahead of a robot's camera stops it (0: off).",
        ),
    ] = 2.5,
    ros_domain: Annotated[
        int | None, typer.Option("--ros-domain", help="ROS_DOMAIN_ID (default: environment's).")
    ] = None,
    synthetic_hz: Annotated[
        float, typer.Option("--synthetic-hz", min=0.0, help="A counter per agent (0: none).")
    ] = 0.0,
    duration: Annotated[
        float, typer.Option("--duration", min=0.0, help="Stop after this many seconds (0: never).")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="The world's seed.")] = 0,
    agent_config: Annotated[
        Path | None,
        typer.Option(
            "--agent-config",
            help="A TOML file of agent settings merged into every agent's config "
            "(e.g. [perception.drift] window_s = 10).",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="Log lines as text or json (default: $OUTPOST_LOG_FORMAT, else text).",
        ),
    ] = None,
) -> None:
    """Run simulated robots, each with a real enrolled edge agent, against a hub."""
    import asyncio
    import logging

    from protocol.logs import LogFormatError, configure_logging, resolve_log_format
    from sim.errors import SimError
    from sim.fleet import RunOptions, SimRun, default_ros_domain
    from sim.scenario import default_scenario, load_scenario

    err = Console(stderr=True)
    try:
        fmt = resolve_log_format(log_format)
    except LogFormatError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(BAD_USAGE_EXIT) from None
    configure_logging(logging.INFO, fmt, role="sim")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    try:
        chosen = _fleet_scenario(scenario, robots, load_scenario, default_scenario)
        overrides = _agent_overrides(agent_config)
        options = RunOptions(
            hub_url=hub,
            workdir=workdir.resolve(),
            tokens=tuple(token or ()),
            api_key=api_key,
            site=site,
            control_port=control_port,
            camera_fps=camera_fps,
            model=model.resolve() if model else None,
            danger_m=danger_m,
            ros_domain=default_ros_domain() if ros_domain is None else ros_domain,
            synthetic_hz=synthetic_hz,
            seed=seed,
            agent_overrides=overrides,
        )
        asyncio.run(SimRun(options, chosen).run(duration or None))
    except SimError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(BAD_USAGE_EXIT) from None
    except KeyboardInterrupt:
        pass


def _agent_overrides(path: Path | None) -> dict[str, Any]:
    """The `--agent-config` TOML as a dict; `SimError` naming the file when it is unusable."""
    import tomllib

    from sim.errors import SimError

    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SimError(f"--agent-config {path}: {exc}") from exc


def _fleet_scenario(
    path: Path | None,
    robots: int,
    load: Callable[[Path], Scenario],
    default: Callable[[int], Scenario],
) -> Scenario:
    """The scenario's first `robots` robots (the built-in warehouse grows to fit)."""
    from sim.errors import ScenarioError

    if path is None:
        return default(robots)
    scenario = load(path)
    if len(scenario.robots) < robots:
        raise ScenarioError(
            f"{path}: has {len(scenario.robots)} robots, --robots asks for {robots}"
        )
    return scenario.model_copy(update={"robots": scenario.robots[:robots]})


@app.command("camera")
def camera(
    mqtt_url: Annotated[
        str, typer.Option("--mqtt-url", help="The hub's broker, e.g. mqtt://127.0.0.1:1883.")
    ],
    device: Annotated[str, typer.Option("--device", help="The camera's enrolled device id.")],
    view: Annotated[
        str, typer.Option("--view", help="Which of the scenario's fixed cameras it shows.")
    ] = "cam-dock",
    scenario: Annotated[
        Path | None, typer.Option("--scenario", help="Scenario YAML (default: the warehouse).")
    ] = None,
    fps: Annotated[float, typer.Option("--fps", min=0.1, max=30.0, help="Frames a second.")] = 4.0,
    frames: Annotated[
        int, typer.Option("--frames", min=0, help="Stop after this many; 0: never.")
    ] = 0,
    username: Annotated[str, typer.Option("--username", help="MQTT user (the device's).")] = "",
    password: Annotated[
        str, typer.Option("--password", envvar="OUTPOST_SIM_MQTT_PASSWORD", help="MQTT password.")
    ] = "",
) -> None:
    """A camera-only device: the view of one of the scenario's cameras, sent as inference
    frames for gateway agents to detect on (docs/simulator.md)."""
    import asyncio

    import aiomqtt
    import numpy as np

    from sim.errors import SimError
    from sim.render import cameras_for
    from sim.scenario import default_scenario, load_scenario
    from sim.thin_camera import ThinCamera
    from sim.world import RealTimeStepper, World

    out, err = Console(), Console(stderr=True)
    try:
        world = World(load_scenario(scenario) if scenario else default_scenario(), seed=0)
    except SimError as exc:
        err.print(f"[bold red]{exc}[/]", highlight=False)
        raise typer.Exit(BAD_USAGE_EXIT) from None
    fixed = {c.name for c in world.scenario.cameras}
    if view not in fixed:
        err.print(
            f"[bold red]--view {view!r} is not a fixed camera of the scenario;[/] "
            f"allowed: {', '.join(sorted(fixed)) or 'none'}",
            highlight=False,
        )
        raise typer.Exit(BAD_USAGE_EXIT)
    lens, rng = cameras_for(world)[view], np.random.default_rng(0)
    thin = ThinCamera(
        device,
        mqtt_url,
        render=lambda: lens.render(world, rng).image,
        fps=fps,
        username=username,
        password=password,
    )
    stepper = RealTimeStepper(world)
    stepper.start()
    try:
        with out.status(f"{device}: sending {view} at {fps:g} frames/s to {mqtt_url}"):
            asyncio.run(thin.run(frames or None))
    except KeyboardInterrupt:
        pass
    except (OSError, aiomqtt.MqttError) as exc:
        err.print(f"[bold red]{device}: the broker at {mqtt_url} failed:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        stepper.stop()
    out.print(f"{device}: {len(thin.sent)} frames sent")


@app.command("fault")
def fault(
    kind: Annotated[str, typer.Argument(help="link_cut, broker_stop, camera_freeze, ...")],
    robot: Annotated[str | None, typer.Option("--robot", help="The robot (device) id.")] = None,
    seconds: Annotated[
        float, typer.Option("--seconds", help="How long; for clock_skew the offset.")
    ] = 10.0,
    camera: Annotated[str | None, typer.Option("--camera", help="Camera name.")] = None,
    to_pct: Annotated[
        float, typer.Option("--to-pct", min=0.0, max=100.0, help="battery_drain: charge left.")
    ] = 0.0,
    metric: Annotated[str | None, typer.Option("--metric", help="sensor_spike: metric.")] = None,
    value: Annotated[float | None, typer.Option("--value", help="sensor_spike: reading.")] = None,
    control: Annotated[
        str, typer.Option("--control", help="The running `outpost sim run`'s control URL.")
    ] = "http://127.0.0.1:8765",
) -> None:
    """Inject a fault into a running `outpost sim run`."""
    from pydantic import ValidationError

    from sim.control import send_fault
    from sim.errors import SimError
    from sim.scenario import Fault

    err = Console(stderr=True)
    try:
        wanted = Fault.model_validate(
            {
                "kind": kind,
                "robot": robot,
                "camera": camera,
                "seconds": seconds,
                "to_pct": to_pct,
                "metric": metric,
                "value": value,
            }
        )
        accepted = send_fault(control, wanted)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err.print(f"[bold red]error:[/] {reasons}", highlight=False, soft_wrap=True)
        raise typer.Exit(BAD_USAGE_EXIT) from None
    except SimError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    Console().print(f"injected: {accepted}", highlight=False)
