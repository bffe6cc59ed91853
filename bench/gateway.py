"""Gateway mode end to end: frames/s from thin cameras to detections in PostgreSQL.

Numerator: camera-only devices publish JPEG inference frames (QoS 1, as fast as the
broker takes them) to the broker; a real `outpost hub serve --role ingest` puts them
on Kafka; a real `edge-agent run` in gateway mode detects on them with the shipped
model and produces the devices' detections back to Kafka; a real `--role worker`
stores them in PostgreSQL. The rate is the detections stored between the first and the
last poll that saw new ones (start-up excluded). Frames never go stale in this run
(`max_age_s` is long): the gateway works through all of them, so the figure is its
throughput, not its drop rate.

The gateway runs once per onnxruntime thread setting of `SETTINGS` (the agent's
default, the same with idle threads not spinning, one thread), each on its own
cameras, against the same hub. As in `outpost bench detect`, the winner is the setting
with the most frames/s end to end, and `[perception.detector]` of the gateway is where
to set it.

Denominator: bare `session.run` frames/s of the same model on the same frames'
preprocessed tensors, with the winner's thread setting, on the same machine (best of
`rounds`). Target ≥ 0.6.

Example:
    result = run(mqtt_url="mqtt://127.0.0.1:1883", kafka_bootstrap="127.0.0.1:9092",
                 pg_dsn="postgresql://outpost@127.0.0.1:5432/outpost", model=path)
    print(result.ratio)
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs; only connect and fetchval
import cv2
import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from rich.progress import Progress

from bench.ingest import (
    BIN,
    FAILURES,
    NETWORK_TIMEOUT_S,
    POLL_S,
    IngestBenchError,
    Proc,
    Services,
    Timeline,
    Workload,
    _clean_up_quietly,
    _host_port,
    _progress,
    hub_config,
    migrate_schema,
    wait_hub_ready,
    wait_rows,
)
from bench.report import BenchResult, Measure, rate
from edge_agent import bench_detect
from edge_agent.perception.camera_sources import Image
from edge_agent.perception.detector import Detector, DetectorOptions
from protocol import Channel, Envelope, encode, topic
from protocol.models import Frame, FramePurpose

TARGET = 0.6
DEFAULT_FRAMES = 600
DEFAULT_CAMERAS = 4
FRAME_SIZE = (480, 640)
GATEWAY_READY_S = 120.0
SETTINGS = (
    bench_detect.ThreadSetting(0, 1, True),  # the agent's default
    bench_detect.ThreadSetting(0, 1, False),  # idle threads leave the CPU to Kafka and the hub
    bench_detect.ThreadSetting(1),
)
"""The thread settings the gateway runs with, in turn."""


class GatewayBenchError(IngestBenchError):
    """The gateway benchmark could not finish."""


def frame_envelopes(
    run_id: str, images: Sequence[Image], *, cameras: int, frames: int
) -> list[tuple[str, bytes]]:
    """(device, encoded envelope) of `frames` inference frames over `cameras` devices,
    round robin, each device's seqs 1, 2, 3…"""
    jpegs = []
    for image in images:
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise GatewayBenchError("a benchmark frame could not be encoded as JPEG")
        jpegs.append(jpeg.tobytes())
    out = []
    now = datetime.now(UTC)
    for n in range(frames):
        device, seq = f"bench-{run_id}-cam{n % cameras}", n // cameras + 1
        image = images[n % len(images)]
        body = Frame(
            ts=now,
            frame_id=f"{device}-{seq}",
            purpose=FramePurpose.INFERENCE,
            width=image.shape[1],
            height=image.shape[0],
            jpeg=jpegs[n % len(jpegs)],
        )
        envelope = Envelope(
            device=device, stream=f"s{run_id}", seq=seq, ts=now, kind=Channel.FRAMES, body=body
        )
        out.append((device, encode(envelope)))
    return out


