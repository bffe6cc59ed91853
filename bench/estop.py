"""Stop latency: a signed `estop` published to the broker → zero velocity at the robot.

Numerator: p99 over `trials` of the time from publishing a signed `estop` on the
device's `cmd` topic to the robot receiving a zero `cmd_vel`, through a real
`edge-agent run`, while the agent also publishes
1,000 telemetry messages/s (one point each) on the same broker. Before each trial
the robot is driving (release, then an override it has received). Three warm-up
trials run first and are not counted. The robot is a
ROS 2 node (`robot="ros"`: the agent's ROS 2 adapter, zero `geometry_msgs/Twist`)
or an MQTT client on the same broker (`robot="mqtt"`: the MQTT adapter's JSON).

Denominator: p99 of a bare MQTT round trip on the same broker under the same
load: a client publishes, another republishes what it receives, the first gets it
back (two broker hops, like the stop path: operator → broker → agent → broker →
robot). Target ≤ 3.

Example:
    result = run(mqtt_url="mqtt://127.0.0.1:1883")
    print(result.ratio, result.details["estop_p50_ms"])
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import aiomqtt
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.report import BenchResult, Measure
from protocol import Channel, CommandType, encode, topic
from protocol.commands import new_command
from protocol.models import CommandParams, EstopParams, OverrideParams, ReleaseParams
from protocol.signing import generate_private_key, public_key_to_text, sign
from protocol.transport import NO_DELAY

BIN = Path(sys.executable).parent
LOAD_HZ = 1000
WARM_UP_TRIALS = 3
Robot = Literal["ros", "mqtt"]
ODOM = orjson.dumps({"x": 0.0, "y": 0.0, "theta": 0.0, "linear": 0.0, "angular": 0.0})


class EstopBenchError(RuntimeError):
    """The bench could not run (broker unreachable, agent did not start)."""


def p99(samples: list[float]) -> float:
    """The 99th percentile (nearest rank).

    Example:
        >>> p99([float(i) for i in range(1, 101)])
        99.0
    """
    ordered = sorted(samples)
    return ordered[max(0, int(len(ordered) * 0.99 + 0.5) - 1)]


def run(
    *,
    mqtt_url: str,
    robot: Robot = "ros",
    trials: int = 50,
    round_trips: int = 200,
    progress: Callable[[str], None] = lambda _s: None,
) -> BenchResult:
    """Measure both sides on `mqtt_url`; raise `EstopBenchError` if the rig cannot start."""
    device = f"bench-estop-{secrets.token_hex(3)}"
    key = generate_private_key()
    domain_id = secrets.randbelow(100) + 1  # a private ROS graph: nothing else hears it
    if robot == "ros":  # the agent and the robot's node share this computer
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    with tempfile.TemporaryDirectory(prefix="outpost-bench-estop-") as tmp:
        hub_key = public_key_to_text(key.public_key())
        robot_toml = (
            f'adapter = "ros"\n[robot.ros]\ndomain_id = {domain_id}\n'
            if robot == "ros"
            else f'adapter = "mqtt"\nurl = "{mqtt_url}"\n'
        )
        cfg = _agent_config(Path(tmp), device, mqtt_url, hub_key, robot_toml)
        with (Path(tmp) / "agent.log").open("wb") as log:
            agent = subprocess.Popen(
                [str(BIN / "edge-agent"), "run", "--config", str(cfg)], stdout=log, stderr=log
            )
            try:
                side = _RosSide(domain_id) if robot == "ros" else _MqttSide(mqtt_url, device)
                latencies, rtts = asyncio.run(
                    _measure(mqtt_url, device, key, side, trials, round_trips, progress)
                )
            finally:
                agent.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    agent.wait(15)
                if agent.poll() is None:
                    agent.kill()
    ms = [x * 1000 for x in latencies]
    rtt_ms = [x * 1000 for x in rtts]
    return BenchResult(
        name="estop",
        numerator=Measure(
            p99(ms),
            "ms",
            f"p99 signed estop → zero cmd_vel at the {robot} robot ({trials} trials, "
            f"{LOAD_HZ} msg/s telemetry)",
        ),
        denominator=Measure(
            p99(rtt_ms),
            "ms",
            f"p99 bare MQTT round trip, two hops, same broker and load ({round_trips} samples)",
        ),
        target=3.0,
        direction="<=",
        details={
            "estop_p50_ms": round(sorted(ms)[len(ms) // 2], 1),
            "estop_max_ms": round(max(ms), 1),
            "rtt_p50_ms": round(sorted(rtt_ms)[len(rtt_ms) // 2], 1),
            "load_msgs_per_s": LOAD_HZ,
            "broker": mqtt_url,
            "robot": robot,
        },
    )


async def _measure(
    url: str,
    device: str,
    key: Ed25519PrivateKey,
    side: _RobotSide,
    trials: int,
    round_trips: int,
    progress: Callable[[str], None],
) -> tuple[list[float], list[float]]:
    velocities: asyncio.Queue[tuple[float, float]] = asyncio.Queue()
    async with _client(url, f"{device}-op") as op, side.running(velocities):
        rig = _Rig(op, device, key, velocities)
        await rig.start()
        progress("agent up, robot heard")
        for _ in range(WARM_UP_TRIALS):  # first stops pay for lazy imports and DDS matching
            await rig.trial()
        latencies = [await rig.trial() for _ in range(trials)]
        progress(f"{trials} stop trials")
    rtts = await _round_trips(url, device, round_trips)
    progress(f"{round_trips} round trips")
    return latencies, rtts


def _agent_config(root: Path, device: str, url: str, hub_key: str, robot_toml: str) -> Path:
    path = root / "agent.toml"
    path.write_text(
        f'[device]\nid = "{device}"\ndata_dir = "{root / "data"}"\n'
        f'[hub]\npublic_key = "{hub_key}"\n'
        f'[mqtt]\nurl = "{url}"\n'
        "[uplink]\ndrain_rate = 1000000\n"
        "[metrics]\nport = 0\n"
        "[telemetry]\nbatch_points = 1\nbatch_delay_s = 0.05\n"
        f'sources = [{{type = "synthetic", rate_hz = {LOAD_HZ}}}]\n'
        f"[robot]\n{robot_toml}"
    )
    return path


@contextlib.asynccontextmanager
async def _client(url: str, name: str) -> AsyncIterator[aiomqtt.Client]:
    parts = urlsplit(url)
    try:
        async with aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or 1883,
            identifier=name,
            timeout=10,
            socket_options=NO_DELAY,
        ) as client:
            yield client
    except aiomqtt.MqttError as exc:
        raise EstopBenchError(f"broker at {url}: {exc}") from exc


class _RobotSide:
    """The robot: puts `(perf_counter at arrival, linear)` of every cmd_vel on a queue."""

    def running(
        self, velocities: asyncio.Queue[tuple[float, float]]
    ) -> contextlib.AbstractAsyncContextManager[None]:
        raise NotImplementedError


class _MqttSide(_RobotSide):
    """An MQTT client on the agent's broker speaking the MQTT adapter's JSON."""

    def __init__(self, url: str, device: str) -> None:
        self.url, self.device, self.prefix = url, device, f"robot/{device}"

    @contextlib.asynccontextmanager
    async def running(self, velocities: asyncio.Queue[tuple[float, float]]) -> AsyncIterator[None]:
        async with _client(self.url, f"{self.device}-robot") as robot:
            await robot.subscribe(f"{self.prefix}/cmd_vel", qos=1)

            async def listen() -> None:
                async for message in robot.messages:
                    body = orjson.loads(message.payload)
                    velocities.put_nowait((time.perf_counter(), float(body["linear"])))

            async def odom() -> None:
                while True:
                    await robot.publish(f"{self.prefix}/odom", ODOM)
                    await asyncio.sleep(0.05)

            tasks = [asyncio.create_task(listen()), asyncio.create_task(odom())]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


class _RosSide(_RobotSide):
    """A ROS 2 node on a private domain: the ROS 2 adapter's Twist."""

    def __init__(self, domain_id: int) -> None:
        self.domain_id = domain_id

    @contextlib.asynccontextmanager
    async def running(self, velocities: asyncio.Queue[tuple[float, float]]) -> AsyncIterator[None]:
        try:
            from bench.rosrobot import RosRobotStandIn
        except ImportError as exc:
            raise EstopBenchError(
                f"--robot ros needs the ROS 2 packages: pip install 'outpost[ros]' ({exc})"
            ) from exc
        loop = asyncio.get_running_loop()

        def heard(at: float, linear: float, _angular: float) -> None:
            loop.call_soon_threadsafe(velocities.put_nowait, (at, linear))

        robot = RosRobotStandIn(domain_id=self.domain_id, on_twist=heard)
        robot.start()
        try:
            yield
        finally:
            await asyncio.to_thread(robot.close)


