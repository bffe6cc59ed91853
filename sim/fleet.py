"""`outpost sim run`: a simulated fleet with one real, enrolled edge agent per robot.

`SimRun` starts the world (stepped in real time), the robots' MQTT broker and faces
(MQTT or ROS 2, per robot), the cameras (MJPEG over HTTP for MQTT robots, ROS 2
`sensor_msgs/Image` for ROS 2 ones), one `LinkProxy` per agent in front of the hub's
broker, enrolls every robot with a real `edge-agent install` (once: a later run in the
same work folder reuses the identities), starts `edge-agent run` per robot, injects the
scenario's faults on schedule and serves the control endpoint (`sim.control`).

Example:
    run = SimRun(RunOptions(hub_url="http://127.0.0.1:8080", workdir=Path("fleet"),
                            api_key="opk_...", site="plant-a"), scenario)
    asyncio.run(run.run(duration_s=60))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from sim.control import ControlServer, Walk
from sim.enroll import (
    create_tokens,
    device_of,
    edge_agent_command,
    install_agent,
    merged,
    read_config,
    write_config,
)
from sim.errors import SimError
from sim.faces.mqtt import MqttFace
from sim.network import LinkProxy, RobotBroker
from sim.render import CameraPose, Optics, View
from sim.scenario import Fault, MountedCamera, Scenario
from sim.world import RealTimeStepper, World

if TYPE_CHECKING:
    from sim.mjpeg import MjpegCameraServer
    from sim.render import Camera

logger = logging.getLogger(__name__)

AGENT_STOP_TIMEOUT_S = 15.0
SHUTDOWN_PARTS_S = 15.0
"""Longest wait, after the agents, for the rest of the run to stop (faces, proxies,
cameras, broker): SIGTERM ends `outpost sim run` within about 30 s whatever hangs."""
DANGER_HALF_WIDTH_M = 0.7
"""Half the width of a robot's danger zone: its own half-width and a margin."""


class Face(Protocol):
    """What the run needs of a robot face."""

    skew_s: float
    heard: dict[str, float]


def danger_zone(camera: MountedCamera, ahead_m: float) -> list[list[float]]:
    """The floor from 0.2 m to `ahead_m` in front of a robot's camera, one robot-width
    either side, as the agent's zone polygon (fractions of the camera's image).

    Example:
        >>> zone = danger_zone(MountedCamera(), 2.5)
        >>> len(zone) >= 4 and all(0 <= x <= 1 and 0 <= y <= 1 for x, y in zone)
        True
    """
    half = DANGER_HALF_WIDTH_M
    view = View(
        CameraPose(0.0, 0.0, camera.height_m, 0.0, camera.pitch_rad),
        Optics(camera.width, camera.height, camera.fov_deg),
    )
    floor = [(0.2, -half), (ahead_m, -half), (ahead_m, half), (0.2, half)]
    return [[x, y] for x, y in view.floor_polygon(floor)]


def perception_section(
    model: Path | None, camera: str, mount: MountedCamera | None, danger_m: float
) -> dict[str, Any]:
    """An agent's `[perception]`: the model, and the robot's own `danger` zone (on its
    camera `camera`) with a `person-in-danger` rule that stops it locally.

    Example:
        >>> section = perception_section(Path("m.onnx"), "robot-1", MountedCamera(), 2.5)
        >>> section["rules"][0]["zone"], section["zones"][0]["camera"]
        ('danger', 'robot-1')
    """
    section: dict[str, Any] = {"model": str(model)} if model else {"default_model": False}
    if model is None or mount is None or danger_m <= 0:
        return section
    polygon = danger_zone(mount, danger_m)
    if len(polygon) < 3:
        return section
    section["zones"] = [{"name": "danger", "camera": camera, "polygon": polygon}]
    section["rules"] = [
        {
            "name": "person-in-danger",
            "classes": ["person"],
            "zone": "danger",
            "min_conf": 0.5,
            "min_frames": 2,
            "clear_frames": 4,
            "action": "stop",
        }
    ]
    return section


