"""Gateway mode end to end: frames/s from thin cameras to detections in PostgreSQL.

Numerator: camera-only devices publish JPEG inference frames (QoS 1, as fast as the
broker takes them) to the broker; a real `outpost hub serve --role ingest` puts them
on Kafka; a real `edge-agent run` in gateway mode detects on them with the shipped
model (its default detector threads) and produces the devices' detections back to
Kafka; a real `--role worker` stores them in PostgreSQL. The rate is the detections
stored between the first and the last poll that saw new ones (start-up excluded).
Frames never go stale in this run (`max_age_s` is long): the gateway works through
all of them, so the figure is its throughput, not its drop rate.

Denominator: bare `session.run` frames/s of the same model on the same frames'
preprocessed tensors, with the same thread settings, on the same machine (best of
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


def gateway_config(path: Path, work: Workload, services: Services, data_dir: Path) -> Path:
    """A gateway agent on this run's topics that keeps every frame (none goes stale)."""
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
    pg_dsn: str, work: Workload, frames: int, procs: Sequence[Proc], progress: Progress
) -> Timeline:
    """Poll the detections table until every frame has its result; raise if it stalls."""
    task = progress.add_task("frames → gateway → PostgreSQL (detections)", total=frames)

    async def count(conn: asyncpg.Connection) -> int:
        sql = f'SELECT count(*) FROM "{work.schema}".detections'  # noqa: S608 - ours
        return int(await conn.fetchval(sql, timeout=NETWORK_TIMEOUT_S))

    return await wait_rows(
        pg_dsn,
        count,
        frames,
        procs,
        "detections",
        started=time.perf_counter(),
        on_progress=lambda n: progress.update(task, completed=n),
    )


def bare_fps(model: Path, images: Sequence[Image], *, rounds: int) -> float:
    """Best-of-`rounds` `session.run` frames/s on the frames' tensors, default threads."""
    detector = Detector(model, DetectorOptions())
    tensors = [detector.preprocess(image)[0] for image in images]
    detector.warm_up(2)
    state = {"n": 0}

    def one() -> int:
        detector.run_raw(tensors[state["n"] % len(tensors)])
        state["n"] += 1
        return 1

    return rate(one, min_seconds=2.0, rounds=rounds)


def run_pipeline(
    work: Workload,
    root: Path,
    services: Services,
    envelopes: Sequence[tuple[str, bytes]],
    *,
    progress: Progress,
) -> Timeline:
    """Hub roles and a gateway agent up, every frame published, detections timed."""
    config = hub_config(
        root / "hub.toml",
        work,
        services,
        ingest="inference_frames_per_s = 1000\ninference_frames_burst = 10000\n",
    )
    procs: list[Proc] = []
    try:
        task = progress.add_task("hub ingest + worker and a gateway agent starting", total=None)
        for role in ("ingest", "worker"):
            args = [str(BIN / "outpost"), "hub", "serve", "--config", str(config), "--role", role]
            procs.append(Proc(f"hub {role}", args, root / f"hub-{role}.log"))
        asyncio.run(wait_hub_ready(services.pg_dsn, services.mqtt_url, work, procs))
        gw_dir = root / "gateway"
        gw_config = gateway_config(root / "gateway.toml", work, services, gw_dir)
        args = [str(BIN / "edge-agent"), "run", "--config", str(gw_config)]
        procs.append(Proc("gateway agent", args, root / "gateway.log"))
        asyncio.run(wait_gateway(gw_dir, procs))
        progress.update(task, total=1, completed=1)
        publish(services.mqtt_url, envelopes)
        return asyncio.run(wait_detections(services.pg_dsn, work, len(envelopes), procs, progress))
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
    show_progress: bool = False,
) -> BenchResult:
    """Measure bare `session.run` and the gateway pipeline; return the result."""
    work = Workload(secrets.token_hex(4), 1, {})
    services = Services(mqtt_url=mqtt_url, kafka=kafka_bootstrap, pg_dsn=pg_dsn)
    images = bench_detect.synthetic_frames(size=FRAME_SIZE).images
    envelopes = frame_envelopes(work.run_id, images, cameras=cameras, frames=frames)
    with (
        tempfile.TemporaryDirectory(prefix="outpost-bench-gateway-") as tmp,
        _progress(show_progress) as progress,
    ):
        try:
            asyncio.run(migrate_schema(pg_dsn, work.schema))
            task = progress.add_task("bare session.run", total=None)
            bare = bare_fps(model, images, rounds=rounds)
            progress.update(task, total=1, completed=1)
            timeline = run_pipeline(work, Path(tmp), services, envelopes, progress=progress)
        except FAILURES as exc:
            raise GatewayBenchError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            _clean_up_quietly(services, work)
    return _result(timeline, bare, model=model, frames=frames, cameras=cameras)


def _result(
    timeline: Timeline, bare: float, *, model: Path, frames: int, cameras: int
) -> BenchResult:
    window = timeline.last_at - timeline.first_at
    counted = timeline.stored - timeline.first_count
    if window <= 0 or counted <= 0:
        raise GatewayBenchError(
            f"the detections arrived all at once ({timeline.stored}); raise --frames for a window"
        )
    return BenchResult(
        name="gateway",
        numerator=Measure(
            round(counted / window, 2),
            "frames/s",
            "thin cameras → MQTT → hub ingest → Kafka → gateway agent → Kafka → hub worker → "
            "PostgreSQL (detections stored)",
        ),
        denominator=Measure(
            round(bare, 2), "frames/s", "bare session.run, same model, tensors and threads"
        ),
        target=TARGET,
        details={
            "numerator_basis": "detections stored between the first and the last poll that "
            "saw new ones",
            "frames": frames,
            "cameras": cameras,
            "frame_size": f"{FRAME_SIZE[1]}x{FRAME_SIZE[0]}",
            "stored_window_s": round(window, 3),
            "model": str(model),
            "hub": "1 ingest + 1 worker process, 1 gateway agent (default detector threads)",
        },
    )