def publish(url: str, envelopes: Sequence[tuple[str, bytes]]) -> None:
    """Publish every frame at QoS 1 and wait for the broker's acknowledgements."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(100)
    client.connect(*_host_port(url))
    client.loop_start()
    try:
        infos = [client.publish(topic(d, Channel.FRAMES), p, qos=1) for d, p in envelopes]
        for info in infos:
            info.wait_for_publish(NETWORK_TIMEOUT_S)
    finally:
        client.loop_stop()
        client.disconnect()


def gateway_config(
    path: Path,
    work: Workload,
    services: Services,
    data_dir: Path,
    setting: bench_detect.ThreadSetting,
) -> Path:
    """A gateway agent on this run's topics with `setting`'s detector threads that keeps
    every frame (none goes stale)."""
    gateway = {
        "enabled": True,
        "bootstrap": services.kafka,
        "topic_prefix": work.topic_prefix,
        "group": "bench-gateways",
        "max_age_s": 3600,
    }
    path.write_text(
        f'[device]\nid = "bench-{work.run_id}-gw"\ndata_dir = "{data_dir}"\n'
        f'[mqtt]\nurl = "{services.mqtt_url}"\n'
        "[metrics]\nport = 0\n"
        "[perception]\nsend_empty_frames = true\n"
        f"[perception.detector]\nintra_op_threads = {setting.intra_op_threads}\n"
        f"inter_op_threads = {setting.inter_op_threads}\n"
        f"allow_spinning = {str(setting.allow_spinning).lower()}\n"
        "[gateway]\n" + "".join(f"{k} = {orjson.dumps(v).decode()}\n" for k, v in gateway.items())
    )
    return path


def _gateway_connected(data_dir: Path) -> bool:
    try:
        status = orjson.loads((data_dir / "status.json").read_bytes())
    except (OSError, ValueError):
        return False
    return bool((status.get("gateway") or {}).get("connected"))


async def wait_gateway(data_dir: Path, procs: Sequence[Proc]) -> None:
    """Until the gateway agent says it is consuming (its status file)."""
    deadline = time.monotonic() + GATEWAY_READY_S
    while not _gateway_connected(data_dir):
        for proc in procs:
            proc.check()
        if time.monotonic() > deadline:
            raise GatewayBenchError(f"the gateway did not connect within {GATEWAY_READY_S:.0f} s")
        await asyncio.sleep(POLL_S)


async def wait_detections(
    pg_dsn: str,
    work: Workload,
    devices: Sequence[str],
    procs: Sequence[Proc],
    progress: Progress,
    label: str,
) -> Timeline:
    """Poll the detections of `devices` until every frame has its result; raise if it stalls."""
    frames = len(devices)
    task = progress.add_task(f"{label}: frames → gateway → PostgreSQL", total=frames)
    cameras = sorted(set(devices))

    async def count(conn: asyncpg.Connection) -> int:
        sql = f'SELECT count(*) FROM "{work.schema}".detections WHERE device = ANY($1::text[])'  # noqa: S608 - ours
        return int(await conn.fetchval(sql, cameras, timeout=NETWORK_TIMEOUT_S))

    return await wait_rows(
        pg_dsn,
        count,
        frames,
        procs,
        "detections",
        started=time.perf_counter(),
        on_progress=lambda n: progress.update(task, completed=n),
    )


def bare_fps(
    model: Path, images: Sequence[Image], setting: bench_detect.ThreadSetting, *, rounds: int
) -> float:
    """Best-of-`rounds` `session.run` frames/s on the frames' tensors with `setting`."""
    detector = Detector(model, setting.options(DetectorOptions()))
    tensors = [detector.preprocess(image)[0] for image in images]
    detector.warm_up(2)
    state = {"n": 0}

    def one() -> int:
        detector.run_raw(tensors[state["n"] % len(tensors)])
        state["n"] += 1
        return 1

    return rate(one, min_seconds=2.0, rounds=rounds)


@dataclass(frozen=True)
class SettingRun:
    """One thread setting: the gateway end to end and bare `session.run`."""

    setting: bench_detect.ThreadSetting
    timeline: Timeline
    bare_fps: float

    @property
    def window_s(self) -> float:
        """From the first to the last poll that saw new detections."""
        return self.timeline.last_at - self.timeline.first_at

    @property
    def fps(self) -> float:
        """Detections stored per second, between the first and the last poll that saw new ones."""
        window = self.window_s
        counted = self.timeline.stored - self.timeline.first_count
        if window <= 0 or counted <= 0:
            raise GatewayBenchError(
                f"the detections arrived all at once ({self.timeline.stored}); "
                "raise --frames for a window"
            )
        return counted / window

    def to_json(self) -> dict[str, object]:
        """One row of the sweep."""
        return {
            "label": self.setting.label,
            "intra_op_threads": self.setting.intra_op_threads,
            "allow_spinning": self.setting.allow_spinning,
            "gateway_fps": round(self.fps, 2),
            "raw_fps": round(self.bare_fps, 2),
            "ratio": round(self.fps / self.bare_fps, 4),
            "stored_window_s": round(self.window_s, 3),
        }


