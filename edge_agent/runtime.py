"""The running agent: one TaskGroup owns the uplink, telemetry, status and metrics loops.

Example:
    settings = load_settings(Path("/etc/outpost/agent.toml"))
    asyncio.run(Agent(settings).run())          # until SIGTERM / Ctrl-C
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.config import AgentSettings
from edge_agent.downlink import CommandExecutor, ReplayCache
from edge_agent.errors import AgentError, ConfigError
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox, OutboxStats
from edge_agent.perception.default_model import shipped_model
from edge_agent.perception.detect_api import DETECT_PATH, DetectApi, DetectApiError
from edge_agent.perception.detector import ModelError
from edge_agent.perception.gateway import Gateway
from edge_agent.perception.models import ModelManager, manager_for
from edge_agent.perception.pipeline import ActiveModel, local_model
from edge_agent.perception.rules import ConditionChange, stale_conditions
from edge_agent.perception.service import Perception
from edge_agent.robot import NoRobot, RobotAdapter
from edge_agent.robot.link import LinkedRobot
from edge_agent.robot.mqtt import MqttRobot
from edge_agent.robot.websocket import WebSocketRobot
from edge_agent.safety import SafetyStore, SafetySupervisor
from edge_agent.safety.supervisor import hardware_input
from edge_agent.telemetry import Batcher, SourceContext, build_source
from edge_agent.uplink import AuthenticationRefused, Uplink
from protocol import (
    BufferStatus,
    Channel,
    DeviceState,
    Event,
    KnownEvent,
    PriorityClass,
    Severity,
    TelemetryPoint,
    encode,
)
from protocol.models import CaptureParams, Command, CommandType, StopSource
from protocol.signing import public_key_from_text

logger = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0
HARDWARE_CONDITION = "hardware"


"""Name of the local stop condition the hardware input holds."""
LOCAL_STOP_REQUEST = "estop.request"
"""File `edge-agent estop` writes (the reason) before signalling the running agent."""


def _ros_adapter() -> type[LinkedRobot]:
    """The ROS 2 adapter, imported only when configured (rclpy is the optional `ros` extra)."""
    try:
        from edge_agent.robot.ros import RosRobot
    except ImportError as exc:
        raise ConfigError(
            '[robot] adapter = "ros" needs the ROS 2 Python packages: '
            f"pip install 'outpost[ros]' (importing them failed: {exc})"
        ) from exc
    return RosRobot


class _Shutdown(Exception):
    """Raised inside the TaskGroup to end every loop cleanly."""


class Agent:
    """The edge agent process."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self._stats: OutboxStats | None = None
        self._stop = asyncio.Event()
        self.supervisor = SafetySupervisor(
            SafetyStore(settings.device.data_dir / "safety.json"),
            link_timeout_s=settings.safety.link_timeout_s,
            heartbeat_timeout_s=settings.safety.heartbeat_timeout_s,
        )
        self.executor: CommandExecutor | None = None
        self._local_stop_requested = asyncio.Event()
        self._robot: RobotAdapter = NoRobot()
        self._robot_points: Callable[[TelemetryPoint], None] = lambda _p: None
        self._background: set[asyncio.Task[None]] = set()
        self._model: ActiveModel | None = None
        self.models: ModelManager | None = None
        self.perception: Perception | None = None
        self.detect_api: DetectApi | None = None
        self._detect_api_status: dict[str, str] | None = None
        self.gateway: Gateway | None = None

    def stop(self) -> None:
        """Ask the agent to flush and exit (what SIGTERM does)."""
        self._stop.set()

    def active_model(self) -> ActiveModel | None:
        """The model serving now: the one activated from the hub, else `[perception] model`."""
        managed = self.models.current if self.models is not None else None
        return managed or self._model

    def state(self) -> DeviceState:
        """The retained `state` this agent publishes."""
        buffer = None
        if self._stats is not None:
            buffer = BufferStatus(
                depth=self._stats.depth,
                bytes=self._stats.bytes,
                oldest_ts=self._stats.oldest_ts,
                dropped=dict(self._stats.dropped),
            )
        return DeviceState(
            online=True,
            agent_version=__version__,
            mode=self.supervisor.mode,
            estop=self.supervisor.status,
            buffer=buffer,
            model=active.ref if (active := self.active_model()) else None,
        )

    async def run(self) -> None:
        """Run until `stop()` or SIGTERM; raise `AuthenticationRefused` on a refused login."""
        cfg = self.settings
        cfg.device.data_dir.mkdir(parents=True, exist_ok=True)
        self._install_signal_handlers()
        outbox = await Outbox.open(
            cfg.device.outbox_path,
            device=cfg.device.id,
            synchronous=cfg.outbox.synchronous,
            cap_bytes=int(cfg.outbox.cap_mb * (1 << 20)),
            downsample_at=cfg.outbox.downsample_at,
        )
        self._stats = await outbox.stats()
        self._robot = self._build_robot(outbox)
        executor = CommandExecutor(
            device_id=cfg.device.id,
            hub_key=public_key_from_text(cfg.hub.public_key) if cfg.hub.public_key else None,
            supervisor=self.supervisor,
            robot=self._robot,
            outbox=outbox,
            replay=ReplayCache(cfg.device.data_dir / "commands-seen.json", _utcnow),
        )
        uplink = Uplink(cfg, outbox, state=self.state, on_downlink=executor.handle)
        executor.notify = uplink.notify
        self.executor = executor
        batcher = Batcher(
            outbox,
            max_points=cfg.telemetry.batch_points,
            max_delay_s=cfg.telemetry.batch_delay_s,
            on_flush=uplink.notify,
        )
        self._robot_points = batcher.add
        await self._clear_stale_conditions()
        self.models = manager_for(
            cfg, cfg.model, options=cfg.perception.detector, on_event=self._event_sink(outbox)
        )
        await self.models.load_active()
        executor.on_model = self.models.receive
        local = cfg.perception.model
        wants_model = bool(cfg.cameras) or cfg.detect_api.port != 0 or cfg.gateway.enabled
        if local is None and wants_model and cfg.perception.default_model:
            local = shipped_model()
            if local is None:
                logger.warning("no [perception] model and this install has no shipped detector")
        if local is not None:
            self._model = await self._load_local_model(local, outbox)
        self.perception = Perception(
            cfg.cameras,
            cfg.perception,
            outbox,
            data_dir=cfg.device.data_dir,
            models=self.active_model,
            on_conditions=self._rule_conditions,
            on_point=batcher.add,
            held=self.supervisor.conditions,
            notify=uplink.notify,
        )
        if cfg.gateway.enabled:
            self.gateway = Gateway(
                cfg.gateway,
                cfg.perception,
                self.active_model,
                cfg.device.data_dir,
                device=cfg.device.id,
            )
        executor.handlers[CommandType.CAPTURE] = self._capture
        metrics = AgentMetrics.serve(cfg.metrics.host, cfg.metrics.port)
        self._start_detect_api()
        logger.info(
            "agent %s starting: device %s, stream %s", __version__, cfg.device.id, outbox.stream
        )
        try:
            await self._loops(outbox, uplink, batcher, metrics)
        finally:
            if self.detect_api is not None:
                await asyncio.to_thread(self.detect_api.close)
            await batcher.flush()
            self._stats = await outbox.stats()
            self._write_status(uplink, outbox)
            await outbox.close()
            metrics.close()
            logger.info("agent stopped")

    def _start_detect_api(self) -> None:
        """`[detect_api]`: serve `POST /v1/detect` with the active model. An address it cannot
        listen on is logged and shown by `edge-agent status`; the agent runs on without it."""
        section = self.settings.detect_api
        if not section.port:
            return
        api = DetectApi(section, self.active_model)
        try:
            api.start()
        except DetectApiError as exc:
            logger.error("%s; the agent runs without the detect API", exc)  # noqa: TRY400
            self._detect_api_status = {"error": str(exc)}
            return
        self.detect_api = api
        self._detect_api_status = {"url": api.url + DETECT_PATH}

    async def _loops(
        self, outbox: Outbox, uplink: Uplink, batcher: Batcher, metrics: AgentMetrics
    ) -> None:
        context = SourceContext(outbox=outbox, data_dir=self.settings.device.data_dir)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(uplink.run(), name="uplink")
                tg.create_task(batcher.run(), name="telemetry-batcher")
                for source_cfg in self.settings.telemetry.sources:
                    source = build_source(source_cfg, context)
                    tg.create_task(source.run(batcher.add), name=f"telemetry-{source.name}")
                tg.create_task(self._status_loop(outbox, uplink, metrics), name="status")
                tg.create_task(self._state_loop(outbox, uplink), name="state")
                tg.create_task(self._safety_loop(uplink), name="safety")
                if isinstance(self._robot, LinkedRobot):
                    tg.create_task(self._robot.run(), name="robot")
                if self.perception is not None:
                    tg.create_task(self.perception.run(), name="perception")
                if self.models is not None:
                    tg.create_task(self.models.run(), name="models")
                if self.gateway is not None:
                    tg.create_task(self.gateway.run(), name="gateway")
                tg.create_task(self._local_stop_loop(uplink, outbox), name="local-estop")
                tg.create_task(self._wait_for_stop(), name="stop")
        except* _Shutdown:
            pass
        except* AuthenticationRefused as group:
            raise group.exceptions[0] from None

    def _event_sink(self, outbox: Outbox) -> Callable[[Event], None]:
        """A synchronous `on_event` for components: the event goes to the outbox (never-drop)."""

        def on_event(event: Event) -> None:
            task = asyncio.create_task(outbox.put(Channel.EVENTS, encode(event)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        return on_event

    def _build_robot(self, outbox: Outbox) -> RobotAdapter:
        if self.settings.robot.adapter == "none":
            return NoRobot()
        on_event = self._event_sink(outbox)
        adapter: type[LinkedRobot]
        if self.settings.robot.adapter == "ros":
            adapter = _ros_adapter()
        else:
            adapter = MqttRobot if self.settings.robot.adapter == "mqtt" else WebSocketRobot
        return adapter(self.settings, on_point=lambda p: self._robot_points(p), on_event=on_event)

    async def _load_local_model(self, path: Path, outbox: Outbox) -> ActiveModel | None:
        """`[perception] model`: load it; a model that cannot serve is reported, not fatal."""
        try:
            model = await asyncio.to_thread(local_model, path, self.settings.perception.detector)
            await asyncio.to_thread(model.detector.warm_up)
        except (ModelError, OSError) as exc:
            logger.error("model %s cannot serve: %s", path, exc)  # noqa: TRY400 - reason is enough
            detail = {"path": str(path), "reason": str(exc)[:500]}
            event = Event(
                ts=_utcnow(),
                type=KnownEvent.MODEL_REJECTED,
                severity=Severity.CRITICAL,
                detail=detail,
            )
            await outbox.put(Channel.EVENTS, encode(event))
            return None
        logger.info("model %s %s serving from %s", model.ref.name, model.ref.version, path)
        return model

    async def _clear_stale_conditions(self) -> None:
        """Rule conditions persisted by a rule that no longer exists would block release forever."""
        assert self.executor is not None  # noqa: S101 - set before
        for name in stale_conditions(self.settings.perception, self.supervisor.conditions):
            logger.warning("clearing stop condition %s: no stop rule owns it any more", name)
            await self.executor.apply(self.supervisor.set_condition(name, None, _utcnow()))

    async def _capture(self, command: Command) -> str:
        """`capture`: send the frames kept for retraining to the hub through the outbox."""
        if self.perception is None or not any(p.capture for p in self.perception.pipelines):
            raise AgentError("capture is off on this device ([perception.capture] enabled = false)")
        params = command.params
        wanted = params.max_frames if isinstance(params, CaptureParams) else 100
        sent = await self.perception.upload_captures(wanted)
        return f"{sent} captured frame(s) queued for the hub"

    async def _rule_conditions(self, changes: Sequence[ConditionChange]) -> None:
        """A local stop rule started or stopped holding: the supervisor decides, now."""
        assert self.executor is not None  # noqa: S101 - set before the loops start
        now = _utcnow()
        for change in changes:
            decision = self.supervisor.set_condition(
                change.name, change.reason, now, source=StopSource.RULE
            )
            await self.executor.apply(decision)

    async def _safety_loop(self, uplink: Uplink) -> None:
        """Deadlines and watchdogs, every control period."""
        assert self.executor is not None  # noqa: S101 - set before the loops start
        period = self.settings.safety.control_period_s
        while True:
            await asyncio.sleep(self._until_next_check(uplink, period))
            now = _utcnow()
            link_seen = datetime.fromtimestamp(uplink.status.up_at(now.timestamp()), UTC)
            decision = self.supervisor.tick(
                now, link_seen=link_seen, heartbeat_seen=self._robot.heard_at
            )
            if decision.actions or decision.events:
                await self.executor.apply(decision)
            await self._check_hardware_input(now)

    def _until_next_check(self, uplink: Uplink, period: float) -> float:
        """One control period, or less when a deadline or watchdog lapses sooner: a silent
        link stops the robot at its timeout, not up to a period after it."""
        now = _utcnow()
        link_seen = datetime.fromtimestamp(uplink.status.up_at(now.timestamp()), UTC)
        due = self.supervisor.next_due(link_seen=link_seen, heartbeat_seen=self._robot.heard_at)
        if due is None:
            return period
        return min(period, max(0.0, (due - now).total_seconds()))

    async def _check_hardware_input(self, now: datetime) -> None:
        """Follow the hardware stop input: asserting it engages; only its edges matter."""
        cfg = self.settings.safety
        if self.executor is None:
            return
        reasons = [self._robot.hardware_stop]
        if cfg.hardware_input is not None:
            reasons.append(hardware_input(cfg.hardware_input, cfg.hardware_active))
        reason = "; ".join(r for r in reasons if r) or None
        if reason == self.supervisor.conditions.get(HARDWARE_CONDITION):
            return
        decision = self.supervisor.set_condition(
            HARDWARE_CONDITION, reason, now, source=StopSource.HARDWARE
        )
        await self.executor.apply(decision)

    async def _local_stop_loop(self, uplink: Uplink, outbox: Outbox) -> None:
        """`edge-agent estop` wrote a request and sent SIGUSR2: engage, then say so."""
        assert self.executor is not None  # noqa: S101 - set before the loops start
        request = self.settings.device.data_dir / LOCAL_STOP_REQUEST
        while True:
            await self._local_stop_requested.wait()
            self._local_stop_requested.clear()
            try:
                reason = str(json.loads(request.read_text(encoding="utf-8"))["reason"])
            except (OSError, ValueError, KeyError, TypeError):
                reason = "local e-stop"
            request.unlink(missing_ok=True)
            decision = self.supervisor.engage(StopSource.LOCAL, reason, _utcnow())
            await self.executor.apply(decision)
            self._write_status(uplink, outbox)

    async def _wait_for_stop(self) -> None:
        await self._stop.wait()
        raise _Shutdown

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
            loop.add_signal_handler(signal.SIGUSR2, self._local_stop_requested.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            return

    async def _status_loop(self, outbox: Outbox, uplink: Uplink, metrics: AgentMetrics) -> None:
        while True:
            self._stats = await outbox.stats()
            metrics.update(self._stats, uplink.status)
            self._write_status(uplink, outbox)
            await asyncio.sleep(STATUS_INTERVAL_S)

    async def _state_loop(self, outbox: Outbox, uplink: Uplink) -> None:
        """Refresh the retained state periodically (drop counters, buffer depth)."""
        last_dropped: dict[PriorityClass, int] = {}
        while True:
            await asyncio.sleep(self.settings.uplink.state_interval_s)
            dropped = dict(self._stats.dropped) if self._stats else {}
            if dropped != last_dropped and any(dropped.values()):
                logger.warning("outbox dropped rows: %s", {k.value: v for k, v in dropped.items()})
                last_dropped = dropped
            await outbox.put(Channel.STATE, encode(self.state()))
            uplink.notify()

    def _gateway_status(self) -> dict[str, Any] | None:
        if self.gateway is None:
            return None
        return {"connected": self.gateway.connected, **self.gateway.counters.snapshot()}

    def _write_status(self, uplink: Uplink, outbox: Outbox) -> None:
        snapshot = status_snapshot(
            self.settings,
            uplink,
            outbox,
            self._stats,
            estop=self.supervisor.status.model_dump(mode="json"),
            last_command=self.executor.last_command if self.executor else None,
            model=active.ref.model_dump(mode="json") if (active := self.active_model()) else None,
            detect_api=self._detect_api_status,
            gateway=self._gateway_status(),
        )
        write_status_file(self.settings, snapshot)


def dump_tasks() -> None:
    """SIGUSR1: log every asyncio task's stack and every thread's (for a stuck agent)."""
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=8)
        where = " <- ".join(f"{f.f_code.co_filename}:{f.f_lineno}" for f in frames)
        logger.warning("task %s: %s", task.get_name(), where or "(no frames)")
    faulthandler.dump_traceback(all_threads=True)


def status_snapshot(
    settings: AgentSettings,
    uplink: Uplink,
    outbox: Outbox,
    stats: OutboxStats | None,
    *,
    estop: dict[str, Any] | None = None,
    last_command: str | None = None,
    model: dict[str, Any] | None = None,
    detect_api: dict[str, str] | None = None,
    gateway: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What `edge-agent status` shows about a running agent."""
    link = asdict(uplink.status)
    link["state"] = uplink.status.state.value
    return {
        "pid": os.getpid(),
        "updated_at": time.time(),
        "agent_version": __version__,
        "device": settings.device.id,
        "stream": outbox.stream,
        "link": link,
        "estop": estop,
        "last_command": last_command,
        "model": model,
        "detect_api": detect_api,
        "gateway": gateway,
        "outbox": _stats_json(stats) if stats else None,
    }


def _stats_json(stats: OutboxStats) -> dict[str, Any]:
    data = asdict(stats)
    data["dropped"] = {k.value: v for k, v in stats.dropped.items()}
    data["oldest_ts"] = stats.oldest_ts.isoformat() if stats.oldest_ts else None
    return data


def write_status_file(settings: AgentSettings, snapshot: dict[str, Any]) -> None:
    """Atomically replace the status file (a reader never sees half of it)."""
    path = settings.device.status_path
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot, default=str), encoding="utf-8")
    tmp.replace(path)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def engage_local_stop(settings: AgentSettings, reason: str, *, wait_s: float = 3.0) -> str:
    """Engage the stop for `edge-agent estop`; return where it took effect.

    With the agent running: write the request, SIGUSR2 the agent, wait until its
    status shows the stop. Without: latch it in the safety state file, so the
    agent starts stopped.
    """
    from edge_agent.files import write_atomic
    from edge_agent.status import collect

    doc = collect(settings)
    if not doc.get("running"):
        supervisor = SafetySupervisor(SafetyStore(settings.device.data_dir / "safety.json"))
        supervisor.engage(StopSource.LOCAL, reason, _utcnow())
        return "the agent is not running; it will start stopped"
    pid = int(doc["pid"])
    request = settings.device.data_dir / LOCAL_STOP_REQUEST
    write_atomic(request, json.dumps({"reason": reason}).encode())
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if (collect(settings).get("estop") or {}).get("engaged"):
            return f"the running agent (pid {pid}) stopped the robot"
        time.sleep(0.05)
    raise AgentError(
        f"the running agent (pid {pid}) did not confirm the stop within {wait_s:g} s; "
        "use the robot's hardware e-stop"
    )