@dataclass(frozen=True)
class RunOptions:
    """How to run the fleet: which hub, how to enroll, what to wire."""

    hub_url: str
    workdir: Path
    tokens: tuple[str, ...] = ()
    api_key: str = ""
    site: str = ""
    control_port: int = 8765
    camera_fps: float = 2.0
    """Frames per second each robot's camera gives its agent (0: no cameras)."""
    model: Path | None = None
    """An ONNX detector for the agents' perception (None: cameras without a model)."""
    danger_m: float = 2.5
    """With a model: a `danger` zone this far ahead of each robot's camera, and a stop rule
    for a person in it (0: no zone, no rule)."""
    ros_domain: int = 0
    synthetic_hz: float = 0.0
    """A `synthetic` counter per agent at this rate (0: none): a gap-free sequence in the hub."""
    odom_hz: float = 10.0
    seed: int = 0
    agent_overrides: dict[str, Any] = field(default_factory=dict)
    """Extra agent settings merged into every agent's config (tests shorten timeouts)."""


@dataclass
class RobotRig:
    """One robot's parts: its face, its agent's link proxy, config and process."""

    robot_id: str
    face_kind: str
    device: str = ""
    face: Face | None = None
    proxy: LinkProxy | None = None
    config: Path | None = None
    process: asyncio.subprocess.Process | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)