def run_pipeline(
    work: Workload,
    root: Path,
    services: Services,
    sweep: Sequence[tuple[bench_detect.ThreadSetting, Sequence[tuple[str, bytes]]]],
    *,
    progress: Progress,
) -> list[Timeline]:
    """Hub roles up; then per setting a gateway agent, its cameras' frames, detections timed."""
    config = hub_config(
        root / "hub.toml",
        work,
        services,
        ingest="inference_frames_per_s = 1000\ninference_frames_burst = 10000\n",
    )
    procs: list[Proc] = []
    timelines = []
    try:
        task = progress.add_task("hub ingest + worker starting", total=None)
        for role in ("ingest", "worker"):
            args = [str(BIN / "outpost"), "hub", "serve", "--config", str(config), "--role", role]
            procs.append(Proc(f"hub {role}", args, root / f"hub-{role}.log"))
        asyncio.run(wait_hub_ready(services.pg_dsn, services.mqtt_url, work, procs))
        progress.update(task, total=1, completed=1)
        for n, (setting, envelopes) in enumerate(sweep):
            gw_dir = root / f"gateway-{n}"
            gw_config = gateway_config(root / f"gateway-{n}.toml", work, services, gw_dir, setting)
            args = [str(BIN / "edge-agent"), "run", "--config", str(gw_config)]
            gateway = Proc(f"gateway agent ({setting.label})", args, root / f"gateway-{n}.log")
            try:
                asyncio.run(wait_gateway(gw_dir, [*procs, gateway]))
                publish(services.mqtt_url, envelopes)
                devices = [device for device, _ in envelopes]
                timelines.append(
                    asyncio.run(
                        wait_detections(
                            services.pg_dsn,
                            work,
                            devices,
                            [*procs, gateway],
                            progress,
                            setting.label,
                        )
                    )
                )
            finally:
                gateway.stop()
        return timelines
    finally:
        for proc in reversed(procs):
            proc.stop()


def run(
    *,
    mqtt_url: str,
    kafka_bootstrap: str,
    pg_dsn: str,
    model: Path,
    frames: int = DEFAULT_FRAMES,
    cameras: int = DEFAULT_CAMERAS,
    rounds: int = 3,
    settings: Sequence[bench_detect.ThreadSetting] = SETTINGS,
    show_progress: bool = False,
) -> BenchResult:
    """Measure bare `session.run` and the gateway pipeline per setting; return the result."""
    work = Workload(secrets.token_hex(4), 1, {})
    services = Services(mqtt_url=mqtt_url, kafka=kafka_bootstrap, pg_dsn=pg_dsn)
    images = bench_detect.synthetic_frames(size=FRAME_SIZE).images
    sweep = [
        (s, frame_envelopes(f"{work.run_id}-{n}", images, cameras=cameras, frames=frames))
        for n, s in enumerate(settings)
    ]
    with (
        tempfile.TemporaryDirectory(prefix="outpost-bench-gateway-") as tmp,
        _progress(show_progress) as progress,
    ):
        try:
            asyncio.run(migrate_schema(pg_dsn, work.schema))
            task = progress.add_task("bare session.run", total=len(settings))
            bare = []
            for setting in settings:
                bare.append(bare_fps(model, images, setting, rounds=rounds))
                progress.advance(task)
            timelines = run_pipeline(work, Path(tmp), services, sweep, progress=progress)
        except FAILURES as exc:
            raise GatewayBenchError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            _clean_up_quietly(services, work)
    runs = [SettingRun(s, t, b) for s, t, b in zip(settings, timelines, bare, strict=True)]
    return _result(runs, model=model, frames=frames, cameras=cameras)


def _result(runs: Sequence[SettingRun], *, model: Path, frames: int, cameras: int) -> BenchResult:
    best = max(runs, key=lambda r: r.fps)
    return BenchResult(
        name="gateway",
        numerator=Measure(
            round(best.fps, 2),
            "frames/s",
            "thin cameras → MQTT → hub ingest → Kafka → gateway agent → Kafka → hub worker → "
            f"PostgreSQL (detections stored), {best.setting.label}",
        ),
        denominator=Measure(
            round(best.bare_fps, 2),
            "frames/s",
            f"bare session.run, same model, tensors and threads, {best.setting.label}",
        ),
        target=TARGET,
        details={
            "numerator_basis": "detections stored between the first and the last poll that "
            "saw new ones",
            "winner": best.setting.label,
            "settings": [r.to_json() for r in runs],
            "frames": frames,
            "cameras": cameras,
            "frame_size": f"{FRAME_SIZE[1]}x{FRAME_SIZE[0]}",
            "stored_window_s": round(best.window_s, 3),
            "model": str(model),
            "hub": "1 ingest + 1 worker process, 1 gateway agent at a time",
        },
    )
