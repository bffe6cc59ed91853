"""Issue 12: camera-only devices detected on by gateway agents, on the real data plane.

Thin cameras (`sim.thin_camera`) publish inference frames to a real Mosquitto; a real
hub (`outpost hub serve --role ingest` and `--role worker`) puts them on Kafka and
stores what comes back in PostgreSQL; two real `edge-agent run` processes in gateway
mode share the frames through one Kafka consumer group, detect with the shipped model
and produce each camera's detections, rule events and drift points as the camera's
own. One gateway is killed (-9) mid-run: the other takes its cameras over, and the only
frames without a stored result are ones the survivor dropped as stale, on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from edge_agent.perception.default_model import SHIPPED_MODEL
from edge_agent.perception.detector import DetectorOptions
from edge_agent.perception.pipeline import local_model
from hub.auth.principal import Role
from hub.bus.kafka import KafkaBus
from hub.bus.kafka_admin import delete_prefixed_topics
from hub.detect import DetectRouter
from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from sim.thin_camera import ThinCamera
from tests.edge_agent.sim_scene import encoded, person_and_forklift
from tests.edge_agent.test_detect_api import assert_same_objects, pipeline_objects
from tests.hub.auth.support import running_hub
from tests.integration.harness import AgentProcess, PrivateBroker, agent_config, wait_for
from tests.integration.hubrig import HubStack

PARTITIONS = 3
FPS = 4.0
RUN_S = 40.0
KILL_AT_S = 14.0
MAX_AGE_S = 2.0
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def cameras_on_every_partition(count: int) -> list[str]:
    """Device ids whose Kafka keys cover every partition, so both gateways get cameras."""
    partitioner = DefaultPartitioner()
    chosen: list[str] = []
    covered: set[int] = set()
    for i in range(1000):
        device = f"cam-{i}"
        partition = partitioner(device.encode(), list(range(PARTITIONS)), list(range(PARTITIONS)))
        if partition not in covered or len(covered) == PARTITIONS:
            chosen.append(device)
            covered.add(partition)
        if len(chosen) == count and len(covered) == PARTITIONS:
            return chosen
    raise AssertionError("no device ids cover every partition")


@pytest.fixture
def stack(
    tmp_path: Path, kafka_bootstrap: str, pg_dsn: str
) -> Iterator[tuple[PrivateBroker, HubStack]]:
    broker = PrivateBroker(tmp_path / "mosquitto")
    broker.start()
    hub = HubStack(tmp_path / "hub", mqtt_url=broker.url, kafka=kafka_bootstrap, pg_dsn=pg_dsn)
    try:
        yield broker, hub
    finally:
        hub.close()
        broker.kill()


def start_gateway(
    tmp_path: Path, name: str, broker: PrivateBroker, hub: HubStack
) -> tuple[AgentProcess, Path]:
    data_dir = tmp_path / name
    config = agent_config(
        tmp_path / f"{name}.toml",
        device=name,
        data_dir=data_dir,
        mqtt_url=broker.url,
        gateway={
            "enabled": True,
            "bootstrap": hub.kafka,
            "topic_prefix": f"t{hub.run_id}.",
            "group": "gateways",
            "max_age_s": MAX_AGE_S,
        },
        perception={
            "send_empty_frames": True,
            "zones": [{"name": "danger", "polygon": WHOLE}],
            "rules": [
                {
                    "name": "person-in-danger",
                    "classes": ["person"],
                    "zone": "danger",
                    "min_conf": 0.3,
                    "action": "event",
                    "severity": "critical",
                    "cooldown_s": 5,
                }
            ],
            "drift": {"window_s": 5},
        },
    )
    agent = AgentProcess(config, tmp_path / f"{name}.log")
    agent.start()
    return agent, data_dir


def gateway_status(data_dir: Path) -> dict[str, Any]:
    try:
        return dict(orjson.loads((data_dir / "status.json").read_bytes()).get("gateway") or {})
    except (OSError, ValueError):
        return {}


def run_cameras(cameras: list[ThinCamera]) -> threading.Thread:
    frames = int(RUN_S * FPS)

    async def all_of_them() -> None:
        await asyncio.gather(*(camera.run(frames) for camera in cameras))

    thread = threading.Thread(target=lambda: asyncio.run(all_of_them()), daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(420)
def test_two_gateways_detect_for_camera_only_devices_and_survive_losing_one(
    tmp_path: Path, stack: tuple[PrivateBroker, HubStack]
) -> None:
    broker, hub = stack
    a, a_dir = start_gateway(tmp_path, "gw-a", broker, hub)
    b, b_dir = start_gateway(tmp_path, "gw-b", broker, hub)
    try:
        wait_for(
            lambda: (
                gateway_status(a_dir).get("connected") and gateway_status(b_dir).get("connected")
            ),
            120,
            "both gateways connected to Kafka",
        )
        scene = person_and_forklift()
        devices = cameras_on_every_partition(4)
        cameras = [ThinCamera(d, broker.url, render=scene.copy, fps=FPS) for d in devices]
        # Both in the group before the first frame: then the group has settled.
        time.sleep(5)
        start = time.time()
        thread = run_cameras(cameras)

        time.sleep(max(0.0, start + KILL_AT_S - time.time()))
        before = gateway_status(a_dir), gateway_status(b_dir)
        a.kill()
        killed_at = time.time()
        thread.join(RUN_S + 60)
        assert not thread.is_alive(), "the cameras did not finish"

        assert before[0].get("frames", 0) > 0, f"gateway a did nothing before the kill: {before}"
        assert before[1].get("frames", 0) > 0, f"gateway b did nothing before the kill: {before}"

        sent = {fid: ts for camera in cameras for fid, ts in camera.sent}
        wait_for(
            lambda: (
                stored_frames(hub) >= set(sent) - window(sent, killed_at)
                and gateway_status(b_dir).get("frames", 0) > 0
            ),
            90,
            "the frames outside the kill window stored",
        )
        missing = set(sent) - stored_frames(hub)
        survivor = gateway_status(b_dir)
        print(
            f"gateway: {len(sent)} frames from {len(devices)} cameras, {len(missing)} without "
            f"a result (all within the kill window), survivor {survivor}; before the kill "
            f"a {before[0].get('frames')} / b {before[1].get('frames')} frames"
        )
        assert missing <= window(sent, killed_at)
        assert len(missing) <= survivor.get("stale", 0), "frames lost that nobody dropped"

        for device in devices:
            assert device_rows(hub, device, "detections", "gw-detections-%") > 0
            assert device_rows(hub, device, "events", "gw-events-%") > 0
            assert drift_points(hub, device) > 0, f"{device}: no drift statistics"
            wait_for(lambda d=device: alerts_of(hub, d) > 0, 30, f"an alert for {device}")
    finally:
        a.ensure_stopped()
        b.ensure_stopped()


def window(sent: dict[str, datetime], killed_at: float) -> set[str]:
    """Frames a gateway kill may cost: sent from just before it until the group has
    rebalanced (the session timeout, 10 s) and the survivor has caught up."""
    return {fid for fid, ts in sent.items() if killed_at - 5 <= ts.timestamp() <= killed_at + 25}


def stored_frames(hub: HubStack) -> set[str]:
    rows = hub._fetch("SELECT frame_id FROM {s}.detections WHERE stream LIKE 'gw-detections-%'")
    return {r["frame_id"] for r in rows}


def device_rows(hub: HubStack, device: str, table: str, stream: str) -> int:
    rows = hub._fetch(
        f"SELECT count(*) AS n FROM {{s}}.{table} WHERE device = $1 AND stream LIKE $2",  # noqa: S608
        device,
        stream,
    )
    return int(rows[0]["n"])


def drift_points(hub: HubStack, device: str) -> int:
    rows = hub._fetch(
        "SELECT count(*) AS n FROM {s}.telemetry WHERE device = $1 AND metric LIKE 'drift.%'",
        device,
    )
    return int(rows[0]["n"])


def alerts_of(hub: HubStack, device: str) -> int:
    rows = hub._fetch("SELECT count(*) AS n FROM {s}.alerts WHERE device = $1", device)
    return int(rows[0]["n"])


async def test_the_hub_routes_detect_to_a_gateway_agent(
    tmp_path: Path, kafka_bootstrap: str, run_id: str
) -> None:
    """`POST /api/v1/detect` on the hub: the gateway's answer, the same boxes as the
    pipeline; a bad image is the gateway's 400 with its reason; no gateway is a 504."""
    prefix = f"t{run_id}d."
    bus = KafkaBus(kafka_bootstrap, topic_prefix=prefix, partitions=PARTITIONS)
    await bus.start()
    router = DetectRouter(bus, timeout_s=2)
    replies = asyncio.create_task(router.run())
    broker = PrivateBroker(tmp_path / "mosquitto")
    broker.start()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    agent: AgentProcess | None = None
    try:
        await migrate(engine)
        async with running_hub(engine, tmp_path / "data") as hub:
            hub.app.state.detect = router
            await hub.add_user("vera", Role.VIEWER)
            headers = await hub.bearer("vera")
            scene = person_and_forklift()
            jpeg = encoded(scene)

            def post(body: bytes, kind: str, auth: bool = True) -> Any:
                sent = {**(headers if auth else {}), "Content-Type": kind}
                return hub.client.post("/api/v1/detect", content=body, headers=sent)

            nobody = await post(jpeg, "image/jpeg")
            assert nobody.status_code == 504, nobody.text
            assert "no gateway agent answered" in nobody.json()["detail"]["message"]
            assert (await post(jpeg, "image/jpeg", auth=False)).status_code == 401
            wrong = await post(b"hello", "text/plain")
            assert wrong.status_code == 415
            assert "image/jpeg" in wrong.json()["detail"]["message"]

            config = agent_config(
                tmp_path / "gw-d.toml",
                device="gw-d",
                data_dir=tmp_path / "gw-d",
                mqtt_url=broker.url,
                gateway={"enabled": True, "bootstrap": kafka_bootstrap, "topic_prefix": prefix},
            )
            agent = AgentProcess(config, tmp_path / "gw-d.log")
            agent.start()
            await asyncio.to_thread(
                wait_for,
                lambda: gateway_status(tmp_path / "gw-d").get("connected"),
                120,
                "the gateway connected to Kafka",
            )
            router.timeout_s = 30  # the gateway's first request waits for its group to settle
            answer = await post(jpeg, "image/jpeg")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["gateway"] == "gw-d"
            shipped = local_model(SHIPPED_MODEL, DetectorOptions())
            assert body["model"]["sha256"] == shipped.ref.sha256
            # The pipeline sees the picture the gateway decoded from the same JPEG.
            decoded = np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
            assert_same_objects(body["objects"], pipeline_objects(shipped, decoded, tmp_path))

            bad = await post(b"\x89PNG not really", "image/png")
            assert bad.status_code == 400
            assert "PNG" in bad.json()["error"]
            assert bad.json()["gateway"] == "gw-d"
    finally:
        if agent is not None:
            agent.ensure_stopped()
        replies.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await replies
        await bus.stop()
        await engine.dispose()
        broker.kill()
        await delete_prefixed_topics(kafka_bootstrap, prefix, timeout_s=30)