class SimRun:
    """The simulated fleet with real agents; `run()` until cancelled or `duration_s`."""

    def __init__(self, options: RunOptions, scenario: Scenario) -> None:
        self.options, self.scenario = options, scenario
        self.world = World(scenario, seed=options.seed)
        self.rigs = {r.id: RobotRig(r.id, r.face) for r in scenario.robots}
        self.broker = RobotBroker()
        self.control = ControlServer(
            inject=self.inject, snapshot=self.snapshot, walk=self.walk, port=options.control_port
        )
        self.ready = asyncio.Event()
        self.started_at = 0.0
        self._hub_broker: tuple[str, int, str] = ("127.0.0.1", 1883, "mqtt")
        self._background: set[asyncio.Task[None]] = set()
        self._closing = ""
        """The part being stopped during shutdown (named in the log if it hangs)."""
        self._mjpeg: MjpegCameraServer | None = None
        self._cameras: dict[str, Camera] = {}

    async def run(self, duration_s: float | None = None) -> None:
        """Bring the fleet up, run the scenario's faults, and take everything down at the end."""
        stepper = RealTimeStepper(self.world, rate_hz=20)
        stepper.start()
        try:
            await self._enroll()
            if any(r.face_kind == "mqtt" for r in self.rigs.values()):
                await self.broker.start()
            self._start_cameras()
            await self.control.start()
            async with asyncio.TaskGroup() as tg:
                for rig in self.rigs.values():
                    await self._start_rig(rig, tg)
                for rig in self.rigs.values():
                    await self._start_agent(rig)
                self.started_at = time.monotonic()
                self.ready.set()
                logger.info("simulated fleet up: %s", self.describe())
                for fault in sorted(self.scenario.faults, key=lambda f: f.at_s):
                    tg.create_task(self._scheduled(fault), name=f"fault-{fault.kind}")
                tg.create_task(self._watch_agents(), name="watch-agents")
                await _until(duration_s)
                tg.create_task(_finish(), name="finish")
        except* _Finished:
            pass
        except* SimError as group:  # one clear message for the CLI, not a group
            raise group.exceptions[0] from None
        finally:
            await self._shutdown()
            stepper.stop()

    def describe(self) -> str:
        """One line per robot: its device, face and agent."""
        return "; ".join(
            f"{r.robot_id} (device {r.device}, {r.face_kind}, agent pid "
            f"{r.process.pid if r.process else '-'})"
            for r in self.rigs.values()
        )

    # --- enrollment and agents ------------------------------------------------------------

    def _dir(self, robot_id: str) -> Path:
        return self.options.workdir / robot_id

    async def _enroll(self) -> None:
        todo = [
            r for r in self.rigs.values() if not (self._dir(r.robot_id) / "agent.toml").exists()
        ]
        tokens = list(self.options.tokens)
        if len(tokens) < len(todo):
            if not (self.options.api_key and self.options.site):
                raise SimError(
                    f"{len(todo)} robots to enroll and {len(tokens)} --token given: pass one "
                    "--token per robot, or --site and --api-key (OUTPOST_API_KEY) to create them"
                )
            tokens += await asyncio.to_thread(
                create_tokens,
                self.options.hub_url,
                api_key=self.options.api_key,
                site=self.options.site,
                count=len(todo) - len(tokens),
            )
        await asyncio.gather(
            *(
                asyncio.to_thread(
                    install_agent,
                    self.options.hub_url,
                    token,
                    name=rig.robot_id,
                    workdir=self._dir(rig.robot_id),
                )
                for rig, token in zip(todo, tokens, strict=False)
            )
        )
        for rig in self.rigs.values():
            installed = read_config(self._dir(rig.robot_id) / "agent.toml")
            rig.device = device_of(installed)
            url = urlsplit(str(installed.get("mqtt", {}).get("url", "mqtt://127.0.0.1:1883")))
            self._hub_broker = (url.hostname or "127.0.0.1", url.port or 1883, url.scheme)

    async def _start_agent(self, rig: RobotRig) -> None:
        rig.config = write_config(self._dir(rig.robot_id) / "run.toml", self.agent_config(rig))
        log = (self._dir(rig.robot_id) / "agent.log").open("ab")
        try:
            rig.process = await asyncio.create_subprocess_exec(
                edge_agent_command(), "run", "--config", str(rig.config), stdout=log, stderr=log
            )
        finally:
            log.close()
        logger.info(
            "robot %s: agent %s started (pid %d)", rig.robot_id, rig.device, rig.process.pid
        )

    def agent_config(self, rig: RobotRig) -> dict[str, Any]:
        """The installed config plus the robot, its camera, the link proxy and overrides."""
        opts = self.options
        installed = read_config(self._dir(rig.robot_id) / "agent.toml")
        sources: list[dict[str, Any]] = [{"type": "host", "interval_s": 5.0}]
        if opts.synthetic_hz > 0:
            sources.append({"type": "synthetic", "rate_hz": opts.synthetic_hz})
        extra: dict[str, Any] = {
            "mqtt": {"connect_timeout_s": 3},
            "uplink": {"backoff_initial_s": 0.2, "backoff_max_s": 2.0, "state_interval_s": 2.0},
            "metrics": {"port": 0},
            "telemetry": {"batch_delay_s": 0.5, "sources": sources},
            "robot": self._robot_section(rig),
        }
        if rig.proxy is not None:
            extra["mqtt"]["url"] = rig.proxy.url
        camera = self._camera_section(rig)
        if camera is not None:
            extra["cameras"] = [camera]
        # Without --model, cameras only stream: a simulated fleet does not run the
        # shipped detector in every agent unless asked to.
        extra["perception"] = self._perception_section(rig)
        return merged(merged(installed, extra), opts.agent_overrides)

    def _perception_section(self, rig: RobotRig) -> dict[str, Any]:
        opts = self.options
        mount = self.scenario.robot(rig.robot_id).camera
        danger = opts.danger_m if opts.camera_fps > 0 else 0.0
        return perception_section(opts.model, rig.robot_id, mount, danger)

    def _robot_section(self, rig: RobotRig) -> dict[str, Any]:
        if rig.face_kind == "ros":
            from sim.faces.ros import namespace_for

            return {
                "adapter": "ros",
                "ros": {
                    "namespace": namespace_for(rig.robot_id),
                    "domain_id": self.options.ros_domain,
                },
            }
        return {"adapter": "mqtt", "url": self.broker.url, "topic_prefix": f"robot/{rig.robot_id}"}

    def _camera_section(self, rig: RobotRig) -> dict[str, Any] | None:
        if self.options.camera_fps <= 0 or self.scenario.robot(rig.robot_id).camera is None:
            return None
        section: dict[str, Any] = {"name": rig.robot_id, "fps": self.options.camera_fps}
        if rig.face_kind == "ros":
            from sim.faces.ros import IMAGE_TOPIC, namespace_for

            section["source"] = f"ros2:{namespace_for(rig.robot_id)}/{IMAGE_TOPIC}"
            section["ros_domain_id"] = self.options.ros_domain
        else:
            section["source"] = self._mjpeg_url(rig.robot_id)
        return section

    async def _watch_agents(self) -> None:
        """Say so when an agent exits by itself (a bad config, a refused login)."""
        waits = {
            asyncio.create_task(r.process.wait(), name=f"agent-{r.robot_id}"): r
            for r in self.rigs.values()
            if r.process is not None
        }
        try:
            while waits:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    rig = waits.pop(task)
                    logger.error(
                        "robot %s: agent exited with status %s; see %s",
                        rig.robot_id,
                        task.result(),
                        self._dir(rig.robot_id) / "agent.log",
                    )
        finally:
            for task in waits:
                task.cancel()

    # --- robots, cameras, links -----------------------------------------------------------

    def _start_cameras(self) -> None:
        if self.options.camera_fps <= 0:
            return
        from sim.mjpeg import MjpegCameraServer
        from sim.render import cameras_for

        self._cameras = {n: c for n, c in cameras_for(self.world).items() if n in self.rigs}
        mjpeg = {n: c for n, c in self._cameras.items() if self.rigs[n].face_kind == "mqtt"}
        if mjpeg:
            self._mjpeg = MjpegCameraServer(
                self.world, mjpeg, fps=self.options.camera_fps, seed=self.options.seed
            )
            self._mjpeg.start()

    def _mjpeg_url(self, camera: str) -> str:
        if self._mjpeg is None:
            raise SimError("no MJPEG camera server is running")
        return self._mjpeg.url(camera)

    async def _start_rig(self, rig: RobotRig, tg: asyncio.TaskGroup) -> None:
        host, port, scheme = self._hub_broker
        if scheme == "mqtt":
            rig.proxy = LinkProxy(host, port, name=f"{rig.robot_id} link")
            await rig.proxy.start()
        else:
            logger.warning(
                "robot %s: %s:// hub broker: no link proxy (no link_cut)", rig.robot_id, scheme
            )
        if rig.face_kind == "ros":
            from sim.faces.ros import RosFace

            camera = self._cameras.get(rig.robot_id)
            face = RosFace(
                self.world,
                rig.robot_id,
                domain_id=self.options.ros_domain,
                odom_hz=self.options.odom_hz,
                camera=camera,
                camera_fps=self.options.camera_fps,
            )
            await asyncio.to_thread(face.start)
            rig.face = face
            rig.closers.append(face.close)
        else:
            mqtt = MqttFace(
                self.world.robot(rig.robot_id),
                self.broker.url,
                prefix=f"robot/{rig.robot_id}",
                odom_hz=self.options.odom_hz,
            )
            tg.create_task(mqtt.run(), name=f"face-{rig.robot_id}")
            rig.face = mqtt

    # --- faults ---------------------------------------------------------------------------

    async def _scheduled(self, fault: Fault) -> None:
        await asyncio.sleep(max(0.0, self.started_at + fault.at_s - time.monotonic()))
        try:
            await self.inject(fault)
        except SimError as exc:
            logger.warning("scheduled fault %s not injected: %s", fault.kind, exc)

    async def inject(self, fault: Fault) -> None:
        """Inject one fault now; `SimError` (naming what exists) for an unknown robot or camera."""
        logger.warning("fault: %s", fault.model_dump(exclude_defaults=True))
        kind, world, seconds = fault.kind, self.world, fault.seconds
        if kind == "broker_stop":
            self._spawn(self.broker.stop_for(seconds), "broker-stop")
        elif kind == "link_cut":
            for rig in self._targets(fault.robot):
                if rig.proxy is None:
                    raise SimError(f"robot {rig.robot_id}: no link proxy (mqtts:// hub broker)")
                rig.proxy.sever(seconds)
        elif kind in ("camera_freeze", "camera_blackout"):
            camera = fault.camera or str(fault.robot)
            if kind == "camera_freeze":
                world.freeze_camera(camera, seconds)
            else:
                world.blackout_camera(camera, seconds)
        elif kind == "battery_drain":
            world.drain_battery(str(fault.robot), fault.to_pct)
        elif kind == "sensor_spike":
            world.spike_sensor(
                str(fault.robot), str(fault.metric), float(fault.value or 0.0), seconds
            )
        elif kind == "clock_skew":
            face = self._targets(fault.robot)[0].face
            if face is not None:
                face.skew_s = seconds

    def _targets(self, robot: str | None) -> list[RobotRig]:
        if robot is None:
            return list(self.rigs.values())
        if robot not in self.rigs:
            raise SimError(f"no robot {robot!r} (robots: {', '.join(self.rigs)})")
        return [self.rigs[robot]]

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def walk(self, actor: str, walk: Walk) -> None:
        """Send a scenario actor somewhere (`KeyError` naming the actors for an unknown one)."""
        with self.world.lock:
            found = self.world.actors.get(actor)
            if found is None:
                known = ", ".join(sorted(self.world.actors)) or "none"
                raise KeyError(f"no actor {actor!r} (actors: {known})")
            found.walk_to(*walk.to, start=walk.from_)
        logger.info("actor %s walks to %s", actor, walk.to)

    def snapshot(self) -> dict[str, Any]:
        """Each robot as the control endpoint's `GET /robots` shows it."""
        out: dict[str, Any] = {}
        for rig in self.rigs.values():
            robot = self.world.robot(rig.robot_id)
            pose, velocity, battery = robot.pose, robot.velocity, robot.battery
            out[rig.robot_id] = {
                "device": rig.device,
                "face": rig.face_kind,
                "pose": {"x": pose.x, "y": pose.y, "heading": pose.heading},
                "velocity": {"linear": velocity.linear, "angular": velocity.angular},
                "battery_pct": battery.percent,
                "faults": sorted(robot.faults),
                "stopped": robot.stopped,
                "link_cut": rig.proxy.severed if rig.proxy else False,
                "skew_s": rig.face.skew_s if rig.face else 0.0,
                "heard": dict(rig.face.heard) if rig.face else {},
                "agent_pid": rig.process.pid if rig.process else None,
                "agent_running": rig.process is not None and rig.process.returncode is None,
            }
        with self.world.lock:
            actors = {
                a.id: {"cls": a.cls, "pose": {"x": a.x, "y": a.y, "heading": a.heading}}
                for a in self.world.actors.values()
            }
        return {
            "robots": out,
            "actors": actors,
            "time_s": self.world.time_s,
            "broker_up": self.broker.running,
        }

    # --- shutdown -------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        await asyncio.gather(*(self._stop_agent(r) for r in self.rigs.values()))
        try:
            async with asyncio.timeout(SHUTDOWN_PARTS_S):
                await self._close_parts()
        except TimeoutError:  # SIGTERM must end the run: what hangs is left behind, and said
            logger.warning(
                "stopping the run's parts took over %.0f s (at: %s); exiting anyway",
                SHUTDOWN_PARTS_S, self._closing,
            )  # fmt: skip

    async def _close_parts(self) -> None:
        self._closing = "background tasks"
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._closing = "the control endpoint"
        await self.control.close()
        for rig in self.rigs.values():
            self._closing = f"{rig.robot_id}'s face and link proxy"
            for close in rig.closers:
                await asyncio.to_thread(close)
            if rig.proxy is not None:
                await rig.proxy.close()
        if self._mjpeg is not None:
            self._closing = "the MJPEG cameras"
            await asyncio.to_thread(self._mjpeg.stop)
        self._closing = "the robot broker"
        await self.broker.stop()

    async def _stop_agent(self, rig: RobotRig) -> None:
        process = rig.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(AGENT_STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            logger.warning("robot %s: agent did not stop in time; killed", rig.robot_id)
            process.kill()
            await process.wait()


class _Finished(Exception):
    """The run's time is up."""


async def _finish() -> None:
    """End the run's task group (its other tasks run until cancelled)."""
    raise _Finished


async def _until(duration_s: float | None) -> None:
    """Sleep `duration_s`, or until SIGTERM / cancellation when None."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with asyncio.timeout(duration_s):
            await stop.wait()
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


def default_ros_domain() -> int:
    """ROS_DOMAIN_ID from the environment, else 0."""
    try:
        return int(os.environ.get("ROS_DOMAIN_ID", "0"))
    except ValueError:
        return 0