class _Rig:
    """The operator (an MQTT client of the bench) and what the robot heard."""

    def __init__(
        self,
        op: aiomqtt.Client,
        device: str,
        key: Ed25519PrivateKey,
        velocities: asyncio.Queue[tuple[float, float]],
    ) -> None:
        self.op, self.device, self.key = op, device, key
        self._velocities = velocities

    async def start(self) -> None:
        # The agent sends a stop to the robot once connected; then its cmd subscription is live.
        try:
            async with asyncio.timeout(30):
                while (await self._velocities.get())[1] != 0.0:
                    pass
        except TimeoutError:
            raise EstopBenchError("the agent did not reach the robot within 30 s") from None
        await asyncio.sleep(1.0)

    async def _command(self, type_: CommandType, params: CommandParams) -> float:
        cmd = new_command(
            self.device,
            type_,
            params,
            issued_by="bench",
            now=datetime.now(UTC),
            ttl=timedelta(seconds=30),
        )
        payload = encode(sign(cmd, self.key))
        sent = time.perf_counter()
        await self.op.publish(topic(self.device, Channel.CMD), payload, qos=1)
        return sent

    async def _until(self, wanted: Callable[[float], bool], after: float) -> float:
        async with asyncio.timeout(10):
            while True:
                at, linear = await self._velocities.get()
                if at >= after and wanted(linear):
                    return at

    async def trial(self) -> float:
        """Release, drive, then time one stop."""
        await self._command(CommandType.RELEASE, ReleaseParams(reason="bench"))
        sent = await self._command(
            CommandType.OVERRIDE, OverrideParams(linear=0.3, angular=0.0, duration_s=10)
        )
        await self._until(lambda v: v == 0.3, sent)
        await asyncio.sleep(0.05)
        sent = await self._command(CommandType.ESTOP, EstopParams(reason="bench"))
        return await self._until(lambda v: v == 0.0, sent) - sent


async def _round_trips(url: str, device: str, count: int) -> list[float]:
    """Ping on one topic, echoed by a second client on another, timed by the first."""
    ping, pong = f"bench/{device}/ping", f"bench/{device}/pong"
    async with _client(url, f"{device}-a") as a, _client(url, f"{device}-b") as b:
        await a.subscribe(pong, qos=1)
        await b.subscribe(ping, qos=1)

        async def echo() -> None:
            async for message in b.messages:
                await b.publish(pong, message.payload, qos=1)

        echoer = asyncio.create_task(echo())
        samples = []
        try:
            for i in range(count):
                sent = time.perf_counter()
                await a.publish(ping, str(i).encode(), qos=1)
                async with asyncio.timeout(10):
                    async for message in a.messages:
                        if message.payload == str(i).encode():
                            break
                samples.append(time.perf_counter() - sent)
                await asyncio.sleep(0.01)
        finally:
            echoer.cancel()
            await asyncio.gather(echoer, return_exceptions=True)
        return samples
